import { createHash } from "node:crypto";
import { CertReadError } from "../errors.js";
import type { CertRecord } from "./record.js";
import { type CertFormat, parseCertificates } from "./parse.js";

type Entry = { records: readonly CertRecord[] } | { error: CertReadError };

/**
 * A bounded LRU of parse results keyed by the SHA-256 of the bytes and the format, so bytes that did
 * not change are parsed once however often a source re-reads them. Failures are cached too: a broken
 * Secret is not re-parsed on every scan. Only records and errors are kept, never the bytes.
 * `maxEntries` 0 disables caching (every call parses; the counters still count misses).
 */
export class ParseCache {
  readonly maxEntries: number;
  readonly #entries = new Map<string, Entry>();
  #hits = 0;
  #misses = 0;

  constructor(maxEntries = 10_000) {
    if (!Number.isInteger(maxEntries) || maxEntries < 0) throw new RangeError("maxEntries must be a non-negative integer");
    this.maxEntries = maxEntries;
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
  }

  /** Records of `bytes`, shared and frozen: do not mutate. Throws CertReadError as parseCertificates does. */
  parse(bytes: Uint8Array, format: CertFormat = "auto"): readonly CertRecord[] {
    if (this.maxEntries === 0) {
      this.#misses++;
      return parseCertificates(bytes, format);
    }
    const key = createHash("sha256").update(bytes).digest("base64") + format;
    const hit = this.#entries.get(key);
    if (hit) {
      this.#hits++;
      // Move to the most recently used end.
      this.#entries.delete(key);
      this.#entries.set(key, hit);
      return unwrap(hit);
    }
    this.#misses++;
    let entry: Entry;
    try {
      entry = { records: Object.freeze(parseCertificates(bytes, format).map((r) => Object.freeze({ ...r, sans: Object.freeze([...r.sans]) as string[] }))) };
    } catch (err) {
      if (!(err instanceof CertReadError)) throw err;
      entry = { error: err };
    }
    this.#entries.set(key, entry);
    while (this.#entries.size > this.maxEntries) {
      const oldest = this.#entries.keys().next().value as string;
      this.#entries.delete(oldest);
    }
    return unwrap(entry);
  }
}

function unwrap(entry: Entry): readonly CertRecord[] {
  if ("records" in entry) return entry.records;
  // A fresh error per throw, so one caller attaching state to it cannot affect another.
  const { reason, message, pemLabels } = entry.error;
  throw new CertReadError(reason, message, { pemLabels });
}
