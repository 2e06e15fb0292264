import type { ParseCache } from "../certs/cache.js";
import type { CertRecord } from "../certs/record.js";
import { CertReadError } from "../errors.js";
import type { Health } from "../health.js";
import { locationId, type Inventory, type Location, type LocationUpdate, type SourceKind } from "../inventory.js";
import type { Logger } from "../log.js";
import { UNSHARDED, type Shard } from "../shard.js";

/**
 * One kind of place certificates live. A source discovers items, reads their bytes and publishes
 * what it found through its context; it never touches metrics.
 */
export interface Source {
  /** The `source` label of its health metrics: the same value as its certificates' `source` label. */
  readonly name: SourceKind;
  /** Begins continuous work; resolves once the first full scan is done. */
  start(): Promise<void>;
  /** One full scan and nothing after it, for `check`. */
  scanOnce(): Promise<void>;
  stop(): Promise<void>;
}

/** What every source is handed: the inventory, the shared parse cache, health and a logger. */
export class SourceContext {
  readonly inventory: Inventory;
  readonly cache: ParseCache;
  readonly health: Health;
  readonly log: Logger;
  /** This replica's share of namespaces and endpoints; sources read only what it owns. */
  readonly shard: Shard;
  /** Last reason logged per location, so a persistent error is logged once, not every scan. */
  readonly #loggedReason = new Map<string, string>();

  constructor(inventory: Inventory, cache: ParseCache, health: Health, log: Logger, shard: Shard = UNSHARDED) {
    this.inventory = inventory;
    this.cache = cache;
    this.health = health;
    this.log = log;
    this.shard = shard;
  }

  /** Publishes the certificates found at a location, or the error that stopped them being read. */
  publish(location: Location, result: readonly CertRecord[] | CertReadError, extra: Omit<LocationUpdate, "certificates" | "error"> = {}): void {
    const id = locationId(location);
    if (result instanceof CertReadError) {
      if (this.#loggedReason.get(id) !== result.reason) {
        this.#loggedReason.set(id, result.reason);
        this.health.readErrors.inc({ source: location.source, reason: result.reason });
        this.log.warn({ ...location, reason: result.reason, err: result.message }, "cannot read certificates");
      }
      this.inventory.replace(location, { ...extra, certificates: [], error: { reason: result.reason, message: result.message } });
      return;
    }
    if (this.#loggedReason.delete(id)) this.log.info({ ...location }, "certificates readable again");
    this.inventory.replace(location, { ...extra, certificates: result });
  }

  remove(location: Location): void {
    this.#loggedReason.delete(locationId(location));
    this.inventory.remove(location);
  }

  /** Removes every location of `source` not in `seen` (ids from locationId). */
  pruneExcept(source: SourceKind, seen: ReadonlySet<string>): void {
    this.inventory.prune(source, (id) => {
      if (seen.has(id)) return true;
      this.#loggedReason.delete(id);
      return false;
    });
  }
}
