/** The certificate, read-error and key/chain rows, and their states, that the status page and `check` report. */
import { problemAt, type ChainProblem } from "./certs/chain.js";
import type { KeyPairStatus } from "./certs/private-key.js";
import type { CertRecord } from "./certs/record.js";
import type { ReadErrorReason } from "./errors.js";
import type { Inventory } from "./inventory.js";
import { failureReason, type Location, type LocationEntry, type SourceKind } from "./model.js";

const SECONDS_PER_DAY = 86_400;

/** Every source kind, checked against SourceKind by the compiler, so the page can offer them as a filter. */
const SOURCE_KIND_SET: Record<SourceKind, true> = { file: true, kubeconfig: true, secret: true, endpoint: true, configmap: true, cabundle: true, csr: true };
export const SOURCE_KINDS = Object.keys(SOURCE_KIND_SET) as SourceKind[];

/** Most urgent first: the order counts and legends list them in. */
export const CERTIFICATE_STATES = ["expired", "not_yet_valid", "critical", "warning", "ok"] as const;
export type CertificateState = (typeof CERTIFICATE_STATES)[number];

export interface StateThresholds {
  warningDays: number;
  criticalDays: number;
}

export const DEFAULT_THRESHOLDS: StateThresholds = { warningDays: 28, criticalDays: 7 };

export interface CertificateRow {
  source: SourceKind;
  namespace: string;
  name: string;
  key: string;
  index: number;
  subjectCN: string;
  issuerCN: string;
  /** Unix seconds. */
  notBefore: number;
  notAfter: number;
  daysLeft: number;
  state: CertificateState;
  /** The thresholds that decided the state: the location's own, or the defaults. */
  thresholds: StateThresholds;
  /** A last-known certificate: its source can no longer read the location (cert_location_stale). */
  stale: boolean;
  /** A newer certificate for the same thing is at the same location (cert_superseded). */
  superseded: boolean;
}

export interface ErrorRow {
  source: SourceKind;
  namespace: string;
  name: string;
  key: string;
  reason: ReadErrorReason;
}

/** Annotations on a Secret override the defaults per location. */
function thresholdsOf(entry: LocationEntry, defaults: StateThresholds): StateThresholds {
  return {
    warningDays: entry.thresholds?.warningDays ?? defaults.warningDays,
    criticalDays: entry.thresholds?.criticalDays ?? defaults.criticalDays,
  };
}

/**
 * Expired wins over everything, since nothing can make such a certificate good again; a certificate
 * whose notBefore is still ahead is not_yet_valid whatever its days left, since it fails today.
 */
export function certificateState(cert: Pick<CertRecord, "notBefore" | "notAfter">, now: number, thresholds: StateThresholds): CertificateState {
  const daysLeft = (cert.notAfter - now) / SECONDS_PER_DAY;
  if (daysLeft <= 0) return "expired";
  if (cert.notBefore > now) return "not_yet_valid";
  if (daysLeft <= thresholds.criticalDays) return "critical";
  if (daysLeft <= thresholds.warningDays) return "warning";
  return "ok";
}

export interface LocationFilter {
  source?: SourceKind;
  namespace?: string;
}

export interface CertificateFilter extends LocationFilter {
  state?: CertificateState;
}

function locationMatches(entry: LocationEntry, filter: LocationFilter): boolean {
  return (filter.source === undefined || entry.location.source === filter.source) && (filter.namespace === undefined || entry.location.namespace === filter.namespace);
}

/** Which rows of the sorted result to return. */
export interface Window {
  skip: number;
  take: number;
}

const EVERYTHING: Window = { skip: 0, take: Infinity };

/**
 * Keeps the `limit` smallest items offered. The buffer is sorted and cut back to `limit` whenever
 * it doubles, and anything not smaller than the last cut's worst item is dropped at once, so memory
 * stays O(limit) and time O(n log limit) instead of sorting all n.
 */
class Smallest<T> {
  readonly #items: T[] = [];
  #worstKept: T | undefined;

  constructor(
    private readonly limit: number,
    private readonly compare: (a: T, b: T) => number,
  ) {}

  offer(item: T): void {
    if (this.limit === 0 || (this.#worstKept !== undefined && this.compare(item, this.#worstKept) >= 0)) return;
    this.#items.push(item);
    if (this.#items.length >= 2 * this.limit) this.#cut();
  }

  sorted(): T[] {
    this.#cut();
    return this.#items;
  }

  #cut(): void {
    this.#items.sort(this.compare);
    if (this.#items.length > this.limit) {
      this.#items.length = this.limit;
      this.#worstKept = this.#items[this.limit - 1];
    }
  }
}

/** A certificate before it becomes a row; `ordinal` (its place in the inventory's order) breaks ties on notAfter. */
interface Candidate {
  notAfter: number;
  ordinal: number;
  entry: LocationEntry;
  index: number;
  state: CertificateState;
  thresholds: StateThresholds;
}

const soonestFirst = (a: Candidate, b: Candidate): number => a.notAfter - b.notAfter || a.ordinal - b.ordinal;

export interface CertificateSelection {
  /** The window's rows, soonest to expire first. */
  rows: CertificateRow[];
  /** Certificates that pass every filter. */
  matching: number;
  /** Certificates that pass the source and namespace filters, by state. */
  stateCounts: Record<CertificateState, number>;
}

/**
 * One pass over the inventory: counts every certificate by state and turns into rows only the
 * window's, so a page of 200 out of 100,000 certificates builds 200 rows, not 100,000.
 */
export function selectCertificates(
  inventory: Inventory,
  options: { now: number; defaults?: StateThresholds; filter?: CertificateFilter; window?: Window },
): CertificateSelection {
  const { now, defaults = DEFAULT_THRESHOLDS, filter = {}, window = EVERYTHING } = options;
  const stateCounts = Object.fromEntries(CERTIFICATE_STATES.map((state) => [state, 0])) as Record<CertificateState, number>;
  const selection = new Smallest<Candidate>(window.skip + window.take, soonestFirst);
  let matching = 0;
  for (const entry of inventory.entries()) {
    if (entry.certificates.length === 0 || !locationMatches(entry, filter)) continue;
    const thresholds = thresholdsOf(entry, defaults);
    entry.certificates.forEach((cert, index) => {
      const state = certificateState(cert, now, thresholds);
      stateCounts[state]++;
      if (filter.state !== undefined && filter.state !== state) return;
      selection.offer({ notAfter: cert.notAfter, ordinal: matching, entry, index, state, thresholds });
      matching++;
    });
  }
  const rows = selection
    .sorted()
    .slice(window.skip)
    .map(({ entry, index, state, thresholds }): CertificateRow => {
      const cert = entry.certificates[index] as CertRecord;
      const { source, namespace, name, key } = entry.location;
      // Named fields rather than a spread of the location: the spread is several times slower in V8.
      return {
        source,
        namespace,
        name,
        key,
        index,
        subjectCN: cert.subjectCN,
        issuerCN: cert.issuerCN,
        notBefore: cert.notBefore,
        notAfter: cert.notAfter,
        daysLeft: (cert.notAfter - now) / SECONDS_PER_DAY,
        state,
        thresholds,
        stale: entry.stale === true,
        superseded: entry.superseded?.includes(index) === true,
      };
    });
  return { rows, matching, stateCounts };
}

/** By location, comparing code units: the same order on every machine, whatever its locale. */
function byLocation(a: Location, b: Location): number {
  for (const field of ["source", "namespace", "name", "key"] as const) {
    if (a[field] !== b[field]) return a[field] < b[field] ? -1 : 1;
  }
  return 0;
}

export interface ErrorSelection {
  rows: ErrorRow[];
  matching: number;
}

/** The locations that currently fail, sorted by location, of which the window's rows. */
export function selectErrors(inventory: Inventory, options: { filter?: LocationFilter; window?: Window } = {}): ErrorSelection {
  const { filter = {}, window = EVERYTHING } = options;
  const selection = new Smallest<ErrorRow>(window.skip + window.take, byLocation);
  let matching = 0;
  for (const entry of inventory.entries()) {
    const reason = failureReason(entry);
    if (reason === undefined || !locationMatches(entry, filter)) continue;
    matching++;
    const { source, namespace, name, key } = entry.location;
    selection.offer({ source, namespace, name, key, reason });
  }
  return { rows: selection.sorted().slice(window.skip), matching };
}

/** A presented location whose key or chain is not healthy (src/checks.ts). */
export interface HealthProblemRow {
  source: SourceKind;
  namespace: string;
  name: string;
  key: string;
  /** The private key's status, when it is not `match`. */
  keyPair?: KeyPairStatus;
  /** The chain's problem now, when it is not `none`. */
  chain?: ChainProblem;
}

/** Presented locations with a key that is not `match` or a chain problem, sorted by location. */
export function selectHealthProblems(inventory: Inventory, now: number): HealthProblemRow[] {
  const rows: HealthProblemRow[] = [];
  for (const entry of inventory.entries()) {
    const chain = entry.chain && problemAt(entry.chain, now);
    const keyPair = entry.keyPair !== "match" ? entry.keyPair : undefined;
    if (keyPair === undefined && (chain === undefined || chain === "none")) continue;
    const { source, namespace, name, key } = entry.location;
    rows.push({ source, namespace, name, key, ...(keyPair ? { keyPair } : {}), ...(chain && chain !== "none" ? { chain } : {}) });
  }
  return rows.sort(byLocation);
}

/** "1 certificate", "2 certificates", "0 errors". */
export function countOf(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

/**
 * Control characters, Unicode line separators and bidirectional overrides shown as escapes, so a
 * name can neither break a line of output nor make other text read backwards; the backslash is
 * escaped too, so the escapes stay unambiguous.
 */
export function visibleText(text: string): string {
  // eslint-disable-next-line no-control-regex -- matching control characters is the point
  return text.replace(/[\\\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/g, (c) => {
    if (c === "\\") return "\\\\";
    if (c === "\n") return "\\n";
    if (c === "\r") return "\\r";
    if (c === "\t") return "\\t";
    return `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`;
  });
}
