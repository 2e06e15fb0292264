import { Readable, pipeline } from "node:stream";
import { setImmediate as yieldToEventLoop } from "node:timers/promises";
import { createGzip } from "node:zlib";
import type { CertRecord } from "./certs/record.js";
import { truncateLabelValue } from "./certs/truncate.js";
import type { Health } from "./health.js";
import type { Inventory } from "./inventory.js";
import { failureReason, OCSP_STATUSES, type LocationEntry } from "./model.js";
import { DEFAULT_SELECTION, type CertificateFamilyName, type OptionalInfoLabel, type SeriesSelection } from "./series-selection.js";

export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";
export const OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8";

export type ExpositionFormat = "prometheus" | "openmetrics";

const SECONDS_PER_DAY = 86_400;
/** Entries rendered at most between two yields to the event loop, when they fill no chunk sooner. */
const ENTRIES_PER_SLICE = 2_000;

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

/**
 * One metric family's samples as Buffer chunks, header first once it has a sample. Lines are encoded
 * straight into the chunk: concatenating them into strings first builds ropes that are slow to flatten.
 */
class Family {
  readonly #header: string;
  readonly #full: Buffer[] = [];
  #chunk = Buffer.allocUnsafe(CHUNK_BYTES);
  #used = 0;
  #empty = true;

  constructor(name: string, help: string) {
    this.#header = `# HELP ${name} ${help}\n# TYPE ${name} gauge\n`;
  }

  add(line: string): void {
    if (this.#empty) {
      this.#empty = false;
      this.#write(this.#header);
    }
    this.#write(line);
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

  #write(text: string): void {
    // A UTF-16 unit takes at most 3 bytes in UTF-8; a line that could not fit gets a chunk of its own.
    const room = text.length * 3;
    if (this.#used + room > this.#chunk.length) {
      if (this.#used > 0) this.#full.push(this.#chunk.subarray(0, this.#used));
      this.#chunk = Buffer.allocUnsafe(Math.max(CHUNK_BYTES, room));
      this.#used = 0;
    }
    this.#used += this.#chunk.write(text, this.#used, "utf8");
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

/** Each certificate's identity labels: the location's, then its own. */
function identityLabels(entry: LocationEntry, location: string): string[] {
  return entry.certificates.map(
    (cert, index) => [location, labelText({ index: String(index), subject_cn: cert.subjectCN, issuer_cn: cert.issuerCN, serial: cert.serial, ca: String(cert.isCA) })].join(","),
  );
}

/** `cert_info`'s own labels: the light ones always, `subject`, `issuer` and `sans` when selected. */
function infoLabels(cert: CertRecord, optional: readonly OptionalInfoLabel[]): string {
  const labels: Record<string, string> = { fingerprint_sha256: cert.fingerprintSha256 };
  if (optional.includes("subject")) labels.subject = cert.subject;
  if (optional.includes("issuer")) labels.issuer = cert.issuer;
  if (optional.includes("sans")) labels.sans = cert.sans.join(",");
  labels.key_algorithm = cert.keyAlgorithm;
  labels.key_bits = String(cert.keyBits);
  labels.signature_algorithm = cert.signatureAlgorithm;
  return labelText(labels);
}

const bool = (value: boolean): string => (value ? "1" : "0");

/** The per-certificate families, each one pass over the entries: the bulk of every body. */
const CERTIFICATE_FAMILIES: {
  name: CertificateFamilyName;
  help: string;
  sample: (identity: string, cert: CertRecord, now: number, info: readonly OptionalInfoLabel[]) => string;
}[] = [
  {
    name: "cert_not_after_timestamp_seconds",
    help: "Certificate notAfter as Unix time in seconds.",
    sample: (identity, cert) => `cert_not_after_timestamp_seconds{${identity}} ${cert.notAfter}\n`,
  },
  {
    name: "cert_not_before_timestamp_seconds",
    help: "Certificate notBefore as Unix time in seconds.",
    sample: (identity, cert) => `cert_not_before_timestamp_seconds{${identity}} ${cert.notBefore}\n`,
  },
  {
    name: "cert_expires_in_days",
    help: "Days until the certificate's notAfter at scrape time; negative once expired.",
    sample: (identity, cert, now) => `cert_expires_in_days{${identity}} ${(cert.notAfter - now) / SECONDS_PER_DAY}\n`,
  },
  {
    name: "cert_expired",
    help: "1 when the certificate's notAfter is in the past at scrape time.",
    sample: (identity, cert, now) => `cert_expired{${identity}} ${bool(cert.notAfter <= now)}\n`,
  },
  {
    name: "cert_info",
    help: "Certificate details; always 1.",
    sample: (identity, cert, _now, info) => `cert_info{${identity},${infoLabels(cert, info)}} 1\n`,
  },
];

/** The per-location families: at most one sample per location each (a state set one per state), in the order they are exposed. */
const LOCATION_FAMILIES: { name: string; help: string; sample: (entry: LocationEntry, at: string) => string | undefined }[] = [
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
];

/**
 * One family, one pass over the entries: its chunks as they fill. It yields to the event loop after
 * every chunk it fills and every slice of entries: a scraper that reads as fast as the render writes
 * never pushes back, and would otherwise keep every other request waiting for whole renders.
 */
async function* familyChunks(family: Family, entries: readonly LocationEntry[], addSamples: (entry: LocationEntry, index: number) => void): AsyncGenerator<Buffer> {
  for (let i = 0; i < entries.length; i++) {
    addSamples(entries[i] as LocationEntry, i);
    const full = family.takeFull();
    if (full.length > 0 || (i + 1) % ENTRIES_PER_SLICE === 0) {
      yield* full;
      await yieldToEventLoop();
    }
  }
  yield* family.finish();
}

/**
 * Renders the inventory and the exporter's own metrics as a stream of Buffer chunks.
 *
 * Each family is one pass over the entries, and its chunks go to the scraper as they fill, so a
 * scrape holds a few chunks rather than the whole body (71 MiB for 60,000 certificates) and sending
 * overlaps rendering. All passes of one scrape walk the same snapshot of the entries, so a location
 * changed during a scrape is in every family as it was or in none. Nothing is kept between scrapes;
 * days left are computed from the clock when the scrape starts. Destroying the stream stops the
 * render at its next chunk or slice.
 */
export class MetricsRenderer {
  readonly #inventory: Inventory;
  readonly #health: Health;
  readonly #maxLabelValueLength: number;
  readonly #selection: () => SeriesSelection;

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
  stream(format: ExpositionFormat = "prometheus"): Readable {
    return Readable.from(this.#exposition(format), { objectMode: false, highWaterMark: CHUNK_BYTES });
  }

  /** The whole exposition, collected. */
  async render(format: ExpositionFormat = "prometheus"): Promise<Buffer[]> {
    return collect(this.#exposition(format));
  }

  /** The inventory's series alone, without the exporter's own metrics, collected. */
  renderCertificates(now = Date.now() / 1000): Promise<Buffer[]> {
    return collect(this.#inventoryChunks(now));
  }

  async *#exposition(format: ExpositionFormat): AsyncGenerator<Buffer> {
    const started = performance.now();
    yield* this.#inventoryChunks(Date.now() / 1000);
    this.#health.renderDuration.set((performance.now() - started) / 1000);
    const registry = format === "openmetrics" ? this.#health.openMetrics : this.#health.prometheus;
    // prom-client closes an OpenMetrics body with "# EOF", so its part goes last.
    yield Buffer.from(await registry.metrics(), "utf8");
  }

  async *#inventoryChunks(now: number): AsyncGenerator<Buffer> {
    const entries = [...this.#inventory.entries()];
    // Built in the first pass and reused by the others: a fraction of the body, and a third of its CPU.
    const locations: string[] = new Array<string>(entries.length);
    const identities: string[][] = new Array<string[]>(entries.length);
    const locationOf = (index: number, entry: LocationEntry): string => (locations[index] ??= locationLabels(entry, this.#maxLabelValueLength));
    const { certificateFamilies, infoLabels: info, leafOnly } = this.#selection();
    for (const { name, help, sample } of CERTIFICATE_FAMILIES) {
      if (!certificateFamilies.includes(name)) continue;
      const family = new Family(name, help);
      yield* familyChunks(family, entries, (entry, i) => {
        if (entry.certificates.length === 0) return;
        const ids = (identities[i] ??= identityLabels(entry, locationOf(i, entry)));
        entry.certificates.forEach((cert, index) => {
          // The index stays the certificate's place in its location, so a leaf keeps its identity.
          if (!(leafOnly && cert.isCA)) family.add(sample(ids[index] as string, cert, now, info));
        });
      });
    }
    for (const { name, help, sample } of LOCATION_FAMILIES) {
      const family = new Family(name, help);
      yield* familyChunks(family, entries, (entry, i) => {
        const line = sample(entry, locationOf(i, entry));
        if (line) family.add(line);
      });
    }
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

/**
 * `body` compressed as it streams. Backpressure passes through, and destroying the result (or an
 * error on either side) destroys both, so a scraper that leaves still stops the render. Another
 * `level` is for the benchmark that chose this one.
 */
export function gzipped(body: Readable, level = METRICS_GZIP_LEVEL): Readable {
  const gzip = createGzip({ level });
  // The error, if any, reaches whoever reads the gzip stream; nothing more to do here.
  pipeline(body, gzip, () => undefined);
  return gzip;
}
