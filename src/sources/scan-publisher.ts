import type { CertList } from "../certs/record.js";
import type { LocationChecks } from "../checks.js";
import { CertReadError } from "../errors.js";
import { locationId, type Location, type SourceKind } from "../model.js";
import type { SourceContext } from "./source.js";

/** Certificates or the error that stopped them; the thing one location holds. */
export type LocationResult = CertList | CertReadError;

/** The same object, or two errors that say the same: a glob's problems are found afresh on every walk. */
function sameResult(published: LocationResult | undefined, result: LocationResult): boolean {
  if (published === result) return true;
  return published instanceof CertReadError && result instanceof CertReadError && published.reason === result.reason && published.message === result.message;
}

/**
 * Publishes locations for one scan pass, but only those whose result changed since it was last
 * published, so an unchanged file costs no inventory update; at the end, every location of the
 * source not seen in the pass is pruned.
 */
export class ScanPublisher {
  readonly #ctx: SourceContext;
  readonly #source: SourceKind;
  readonly #published = new Map<string, { result: LocationResult; checks: LocationChecks }>();
  #seen = new Set<string>();

  constructor(ctx: SourceContext, source: SourceKind) {
    this.#ctx = ctx;
    this.#source = source;
  }

  begin(): void {
    this.#seen = new Set();
  }

  /** Publishes a location's result with its key and chain checks (src/checks.ts), when any of them changed. */
  publish(location: Location, result: LocationResult, checks: LocationChecks = {}): void {
    const id = locationId(location);
    this.#seen.add(id);
    const published = this.#published.get(id);
    if (published && sameResult(published.result, result) && published.checks.keyPair === checks.keyPair && published.checks.chain === checks.chain) return;
    this.#published.set(id, { result, checks });
    this.#ctx.publish(location, result, checks);
  }

  /** Prunes what this pass did not publish. Only call it after a complete pass. */
  finish(): void {
    for (const id of this.#published.keys()) if (!this.#seen.has(id)) this.#published.delete(id);
    this.#ctx.pruneExcept(this.#source, this.#seen);
  }
}
