import { hash } from "node:crypto";
import { CertReadError } from "../errors.js";
import type { Tlv } from "./der.js";
import { decodeCertificate } from "./decode.js";
import type { CertList, CertRecord, CrlRecord } from "./record.js";
import { type CertFormat, type ParsedCertificates, parseCertificates } from "./parse.js";
import { truncateLabelValue } from "./truncate.js";
import { Lru } from "./lru.js";

type Entry = { records: CertList } | { error: CertReadError };

/** What one parse may produce: see `limits` in the configuration. */
export interface ParseLimits {
  /** More certificates in one input is `too_many_certificates`. */
  maxCertificates: number;
  /** Every text field of a record is cut to this many UTF-8 bytes (truncateLabelValue). */
  maxLabelValueLength: number;
}

export const UNLIMITED: ParseLimits = { maxCertificates: Infinity, maxLabelValueLength: Infinity };

/**
 * Cuts every text field that becomes a label value, so a 10 kB CN costs neither a scrape that
 * Prometheus's label_value_length_limit refuses nor 10 kB of memory per copy.
 */
function bounded(record: CertRecord, maxBytes: number): CertRecord {
  if (maxBytes === Infinity) return record;
  const cut = (value: string) => truncateLabelValue(value, maxBytes);
  record.subject = cut(record.subject);
  record.subjectCN = cut(record.subjectCN);
  record.issuer = cut(record.issuer);
  record.issuerCN = cut(record.issuerCN);
  record.serial = cut(record.serial);
  record.keyAlgorithm = cut(record.keyAlgorithm);
  record.signatureAlgorithm = cut(record.signatureAlgorithm);
  // The SANs become one label, joined with ","; past the limit they are kept as that one cut value.
  const sans = record.sans.map(cut);
  const joined = sans.join(",");
  record.sans = Buffer.byteLength(joined, "utf8") > maxBytes ? [cut(joined)] : sans;
  return record;
}

/** Freezes a record the cache alone holds, before it is shared. */
function frozen(record: CertRecord): CertRecord {
  Object.freeze(record.sans);
  return Object.freeze(record);
}

/**
 * A bounded LRU of parse results keyed by the SHA-256 of the bytes and the format, so bytes that did
 * not change are parsed once however often a source re-reads them. Failures are cached too: a broken
 * Secret is not re-parsed on every scan. Only records and errors are kept, never the bytes.
 *
 * Below it, a second LRU keyed by each certificate's own DER: the same CA or intermediate copied into
 * thousands of Secrets, each with other bytes around it, is decoded once and held as one record.
 * `maxEntries` 0 disables both (every call parses; the counters still count misses).
 */
export class ParseCache {
  readonly maxEntries: number;
  readonly limits: ParseLimits;
  readonly #entries: Lru<Entry>;
  readonly #certificates: Lru<CertRecord>;
  readonly #decode = (buf: Uint8Array, tlv: Tlv): CertRecord => {
    // The key is the certificate's SHA-256 fingerprint, which the record then reuses.
    const fingerprint = hash("sha256", buf.subarray(tlv.start, tlv.end), "hex");
    let record = this.#certificates.get(fingerprint);
    if (!record) {
      record = frozen(bounded(decodeCertificate(buf, tlv, fingerprint), this.limits.maxLabelValueLength));
      if (this.maxEntries > 0) this.#certificates.set(fingerprint, record);
    }
    return record;
  };
  #hits = 0;
  #misses = 0;

  constructor(maxEntries = 10_000, limits: ParseLimits = UNLIMITED) {
    if (!Number.isInteger(maxEntries) || maxEntries < 0) throw new RangeError("maxEntries must be a non-negative integer");
    this.maxEntries = maxEntries;
    this.limits = limits;
    this.#entries = new Lru(maxEntries);
    this.#certificates = new Lru(maxEntries);
  }

  get hits(): number {
    return this.#hits;
  }

  get misses(): number {
    return this.#misses;
  }

  get size(): number {
    return this.#entries.size;
  }

  clear(): void {
    this.#entries.clear();
    this.#certificates.clear();
  }

  /**
   * Records of `bytes` with each certificate's DER beside it (views into `bytes`, in record order), for
   * the checks that need the certificates themselves (src/checks.ts). Certificates come from the
   * per-certificate LRU; the input is not remembered, since the DER views would keep its bytes alive.
   */
  parseWithDer(bytes: Uint8Array, format: CertFormat = "auto"): { records: CertList; ders: Uint8Array[] } {
    const ders: Uint8Array[] = [];
    const decode = (buf: Uint8Array, tlv: Tlv): CertRecord => {
      const record = this.#decode(buf, tlv);
      // After the decode: a block that is not a certificate gets no record and must get no DER.
      ders.push(buf.subarray(tlv.start, tlv.end));
      return record;
    };
    this.#misses++;
    const records = Object.freeze(withBoundedCrls(exactly(parseCertificates(bytes, format, { decode, maxCertificates: this.limits.maxCertificates })), this.limits.maxLabelValueLength));
    return { records, ders };
  }

  /** Records of `bytes`, shared and frozen: do not mutate. Throws CertReadError as parseCertificates does. */
  parse(bytes: Uint8Array, format: CertFormat = "auto"): CertList {
    const options = { decode: this.#decode, maxCertificates: this.limits.maxCertificates };
    if (this.maxEntries === 0) {
      this.#misses++;
      return withBoundedCrls(parseCertificates(bytes, format, options), this.limits.maxLabelValueLength);
    }
    const key = hash("sha256", bytes, "base64") + format;
    const hit = this.#entries.get(key);
    if (hit) {
      this.#hits++;
      return unwrap(hit);
    }
    this.#misses++;
    let entry: Entry;
    try {
      entry = { records: Object.freeze(withBoundedCrls(exactly(parseCertificates(bytes, format, options)), this.limits.maxLabelValueLength)) };
    } catch (err) {
      if (!(err instanceof CertReadError)) throw err;
      entry = { error: err };
    }
    this.#entries.set(key, entry);
    return unwrap(entry);
  }
}

/**
 * The records in an array of their own length. The parser collects them with push, which gives an
 * array room for 17 elements from the first one (152 bytes where one or two need 24 or 32); the
 * inventory then keeps that array for as long as the location lives: 7.6 MiB of unused slots for
 * 20,000 TLS Secrets, 38 MiB for 100,000 (bench/secrets.ts, heap snapshot). slice() copies into
 * an exactly sized array.
 */
function exactly(records: ParsedCertificates): ParsedCertificates {
  const copy: ParsedCertificates = records.slice();
  if (records.crls) copy.crls = records.crls;
  return copy;
}

/** The CRLs' label values (their issuer) cut to the limit, and frozen, as certificate records are. */
function withBoundedCrls(records: ParsedCertificates, maxBytes: number): ParsedCertificates {
  if (records.crls) {
    const crls = records.crls.map((crl): CrlRecord => Object.freeze({ ...crl, issuer: truncateLabelValue(crl.issuer, maxBytes), issuerCN: truncateLabelValue(crl.issuerCN, maxBytes) }));
    records.crls = Object.freeze(crls) as CrlRecord[];
  }
  return records;
}

function unwrap(entry: Entry): CertList {
  if ("records" in entry) return entry.records;
  // A fresh error per throw, so one caller attaching state to it cannot affect another.
  const { reason, message, pemLabels } = entry.error;
  throw new CertReadError(reason, message, { pemLabels });
}
