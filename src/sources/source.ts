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
  /** The refusals holding each scope error location, by what was refused. */
  readonly #refusals = new Map<string, Map<string, string>>();

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

  /**
   * Records (message) or clears (undefined) one refusal (a 403) of a Kubernetes scope. The scope's
   * `forbidden` error location stands while any refusal of it does, with the first one's message;
   * publish logs it once, not on every retry.
   */
  setRefusal(location: Location, refusal: string, message: string | undefined): void {
    const id = locationId(location);
    const refusals = this.#refusals.get(id) ?? new Map<string, string>();
    if (message === undefined) {
      if (!refusals.delete(refusal)) return;
    } else {
      if (refusals.get(refusal) === message) return;
      refusals.set(refusal, message);
    }
    if (refusals.size === 0) {
      this.#refusals.delete(id);
      this.remove(location);
      return;
    }
    this.#refusals.set(id, refusals);
    this.publish(location, new CertReadError("forbidden", [...refusals.values()][0]!));
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
