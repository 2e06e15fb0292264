import { Readable } from "node:stream";
import { setImmediate as yieldToEventLoop } from "node:timers/promises";
import { problemAt, problemChangesAt } from "./certs/chain.js";
import type { CertRecord, CrlRecord } from "./certs/record.js";
import { truncateLabelValue } from "./certs/truncate.js";
import type { Health } from "./health.js";
import { deflatePieceSync, GZIP_HEADER, GzipTrailer, PieceCompressor, type DeflatedPiece } from "./gzip-pieces.js";
import type { HeldEntry, Inventory } from "./inventory.js";
import { failureReason, OCSP_STATUSES, type LocationEntry } from "./model.js";
import { certificateSelected, DEFAULT_SELECTION, type CertificateFamilyName, type SeriesSelection } from "./series-selection.js";

export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";
export const OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8";

export type ExpositionFormat = "prometheus" | "openmetrics";

const SECONDS_PER_DAY = 86_400;
/**
 * Longest a render runs between two yields to the event loop, when it fills no chunk sooner: well
 * under the 50 ms stall a scrape may cause, with room for a collection on a loaded machine.
 */
const SLICE_MS = 10;
/** Entries rendered between two looks at the clock (a power of two, less one, for a mask). */
const CLOCK_MASK = 255;

/** Escapes a label value per the exposition format: backslash, double quote and line feed. */
export function escapeLabelValue(value: string): string {
  return /[\\"\n]/.test(value) ? value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n") : value;
}

/** `name="value"` pairs; joined rather than appended, so the result is one flat string, not a rope. */
function labelText(labels: Record<string, string>): string {
  const pairs: string[] = [];
  for (const name in labels) pairs.push(`${name}="${escapeLabelValue(labels[name] as string)}"`);
  return pairs.join(",");
}

/**
 * Bytes of one rendered chunk, and the most a response stream buffers ahead of its socket: a reader
 * that stalls pauses its render after a chunk or two rather than letting chunks pile up.
 */
const CHUNK_BYTES = 64 * 1024;

/** Fixed text of a line, encoded once: copied into a chunk, never built or encoded per sample. */
const bytes = (text: string): Buffer => Buffer.from(text, "utf8");

/**
 * Lines as Buffer chunks, with a family's header first once it has a line, when given one. A line is
 * written straight into the chunk, in parts: fixed text copied from Buffers, label values escaped and
 * encoded there, numbers written digit by digit. No string is built per sample: building and
 * flattening them (ropes, joined arrays) was most of a scrape's CPU and its garbage. A line never
 * spans two chunks, and no chunk is allocated before the first line.
 */
class LineWriter {
  /** The header until the first line is written. */
  #header: Buffer | undefined;
  readonly #full: Buffer[] = [];
  #chunk = Buffer.alloc(0);
  #used = 0;

  constructor(header?: Buffer) {
    this.#header = header;
  }

  /** True once a chunk has filled and waits to be taken. */
  get filled(): boolean {
    return this.#full.length > 0;
  }

  /** One whole line, given as a string. */
  add(line: string): void {
    // A UTF-16 unit takes at most 3 bytes in UTF-8.
    this.begin(line.length * 3);
    this.#used += this.#chunk.write(line, this.#used, "utf8");
  }

  /**
   * Starts a line written in parts that take at most `room` bytes (fixed parts' lengths, and 3 bytes
   * per UTF-16 unit of every label value: an escape takes 2). A line that could not fit gets a chunk
   * of its own.
   */
  begin(room: number): void {
    const header = this.#header;
    if (header) {
      this.#header = undefined;
      this.#reserve(header.length);
      this.raw(header);
    }
    this.#reserve(room);
  }

  /** Fixed bytes. */
  raw(part: Uint8Array): void {
    this.#chunk.set(part, this.#used);
    this.#used += part.length;
  }

  /**
   * A label value, escaped as escapeLabelValue does: ASCII byte by byte, and from the first other
   * character on, the rest escaped and encoded as UTF-8 by Buffer.
   */
  value(text: string): void {
    const chunk = this.#chunk;
    let at = this.#used;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c >= 0x80) {
        at += chunk.write(escapeLabelValue(text.slice(i)), at, "utf8");
        break;
      }
      if (c === 0x5c || c === 0x22) {
        chunk[at++] = 0x5c; // \\ and \"
        chunk[at++] = c;
      } else if (c === 0x0a) {
        chunk[at++] = 0x5c; // \n
        chunk[at++] = 0x6e;
      } else chunk[at++] = c;
    }
    this.#used = at;
  }

  /** A number as `${value}` prints it: a safe integer digit by digit, any other through String. */
  number(value: number): void {
    if (!Number.isSafeInteger(value)) {
      this.#used += this.#chunk.write(String(value), this.#used, "latin1"); // digits, ".", "e", "+", "-", NaN, Infinity
      return;
    }
    const chunk = this.#chunk;
    let at = this.#used;
    let rest = value;
    if (rest < 0) {
      chunk[at++] = 0x2d;
      rest = -rest;
    }
    let end = at + 1;
    for (let power = 10; power <= rest; power *= 10) end++;
    this.#used = end;
    do {
      chunk[--end] = 0x30 + (rest % 10);
      rest = Math.floor(rest / 10);
    } while (end > at);
  }

  /** The chunks filled so far, handed over once. */
  takeFull(): Buffer[] {
    return this.#full.splice(0);
  }

  /** Every chunk not yet taken, the last one partly filled; nothing when the family has no samples. */
  finish(): Buffer[] {
    if (this.#used > 0) this.#full.push(this.#chunk.subarray(0, this.#used));
    this.#used = 0;
    return this.takeFull();
  }

  #reserve(room: number): void {
    if (this.#used + room > this.#chunk.length) {
      if (this.#used > 0) this.#full.push(this.#chunk.subarray(0, this.#used));
      this.#chunk = Buffer.allocUnsafe(Math.max(CHUNK_BYTES, room));
      this.#used = 0;
    }
  }
}

/**
 * A location's labels. Certificate facts are cut to the label limit when parsed; a location's own
 * values (a file path of up to 4 KiB, more once odd bytes are escaped) are cut here, the same way.
 */
function locationLabels(entry: LocationEntry, maxBytes: number): string {
  const cut = (value: string) => truncateLabelValue(value, maxBytes);
  const { source, namespace, name, key } = entry.location;
  return labelText({ source, namespace: cut(namespace), name: cut(name), key: cut(key) });
}

/** The fixed parts of a certificate's labels, in order; a value goes after each. */
const SOURCE = bytes('source="');
const NAMESPACE = bytes('",namespace="');
const NAME = bytes('",name="');
const KEY = bytes('",key="');
const INDEX = bytes('",index="');
const SUBJECT_CN = bytes('",subject_cn="');
const ISSUER_CN = bytes('",issuer_cn="');
const SERIAL = bytes('",serial="');
const CA_TRUE = bytes('",ca="true"');
const CA_FALSE = bytes('",ca="false"');
const FINGERPRINT = bytes(',fingerprint_sha256="');
const SUBJECT = bytes('",subject="');
const ISSUER = bytes('",issuer="');
const SANS = bytes('",sans="');
const COMMA = bytes(",");
const KEY_ALGORITHM = bytes('",key_algorithm="');
const KEY_BITS = bytes('",key_bits="');
const SIGNATURE_ALGORITHM = bytes('",signature_algorithm="');
const INFO_END = bytes('"} 1\n');
const VALUE = bytes("} ");
const LINE_END = bytes("\n");
/** The most bytes a certificate's line takes besides its label values: the fixed parts above, a family name, a number. */
const FIXED_LINE_BYTES = 320;

/** A location's own values, cut to the label limit once per location and pass. */
interface LocationValues {
  source: string;
  namespace: string;
  name: string;
  key: string;
  /** The most bytes they take escaped. */
  room: number;
}

function locationValues(entry: LocationEntry, maxBytes: number): LocationValues {
  const { source, namespace, name, key } = entry.location;
  const values = { source, namespace: truncateLabelValue(namespace, maxBytes), name: truncateLabelValue(name, maxBytes), key: truncateLabelValue(key, maxBytes), room: 0 };
  values.room = 3 * (source.length + values.namespace.length + values.name.length + values.key.length);
  return values;
}

/** A certificate's identity labels: the location's, then its own (the same text a location's labels and labelText give). */
function writeIdentity(out: LineWriter, at: LocationValues, index: number, cert: CertRecord): void {
  out.raw(SOURCE);
  out.value(at.source);
  out.raw(NAMESPACE);
  out.value(at.namespace);
  out.raw(NAME);
  out.value(at.name);
  out.raw(KEY);
  out.value(at.key);
  out.raw(INDEX);
  out.number(index);
  out.raw(SUBJECT_CN);
  out.value(cert.subjectCN);
  out.raw(ISSUER_CN);
  out.value(cert.issuerCN);
  out.raw(SERIAL);
  out.value(cert.serial);
  out.raw(cert.isCA ? CA_TRUE : CA_FALSE);
}

/** `cert_info`'s own labels and its value: the light ones always, `subject`, `issuer` and `sans` when selected. */
function writeInfo(out: LineWriter, cert: CertRecord, info: InfoChoice): void {
  out.raw(FINGERPRINT);
  out.value(cert.fingerprintSha256);
  if (info.subject) {
    out.raw(SUBJECT);
    out.value(cert.subject);
  }
  if (info.issuer) {
    out.raw(ISSUER);
    out.value(cert.issuer);
  }
  if (info.sans) {
    out.raw(SANS);
    // Joined with commas, as each SAN escaped alone: a comma needs no escape.
    cert.sans.forEach((san, i) => {
      if (i > 0) out.raw(COMMA);
      out.value(san);
    });
  }
  out.raw(KEY_ALGORITHM);
  out.value(cert.keyAlgorithm);
  out.raw(KEY_BITS);
  out.number(cert.keyBits);
  out.raw(SIGNATURE_ALGORITHM);
  out.value(cert.signatureAlgorithm);
  out.raw(INFO_END);
}

/** The optional `cert_info` labels a scrape sends. */
interface InfoChoice {
  subject: boolean;
  issuer: boolean;
  sans: boolean;
}

/** Bytes of `cert_info`'s own label values, escaped, at most. */
function infoRoom(cert: CertRecord, info: InfoChoice): number {
  let units = cert.fingerprintSha256.length + cert.keyAlgorithm.length + cert.signatureAlgorithm.length;
  if (info.subject) units += cert.subject.length;
  if (info.issuer) units += cert.issuer.length;
  if (info.sans) for (const san of cert.sans) units += san.length + 1;
  return 3 * units;
}

const bool = (value: boolean): string => (value ? "1" : "0");

/**
 * The per-certificate families: the bulk of every body. Each is `name{identity} value` but
 * `cert_info`, which has labels of its own and the value 1. A line reads only its certificate, and
 * the clock when `changesAt` says so.
 */
const CERTIFICATE_FAMILIES: {
  name: CertificateFamilyName;
  help: string;
  value?: (cert: CertRecord, now: number) => number;
  /** The first time (Unix seconds) after `now` at which the line may read otherwise; never, when absent. */
  changesAt?: (cert: CertRecord, now: number) => number;
}[] = [
  {
    name: "cert_not_after_timestamp_seconds",
    help: "Certificate notAfter as Unix time in seconds.",
    value: (cert) => cert.notAfter,
  },
  {
    name: "cert_not_before_timestamp_seconds",
    help: "Certificate notBefore as Unix time in seconds.",
    value: (cert) => cert.notBefore,
  },
  {
    name: "cert_expires_in_days",
    help: "Days until the certificate's notAfter at scrape time; negative once expired.",
    value: (cert, now) => (cert.notAfter - now) / SECONDS_PER_DAY,
    changesAt: (_cert, now) => now,
  },
  {
    name: "cert_expired",
    help: "1 when the certificate's notAfter is in the past at scrape time.",
    value: (cert, now) => (cert.notAfter <= now ? 1 : 0),
    changesAt: (cert, now) => (cert.notAfter > now ? cert.notAfter : Infinity),
  },
  {
    name: "cert_info",
    help: "Certificate details; always 1.",
  },
];

/**
 * Certificates a newer one replaces at their location (src/superseded.ts), which the bundled expiry
 * alerts leave out. Not one of the selectable families above: the alerts read it whatever
 * metrics.certificateFamilies says, so it goes with every choice unless metrics.markSuperseded is false.
 */
const SUPERSEDED_FAMILY = {
  name: "cert_superseded",
  help: "1 for each certificate that a newer one with the same subject, key usage, extended key usage and CA flag replaces at the same location.",
  value: (): number => 1,
};

/** One certificate's line of a per-certificate family: `name{identity} value`, or cert_info's own labels and 1 when there is no `value`. */
function writeCertificate(family: LineWriter, open: Buffer, at: LocationValues, index: number, cert: CertRecord, value: ((cert: CertRecord, now: number) => number) | undefined, now: number, info: InfoChoice): void {
  const room = FIXED_LINE_BYTES + at.room + 3 * (cert.subjectCN.length + cert.issuerCN.length + cert.serial.length);
  family.begin(value ? room : room + infoRoom(cert, info));
  family.raw(open);
  writeIdentity(family, at, index, cert);
  if (value) {
    family.raw(VALUE);
    family.number(value(cert, now));
    family.raw(LINE_END);
  } else writeInfo(family, cert, info);
}

/**
 * What an entry has besides its location and certificates. A per-location family's sample reads
 * nothing else, so an entry without any of these has no sample in any family.
 */
function hasLocationFacts(entry: LocationEntry): boolean {
  return (
    entry.error !== undefined ||
    entry.stale !== undefined ||
    entry.thresholds !== undefined ||
    entry.certManager !== undefined ||
    entry.probe !== undefined ||
    entry.crls !== undefined ||
    entry.keyPair !== undefined ||
    entry.chain !== undefined
  );
}

interface LocationFamily {
  name: string;
  help: string;
  /** The line of an entry (`at`: its location's labels; `now`: Unix seconds), or nothing; reads only what hasLocationFacts checks. */
  sample: (entry: LocationEntry, at: string, now: number) => string | undefined;
  /** The first time after `now` at which the entry's line may read otherwise; never, when absent. */
  changesAt?: (entry: LocationEntry, now: number) => number;
}

/** One sample per CRL of a location that has a value, labelled with the CRL's index and issuer CN; undefined when none. */
function crlSamples(crls: readonly CrlRecord[] | undefined, value: (crl: CrlRecord) => number | undefined, name: string, at: string): string | undefined {
  if (!crls) return undefined;
  let out = "";
  crls.forEach((crl, index) => {
    const v = value(crl);
    if (v !== undefined) out += `${name}{${at},${labelText({ index: String(index), issuer_cn: crl.issuerCN })}} ${v}\n`;
  });
  return out || undefined;
}

/** The per-location families: at most one sample per location each (a state set one per state, a CRL family one per CRL), in the order they are exposed. */
const LOCATION_FAMILIES: LocationFamily[] = [
  {
    name: "cert_read_errors",
    help: "1 for each location whose certificates cannot currently be read, with the reason.",
    sample: (entry, at) => {
      const failure = failureReason(entry);
      return failure && `cert_read_errors{${at},reason="${escapeLabelValue(failure)}"} 1\n`;
    },
  },
  {
    name: "cert_location_stale",
    help: "1 for each location whose certificates are last-known values: its source can no longer read it (a refused namespace).",
    sample: (entry, at) => (entry.stale ? `cert_location_stale{${at}} 1\n` : undefined),
  },
  {
    name: "cert_threshold_warning_seconds",
    help: "Per-location warning threshold in seconds, from the cert-expiry-exporter.io/warning-days annotation.",
    sample: ({ thresholds }, at) => (thresholds?.warningDays === undefined ? undefined : `cert_threshold_warning_seconds{${at}} ${thresholds.warningDays * SECONDS_PER_DAY}\n`),
  },
  {
    name: "cert_threshold_critical_seconds",
    help: "Per-location critical threshold in seconds, from the cert-expiry-exporter.io/critical-days annotation.",
    sample: ({ thresholds }, at) => (thresholds?.criticalDays === undefined ? undefined : `cert_threshold_critical_seconds{${at}} ${thresholds.criticalDays * SECONDS_PER_DAY}\n`),
  },
  {
    name: "cert_certmanager_certificate_info",
    help: "The cert-manager Certificate that manages a Secret; always 1.",
    sample: ({ certManager: link }, at) =>
      link && `cert_certmanager_certificate_info{${at},${labelText({ certificate: link.certificateName, issuer: link.issuerName, issuer_kind: link.issuerKind })}} 1\n`,
  },
  {
    name: "cert_endpoint_probe_success",
    help: "1 when the TLS handshake completed and certificates were read.",
    sample: ({ probe }, at) => probe && `cert_endpoint_probe_success{${at}} ${bool(probe.success)}\n`,
  },
  {
    name: "cert_endpoint_chain_verified",
    help: "1 when the presented chain verified against the trust store.",
    sample: ({ probe }, at) => probe && `cert_endpoint_chain_verified{${at}} ${bool(probe.chainVerified)}\n`,
  },
  {
    name: "cert_endpoint_verify_error",
    help: "Why the presented chain did not verify; always 1.",
    sample: ({ probe }, at) => (probe?.verifyError ? `cert_endpoint_verify_error{${at},reason="${escapeLabelValue(probe.verifyError)}"} 1\n` : undefined),
  },
  {
    name: "cert_endpoint_hostname_match",
    help: "1 when the leaf certificate matches the name probed.",
    sample: ({ probe }, at) => probe && `cert_endpoint_hostname_match{${at}} ${bool(probe.hostnameMatch)}\n`,
  },
  {
    name: "cert_endpoint_tls_info",
    help: "Negotiated TLS version and cipher; always 1.",
    sample: ({ probe }, at) => (probe?.tlsVersion ? `cert_endpoint_tls_info{${at},${labelText({ tls_version: probe.tlsVersion, cipher: probe.cipher })}} 1\n` : undefined),
  },
  {
    name: "cert_endpoint_probe_duration_seconds",
    help: "Duration of the last probe of the endpoint.",
    sample: ({ probe }, at) => probe && `cert_endpoint_probe_duration_seconds{${at}} ${probe.durationSeconds}\n`,
  },
  {
    name: "cert_endpoint_ocsp_stapled",
    help: "1 when the server stapled an OCSP response to the handshake, 0 when it stapled none.",
    sample: ({ probe }, at) => probe?.ocsp && `cert_endpoint_ocsp_stapled{${at}} ${bool(probe.ocsp.stapled)}\n`,
  },
  {
    name: "cert_endpoint_ocsp_status",
    help: "The leaf's status in the stapled OCSP response: one series per status, 1 for the current one.",
    // A state set: every status, so that a change of status moves a value rather than a series.
    sample: ({ probe }, at) => {
      const status = probe?.ocsp?.status;
      return status && OCSP_STATUSES.map((each) => `cert_endpoint_ocsp_status{${at},status="${each}"} ${bool(each === status)}\n`).join("");
    },
  },
  {
    name: "cert_endpoint_ocsp_this_update_timestamp_seconds",
    help: "thisUpdate of the leaf's stapled OCSP response as Unix time in seconds.",
    sample: ({ probe }, at) => (probe?.ocsp?.thisUpdate === undefined ? undefined : `cert_endpoint_ocsp_this_update_timestamp_seconds{${at}} ${probe.ocsp.thisUpdate}\n`),
  },
  {
    name: "cert_endpoint_ocsp_next_update_timestamp_seconds",
    help: "nextUpdate of the leaf's stapled OCSP response as Unix time in seconds; absent when the responder set none.",
    sample: ({ probe }, at) => (probe?.ocsp?.nextUpdate === undefined ? undefined : `cert_endpoint_ocsp_next_update_timestamp_seconds{${at}} ${probe.ocsp.nextUpdate}\n`),
  },
  {
    name: "cert_endpoint_ocsp_revocation_timestamp_seconds",
    help: "revocationTime of the leaf when its stapled OCSP response says revoked, as Unix time in seconds.",
    sample: ({ probe }, at) => (probe?.ocsp?.revocationTime === undefined ? undefined : `cert_endpoint_ocsp_revocation_timestamp_seconds{${at}} ${probe.ocsp.revocationTime}\n`),
  },
  {
    name: "cert_crl_this_update_timestamp_seconds",
    help: "thisUpdate of each CRL found at a location (index: its place among the location's CRLs), as Unix time in seconds.",
    sample: ({ crls }, at) => crlSamples(crls, (crl) => crl.thisUpdate, "cert_crl_this_update_timestamp_seconds", at),
  },
  {
    name: "cert_crl_next_update_timestamp_seconds",
    help: "nextUpdate of each CRL found at a location, as Unix time in seconds; no sample for a CRL that sets none.",
    sample: ({ crls }, at) => crlSamples(crls, (crl) => crl.nextUpdate, "cert_crl_next_update_timestamp_seconds", at),
  },
  {
    name: "cert_crl_revoked_certificates",
    help: "How many certificates each CRL found at a location revokes.",
    sample: ({ crls }, at) => crlSamples(crls, (crl) => crl.revoked, "cert_crl_revoked_certificates", at),
  },
  // One series per location with the current value as a label, not a state set: these are per
  // Secret, and a state set would add five series to each of 100,000 Secrets.
  {
    name: "cert_private_key_status",
    help: "Whether the private key beside a presented certificate is its own: match, mismatch, encrypted, unreadable, unsupported or missing; always 1.",
    sample: ({ keyPair }, at) => keyPair && `cert_private_key_status{${at},status="${keyPair}"} 1\n`,
  },
  {
    name: "cert_chain_problem",
    help: "The first problem of a presented bundle's chain from its leaf to a trust anchor, or none; always 1.",
    sample: ({ chain }, at, now) => chain && `cert_chain_problem{${at},problem="${problemAt(chain, now)}"} 1\n`,
    changesAt: ({ chain }, now) => (chain ? problemChangesAt(chain, now) : Infinity),
  },
];

/**
 * Segments: runs of consecutive entries of a scrape's snapshot, the unit by which a gzip body's
 * pieces are kept between scrapes. An entry whose revision hashes to a boundary starts one: a
 * location added, removed or replaced changes its own segment and at most the one after it (when
 * the boundary it was or became joins or splits them), not every segment after it; and hashing a
 * number costs nothing next to hashing each location's names, 70–150 ms a scrape at 200,000. A
 * segment also ends at SEGMENT_MAX_ENTRIES entries or SEGMENT_MAX_CERTIFICATES certificates, which
 * bound one piece's render and text.
 */
const SEGMENT_BOUNDARY_MASK = 255;
const SEGMENT_MAX_ENTRIES = 1024;
const SEGMENT_MAX_CERTIFICATES = 2048;

interface Segment {
  /** Entries start to end − 1 of the snapshot. */
  readonly start: number;
  readonly end: number;
}

/** MurmurHash3's finaliser over a revision's low 32 bits: consecutive revisions land far apart. */
function revisionHash(revision: number): number {
  let h = Math.imul(revision ^ (revision >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Cuts the snapshot into segments, yielding to the event loop as a render does. */
async function segmentsOf(entries: readonly HeldEntry[]): Promise<Segment[]> {
  const segments: Segment[] = [];
  let start = 0;
  let certificates = 0;
  let sliceStarted = performance.now();
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i] as HeldEntry;
    const count = entry.certificates.length;
    if (i > start && ((revisionHash(entry.revision) & SEGMENT_BOUNDARY_MASK) === 0 || i - start >= SEGMENT_MAX_ENTRIES || certificates + count > SEGMENT_MAX_CERTIFICATES)) {
      segments.push({ start, end: i });
      start = i;
      certificates = 0;
    }
    certificates += count;
    if ((i & CLOCK_MASK) === CLOCK_MASK && performance.now() - sliceStarted >= SLICE_MS) {
      await yieldToEventLoop();
      sliceStarted = performance.now();
    }
  }
  if (entries.length > start) segments.push({ start, end: entries.length });
  return segments;
}

/** What one scrape renders: the snapshot, its segments, the clock and the families it sends. */
interface Scrape {
  readonly entries: readonly HeldEntry[];
  readonly segments: readonly Segment[];
  /** Unix seconds when the scrape started: days left and expiry are computed from it. */
  readonly now: number;
  readonly families: readonly ExposedFamily[];
  /** The selection and label limit the families were made from: pieces kept under another are not sent. */
  readonly signature: string;
  /** Per segment, per location family, the entries with a sample in it, found once when first asked. */
  readonly samples: Map<Segment, LocationEntry[][]>;
}

/** One family as a scrape sends it: its header, and the lines of a segment's entries. */
interface ExposedFamily {
  readonly header: Buffer;
  /** Writes the segment's lines; returns the first time (Unix seconds) after the scrape's at which they may read otherwise. */
  write(out: LineWriter, scrape: Scrape, segment: Segment): number;
}

/** A family's header, encoded once. */
const HEADERS = new Map<string, Buffer>();
function headerOf(name: string, help: string): Buffer {
  let header = HEADERS.get(name);
  if (!header) HEADERS.set(name, (header = bytes(`# HELP ${name} ${help}\n# TYPE ${name} gauge\n`)));
  return header;
}

/** The families a selection sends, in the order they are exposed. */
function exposedFamilies({ certificateFamilies, infoLabels, leafOnly, markSuperseded }: SeriesSelection, maxBytes: number): ExposedFamily[] {
  const info: InfoChoice = { subject: infoLabels.includes("subject"), issuer: infoLabels.includes("issuer"), sans: infoLabels.includes("sans") };
  const families: ExposedFamily[] = [];
  for (const { name, help, value, changesAt } of CERTIFICATE_FAMILIES) {
    if (!certificateFamilies.includes(name)) continue;
    const open = bytes(`${name}{`);
    families.push({
      header: headerOf(name, help),
      write(out, { entries, now }, { start, end }) {
        let changes = Infinity;
        for (let e = start; e < end; e++) {
          const entry = entries[e] as HeldEntry;
          const certificates = entry.certificates;
          if (certificates.length === 0) continue;
          const at = locationValues(entry, maxBytes);
          for (let index = 0; index < certificates.length; index++) {
            const cert = certificates[index] as CertRecord;
            // The index stays the certificate's place in its location, so a leaf keeps its identity.
            if (!certificateSelected(leafOnly, cert.isCA, index)) continue;
            writeCertificate(out, open, at, index, cert, value, now, info);
            if (changesAt) changes = Math.min(changes, changesAt(cert, now));
          }
        }
        return changes;
      },
    });
  }
  if (markSuperseded) {
    const { name, help, value } = SUPERSEDED_FAMILY;
    const open = bytes(`${name}{`);
    families.push({
      header: headerOf(name, help),
      write(out, { entries, now }, { start, end }) {
        for (let e = start; e < end; e++) {
          const entry = entries[e] as HeldEntry;
          if (!entry.superseded) continue;
          const at = locationValues(entry, maxBytes);
          for (const index of entry.superseded) {
            const cert = entry.certificates[index] as CertRecord;
            // A certificate not sent is not marked either.
            if (certificateSelected(leafOnly, cert.isCA, index)) writeCertificate(out, open, at, index, cert, value, now, info);
          }
        }
        return Infinity;
      },
    });
  }
  LOCATION_FAMILIES.forEach(({ name, help, sample, changesAt }, f) => {
    families.push({
      header: headerOf(name, help),
      write(out, scrape, segment) {
        let changes = Infinity;
        for (const entry of (samplesOf(scrape, segment)[f] as LocationEntry[])) {
          const line = sample(entry, locationLabels(entry, maxBytes), scrape.now);
          if (line) out.add(line);
          if (changesAt) changes = Math.min(changes, changesAt(entry, scrape.now));
        }
        return changes;
      },
    });
  });
  return families;
}

/**
 * The segment's entries with a sample in each per-location family. Most locations have none in any:
 * one pass finds those that have one (asked without their labels, built only for a location that has
 * a sample), and each family goes over its own. A pass of each family over every entry made V8
 * recompile the loop for each family's sample and cost 4 s of CPU a scrape at 200,000 locations.
 */
function samplesOf(scrape: Scrape, segment: Segment): LocationEntry[][] {
  let lists = scrape.samples.get(segment);
  if (lists) return lists;
  lists = LOCATION_FAMILIES.map(() => []);
  for (let e = segment.start; e < segment.end; e++) {
    const entry = scrape.entries[e] as HeldEntry;
    if (!hasLocationFacts(entry)) continue;
    for (let f = 0; f < LOCATION_FAMILIES.length; f++) if ((LOCATION_FAMILIES[f] as LocationFamily).sample(entry, "", scrape.now)) (lists[f] as LocationEntry[]).push(entry);
  }
  scrape.samples.set(segment, lists);
  return lists;
}

/** A piece of a gzip body: one family's lines of one segment, compressed, and how long it holds. */
interface PieceSlot {
  /** Bytes of its text; 0 for a segment with no line in the family, which has no piece. */
  readonly length: number;
  /** The piece, or its compression while in flight (the slot then takes the piece, and the promise goes). */
  piece: DeflatedPiece | Promise<DeflatedPiece>;
  /** The clock (Unix seconds) it was rendered at, and the first time its text may read otherwise. */
  readonly renderedAt: number;
  readonly validUntil: number;
}

/** The slot of every segment with no line in a family: such a segment has nothing that reads the clock either. */
const NO_LINES: PieceSlot = { length: 0, piece: { deflated: Buffer.alloc(0), crc: 0, length: 0 }, renderedAt: -Infinity, validUntil: Infinity };

/**
 * A segment's pieces, one slot per family, kept while its entries are the same objects. Revisions in
 * a typed array: the heap of a large inventory is mostly its state, and kept pieces should not add to it.
 */
interface CachedSegment {
  readonly revisions: Float64Array;
  readonly pieces: (PieceSlot | undefined)[];
}

function sameRevisions(revisions: Float64Array, entries: readonly HeldEntry[], { start, end }: Segment): boolean {
  if (revisions.length !== end - start) return false;
  for (let e = start; e < end; e++) if ((entries[e] as HeldEntry).revision !== revisions[e - start]) return false;
  return true;
}

/** Compressed pieces in flight at once: the thread pool compresses them while the event loop renders the next. */
const PIECES_IN_FLIGHT = 4;

/** Each family's header as a compressed piece, made once. */
const HEADER_PIECES = new Map<Buffer, DeflatedPiece>();
function headerPiece(header: Buffer): DeflatedPiece {
  let piece = HEADER_PIECES.get(header);
  if (!piece) HEADER_PIECES.set(header, (piece = deflatePieceSync(header, METRICS_GZIP_LEVEL)));
  return piece;
}

/**
 * Renders the inventory and the exporter's own metrics as a stream of Buffer chunks, plain or gzip.
 *
 * Each family is one pass over the entries, segment by segment, and its chunks go to the scraper as
 * they fill, so a scrape holds a few chunks rather than the whole body (71 MiB for 60,000
 * certificates) and sending overlaps rendering. Every pass of one scrape walks the same snapshot of
 * the entries, so a location changed during a scrape is in every family as it was or in none. Days
 * left are computed from the clock when the scrape starts. Destroying the stream stops the render at
 * its next chunk or slice.
 *
 * A gzip body is made of pieces, one per family and segment, compressed apart (src/gzip-pieces.ts),
 * and the renderer keeps the last body's pieces: a segment whose entries are the objects they were
 * (a changed location is a new object) sends its pieces again without rendering or compressing, but
 * for lines that read the clock, rendered again once they may have changed. Between scrapes it holds
 * about the compressed body, and a revision number per location; no plain text.
 */
export class MetricsRenderer {
  readonly #inventory: Inventory;
  readonly #health: Health;
  readonly #maxLabelValueLength: number;
  readonly #selection: () => SeriesSelection;
  /** The pieces of the last gzip body, by the revision of each segment's first entry, and the families they were rendered for. */
  #kept: { signature: string; segments: Map<number, CachedSegment> } = { signature: "", segments: new Map() };

  /**
   * `maxLabelValueLength`: limits.maxLabelValueLength, bytes of one label value. `selection`: the
   * series to send, asked at the start of every scrape so that a reload changes the next one.
   */
  constructor(inventory: Inventory, health: Health, { maxLabelValueLength = Infinity, selection = () => DEFAULT_SELECTION }: { maxLabelValueLength?: number; selection?: () => SeriesSelection } = {}) {
    this.#inventory = inventory;
    this.#health = health;
    this.#maxLabelValueLength = maxLabelValueLength;
    this.#selection = selection;
  }

  /** The whole exposition as a stream, rendered as the scraper reads it. */
  stream(format: ExpositionFormat = "prometheus", encoding: "identity" | "gzip" = "identity"): Readable {
    const chunks = encoding === "gzip" ? this.#gzipExposition(format) : this.#exposition(format);
    return Readable.from(chunks, { objectMode: false, highWaterMark: CHUNK_BYTES });
  }

  /** The whole exposition, collected. */
  async render(format: ExpositionFormat = "prometheus"): Promise<Buffer[]> {
    return collect(this.#exposition(format));
  }

  /** The inventory's series alone, without the exporter's own metrics, collected. */
  async renderCertificates(now = Date.now() / 1000): Promise<Buffer[]> {
    return collect(this.#plainChunks(await this.#scrape(now)));
  }

  async #scrape(now: number): Promise<Scrape> {
    const entries = [...this.#inventory.entries()];
    const selection = this.#selection();
    const maxBytes = this.#maxLabelValueLength;
    return {
      entries,
      segments: await segmentsOf(entries),
      now,
      families: exposedFamilies(selection, maxBytes),
      signature: JSON.stringify([selection, maxBytes]),
      samples: new Map(),
    };
  }

  /** The exporter's own metrics: prom-client closes an OpenMetrics body with "# EOF", so they go last. */
  async #ownMetrics(format: ExpositionFormat): Promise<Buffer> {
    const registry = format === "openmetrics" ? this.#health.openMetrics : this.#health.prometheus;
    return Buffer.from(await registry.metrics(), "utf8");
  }

  async *#exposition(format: ExpositionFormat): AsyncGenerator<Buffer> {
    const started = performance.now();
    yield* this.#plainChunks(await this.#scrape(Date.now() / 1000));
    this.#health.renderDuration.set((performance.now() - started) / 1000);
    yield await this.#ownMetrics(format);
  }

  /**
   * Family by family, segment by segment. It yields to the event loop after every chunk it fills, and
   * after SLICE_MS of rendering that filled none: a scraper that reads as fast as the render writes
   * never pushes back, and would otherwise keep every other request waiting for whole renders.
   */
  async *#plainChunks(scrape: Scrape): AsyncGenerator<Buffer> {
    let sliceStarted = performance.now();
    for (const family of scrape.families) {
      const out = new LineWriter(family.header);
      for (const segment of scrape.segments) {
        family.write(out, scrape, segment);
        if (out.filled || performance.now() - sliceStarted >= SLICE_MS) {
          yield* out.takeFull();
          await yieldToEventLoop();
          sliceStarted = performance.now();
        }
      }
      yield* out.finish();
    }
  }

  /**
   * Renders and compresses the gzip pieces of the inventory's series and keeps them, sending nothing,
   * so that the next gzip scrape finds them kept: the server runs it once the first scans are done,
   * sparing the first scrape after a start the whole render (5 s at 100,000 Secrets). It yields as a
   * scrape does, and stops at the next piece once `signal` aborts.
   */
  async warm(signal: AbortSignal): Promise<void> {
    const scrape = await this.#scrape(Date.now() / 1000);
    const compressor = new PieceCompressor(METRICS_GZIP_LEVEL);
    const pieces = this.#gzipPieces(scrape, this.#keptSegments(scrape), compressor, async (piece) => (await piece).deflated);
    try {
      while (!signal.aborted && !(await pieces.next()).done);
    } finally {
      await pieces.return(undefined);
      compressor.close();
    }
  }

  async *#gzipExposition(format: ExpositionFormat): AsyncGenerator<Buffer> {
    const started = performance.now();
    const trailer = new GzipTrailer();
    const send = async (piece: DeflatedPiece | Promise<DeflatedPiece>): Promise<Buffer> => {
      const done = await piece;
      trailer.add(done);
      return done.deflated;
    };
    yield GZIP_HEADER;
    const scrape = await this.#scrape(Date.now() / 1000);
    const kept = this.#keptSegments(scrape);
    const compressor = new PieceCompressor(METRICS_GZIP_LEVEL);
    try {
      yield* this.#gzipPieces(scrape, kept, compressor, send);
      this.#health.renderDuration.set((performance.now() - started) / 1000);
      yield await send(compressor.compress([await this.#ownMetrics(format)]));
    } finally {
      compressor.close();
    }
    yield trailer.end();
  }

  /** Every family's pieces, in order, the kept ones as they are and the others rendered and compressed. */
  async *#gzipPieces(scrape: Scrape, kept: readonly CachedSegment[], compressor: PieceCompressor, send: (piece: DeflatedPiece | Promise<DeflatedPiece>) => Promise<Buffer>): AsyncGenerator<Buffer> {
    const inFlight: (DeflatedPiece | Promise<DeflatedPiece>)[] = [];
    let sliceStarted = performance.now();
    for (const [f, family] of scrape.families.entries()) {
      let headerSent = false;
      for (const [s, segment] of scrape.segments.entries()) {
        const slot = this.#slot(kept[s] as CachedSegment, f, family, scrape, segment, compressor);
        if (slot.length === 0) continue;
        if (!headerSent) {
          inFlight.push(headerPiece(family.header));
          headerSent = true;
        }
        inFlight.push(slot.piece);
        while (inFlight.length > PIECES_IN_FLIGHT) yield await send(inFlight.shift() as DeflatedPiece | Promise<DeflatedPiece>);
        if (performance.now() - sliceStarted >= SLICE_MS) {
          await yieldToEventLoop();
          sliceStarted = performance.now();
        }
      }
    }
    for (const piece of inFlight) yield await send(piece);
  }

  /** The kept pieces of each of the scrape's segments (empty for a new or changed one); from now on, the only ones kept. */
  #keptSegments({ entries, segments, signature }: Scrape): CachedSegment[] {
    const previous = this.#kept.signature === signature ? this.#kept.segments : new Map<number, CachedSegment>();
    const next = new Map<number, CachedSegment>();
    const kept = segments.map((segment) => {
      const first = (entries[segment.start] as HeldEntry).revision;
      let cached = previous.get(first);
      if (!cached || !sameRevisions(cached.revisions, entries, segment)) {
        const revisions = new Float64Array(segment.end - segment.start);
        for (let e = segment.start; e < segment.end; e++) revisions[e - segment.start] = (entries[e] as HeldEntry).revision;
        cached = { revisions, pieces: [] };
      }
      next.set(first, cached);
      return cached;
    });
    this.#kept = { signature, segments: next };
    return kept;
  }

  /** The segment's piece of a family: the kept one while it holds, else rendered now and compressed on the thread pool. */
  #slot(cached: CachedSegment, f: number, family: ExposedFamily, scrape: Scrape, segment: Segment, compressor: PieceCompressor): PieceSlot {
    const now = scrape.now;
    const kept = cached.pieces[f];
    if (kept && kept.renderedAt <= now && now < kept.validUntil) return kept;
    const out = new LineWriter();
    const validUntil = family.write(out, scrape, segment);
    const chunks = out.finish();
    const length = chunks.reduce((sum, chunk) => sum + chunk.length, 0);
    if (length === 0) return (cached.pieces[f] = NO_LINES);
    const compressing = compressor.compress(chunks);
    // Lines that never read the clock hold whatever it says, even if it is set back.
    const slot: PieceSlot = { length, piece: compressing, renderedAt: validUntil === Infinity ? -Infinity : now, validUntil };
    cached.pieces[f] = slot;
    compressing.then(
      (piece) => (slot.piece = piece),
      // A piece that failed is not kept; its error reaches the scrape that awaits it.
      () => {
        if (cached.pieces[f] === slot) cached.pieces[f] = undefined;
      },
    );
    return slot;
  }
}

async function collect(chunks: AsyncIterable<Buffer>): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for await (const chunk of chunks) out.push(chunk);
  return out;
}

/** Picks the format a scraper asked for in its Accept header. */
export function negotiateFormat(accept: string | undefined): ExpositionFormat {
  return accept?.includes("application/openmetrics-text") ? "openmetrics" : "prometheus";
}

/**
 * gzip level of a compressed /metrics body. At 50,000 certificates (bench/render.ts) level 1 sends
 * about 8 % more bytes than level 6 and spends about a third less CPU compressing them; either cuts
 * the body about fivefold, and a scrape's CPU matters more here than its last few bytes.
 */
export const METRICS_GZIP_LEVEL = 1;

/**
 * True when an Accept-Encoding header takes gzip: named (or `x-gzip`), or covered by `*`, with a
 * q-value above 0.
 */
export function acceptsGzip(acceptEncoding: string | undefined): boolean {
  let wildcard = false;
  for (const entry of acceptEncoding?.toLowerCase().split(",") ?? []) {
    const [coding, ...params] = entry.split(";").map((part) => part.trim());
    const q = params.find((param) => param.startsWith("q="));
    const accepted = q === undefined || Number(q.slice(2)) > 0;
    if (coding === "gzip" || coding === "x-gzip") return accepted;
    if (coding === "*") wildcard = accepted;
  }
  return wildcard;
}
