import type { ParseCache } from "../certs/cache.js";
import { CertificateChecks, NO_CHECKS } from "../checks.js";
import type { KubeconfigEntry } from "../certs/kubeconfig.js";
import { DecodePool } from "../decode-pool.js";
import type { CertList } from "../certs/record.js";
import { CertReadError } from "../errors.js";
import type { HealthState } from "../health-state.js";
import type { Inventory } from "../inventory.js";
import { locationId, type Location, type LocationUpdate, type SourceKind } from "../model.js";
import type { Logger } from "../log.js";
import { UNSHARDED, type Shard } from "../shard.js";
import { supersededIndexes } from "../superseded.js";

/**
 * One kind of place certificates live. A source discovers items, reads their bytes and publishes
 * what it found through its context; it never touches metrics.
 */
export interface Source {
  /** Its certificates' `source` label. */
  readonly name: SourceKind;
  /** The `source` labels it reports its health under: its name, or one per Kubernetes kind it reads. */
  healthSources(): string[];
  /**
   * Offered each location of the source a reload replaced that this one did not publish again;
   * true when it keeps it (last-known, its scope refused), false when the location may go.
   */
  adopt?(location: Location): boolean;
  /** Begins continuous work; resolves once the first full scan is done. */
  start(): Promise<void>;
  /** One full scan and nothing after it, for `check`. */
  scanOnce(): Promise<void>;
  stop(): Promise<void>;
}

/** What one location may hold and one decode may cost; see `limits` in the configuration. */
export interface ReadLimits {
  maxCertificatesPerLocation: number;
  maxBytesPerLocation: number;
  pkcs12MaxIterations: number;
}

export const NO_READ_LIMITS: ReadLimits = { maxCertificatesPerLocation: Infinity, maxBytesPerLocation: Infinity, pkcs12MaxIterations: Infinity };

export interface SourceContextOptions {
  shard?: Shard;
  limits?: ReadLimits;
  /** Where PKCS#12 and YAML are decoded; one with a 5 s budget by default. */
  decoder?: DecodePool;
  /** Key and chain checks of presented certificates; none by default. */
  checks?: CertificateChecks;
}

/** Bytes of text a location's records keep: the label values they export. */
function factBytes(records: CertList): number {
  let bytes = 0;
  for (const r of records) {
    bytes += r.subject.length + r.subjectCN.length + r.issuer.length + r.issuerCN.length + r.serial.length;
    bytes += r.fingerprintSha256.length + r.keyAlgorithm.length + r.signatureAlgorithm.length;
    for (const san of r.sans) bytes += san.length + 1;
  }
  for (const crl of records.crls ?? []) bytes += crl.issuer.length + crl.issuerCN.length;
  return bytes;
}

/**
 * The limits as a read error, or undefined when the records are within them. Checked here, where
 * every source's results pass, so one object can cost its own location an error and nothing more.
 */
function overLimit(records: CertList, limits: ReadLimits): CertReadError | undefined {
  if (records.length > limits.maxCertificatesPerLocation) {
    return new CertReadError("too_many_certificates", `${records.length} certificates, over limits.maxCertificatesPerLocation (${limits.maxCertificatesPerLocation})`);
  }
  const bytes = factBytes(records);
  if (bytes > limits.maxBytesPerLocation) {
    return new CertReadError("too_large", `the certificate facts take ${bytes} bytes, over limits.maxBytesPerLocation (${limits.maxBytesPerLocation})`);
  }
  return undefined;
}

/** What a source adds to a location's records (thresholds, a cert-manager link, a probe): what the records do not give. */
export type LocationExtra = Omit<LocationUpdate, "certificates" | "error" | "crls" | "superseded">;

/**
 * What a location holds once its result is in: the records, or the read error (the limits' own when
 * the records exceed them), with the location's other facts. Every source's results and every /probe
 * answer pass here, so the superseded certificates are worked out here, once per update.
 */
export function locationUpdate(found: CertList | CertReadError, limits: ReadLimits, extra: LocationExtra = {}): LocationUpdate {
  const result = found instanceof CertReadError ? found : (overLimit(found, limits) ?? found);
  if (result instanceof CertReadError) return { ...extra, certificates: [], error: { reason: result.reason, message: result.message } };
  const update: LocationUpdate = { ...extra, certificates: result };
  // The CRLs a parse found beside the certificates go on the entry too: the inventory is the one place.
  if (result.crls) update.crls = result.crls;
  const superseded = supersededIndexes(result);
  if (superseded) update.superseded = superseded;
  return update;
}

/** What every source is handed: the inventory, the shared parse cache, health and a logger. */
export class SourceContext {
  readonly inventory: Inventory;
  readonly cache: ParseCache;
  readonly health: HealthState;
  readonly log: Logger;
  /** This replica's share of namespaces and endpoints; sources read only what it owns. */
  readonly shard: Shard;
  readonly limits: ReadLimits;
  readonly decoder: DecodePool;
  readonly checks: CertificateChecks;
  /** Last reason logged per location, so a persistent error is logged once, not every scan. */
  readonly #loggedReason = new Map<string, string>();
  /** The refusals holding each scope error location, by what was refused. */
  readonly #refusals = new Map<string, Map<string, string>>();

  constructor(inventory: Inventory, cache: ParseCache, health: HealthState, log: Logger, options: SourceContextOptions = {}) {
    this.inventory = inventory;
    this.cache = cache;
    this.health = health;
    this.log = log;
    this.shard = options.shard ?? UNSHARDED;
    this.limits = options.limits ?? NO_READ_LIMITS;
    this.decoder = options.decoder ?? new DecodePool({ timeoutMs: 5000 });
    this.checks = options.checks ?? new CertificateChecks(NO_CHECKS, cache);
  }

  /** The certificates (DER) of a PKCS#12 bundle that one of the passphrases opens, decoded off the event loop. */
  decodePkcs12(bytes: Uint8Array, passphrases: readonly string[]): Promise<Uint8Array[]> {
    return this.decoder.pkcs12(bytes, passphrases, this.limits.pkcs12MaxIterations);
  }

  /** The entries of a kubeconfig, decoded off the event loop; see parseKubeconfig. */
  decodeKubeconfig(bytes: Uint8Array, baseDir: string | null): Promise<KubeconfigEntry[]> {
    return this.decoder.kubeconfig(bytes, baseDir);
  }

  /** Publishes the certificates found at a location, or the error that stopped them being read. */
  publish(location: Location, found: CertList | CertReadError, extra: LocationExtra = {}): void {
    const update = locationUpdate(found, this.limits, extra);
    const id = locationId(location);
    if (update.error) {
      if (this.#loggedReason.get(id) !== update.error.reason) {
        this.#loggedReason.set(id, update.error.reason);
        this.health.readError(location.source, update.error.reason);
        this.log.warn({ ...location, reason: update.error.reason, err: update.error.message }, "cannot read certificates");
      }
    } else if (this.#loggedReason.delete(id)) {
      this.log.info({ ...location }, "certificates readable again");
    }
    this.inventory.replace(location, update);
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
