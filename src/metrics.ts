import { setImmediate as yieldToEventLoop } from "node:timers/promises";
import type { CertRecord } from "./certs/record.js";
import type { Health } from "./health.js";
import { failureReason, type Inventory, type LocationEntry } from "./inventory.js";

export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";
export const OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8";

export type ExpositionFormat = "prometheus" | "openmetrics";

const SECONDS_PER_DAY = 86_400;
/** Entries rendered between two yields to the event loop, so a large inventory never stalls it. */
const ENTRIES_PER_SLICE = 2_000;

/** Escapes a label value per the exposition format: backslash, double quote and line feed. */
export function escapeLabelValue(value: string): string {
  return /[\\"\n]/.test(value) ? value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n") : value;
}

function labelText(labels: Record<string, string>): string {
  let out = "";
  for (const name in labels) out += `${out ? "," : ""}${name}="${escapeLabelValue(labels[name] as string)}"`;
  return out;
}

/** Bytes of one rendered chunk. */
const CHUNK_BYTES = 64 * 1024;

/**
 * One metric family's samples as Buffer chunks. Each family collects its own lines, so a single pass
 * over the inventory keeps every family's samples together as the format requires. Lines are encoded
 * straight into the chunk: concatenating them into strings first builds ropes that are slow to flatten.
 */
class Family {
  readonly #header: string;
  readonly #chunks: Buffer[] = [];
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

  /** The family's chunks, header first; nothing when it has no samples. */
  finish(): Buffer[] {
    if (this.#used > 0) this.#chunks.push(this.#chunk.subarray(0, this.#used));
    this.#used = 0;
    return this.#chunks;
  }

  #write(text: string): void {
    // A UTF-16 unit takes at most 3 bytes in UTF-8; a line that could not fit gets a chunk of its own.
    const room = text.length * 3;
    if (this.#used + room > this.#chunk.length) {
      if (this.#used > 0) this.#chunks.push(this.#chunk.subarray(0, this.#used));
      this.#chunk = Buffer.allocUnsafe(Math.max(CHUNK_BYTES, room));
      this.#used = 0;
    }
    this.#used += this.#chunk.write(text, this.#used, "utf8");
  }
}

/** The location labels and each certificate's identity labels of one location. */
function identityLabels(entry: LocationEntry): { location: string; identities: string[] } {
  const { source, namespace, name, key } = entry.location;
  const location = labelText({ source, namespace, name, key });
  const identities = entry.certificates.map(
    (cert: CertRecord, index) =>
      `${location},${labelText({ index: String(index), subject_cn: cert.subjectCN, issuer_cn: cert.issuerCN, serial: cert.serial, ca: String(cert.isCA) })}`,
  );
  return { location, identities };
}

function infoLabels(cert: CertRecord): string {
  return labelText({
    fingerprint_sha256: cert.fingerprintSha256,
    subject: cert.subject,
    issuer: cert.issuer,
    sans: cert.sans.join(","),
    key_algorithm: cert.keyAlgorithm,
    key_bits: String(cert.keyBits),
    signature_algorithm: cert.signatureAlgorithm,
  });
}

const bool = (value: boolean): string => (value ? "1" : "0");

/**
 * Renders the inventory and the exporter's own metrics into Buffer chunks. Nothing is cached between
 * scrapes: label text is cheap to rebuild, and keeping it would cost more memory than the whole
 * inventory. Concurrent scrapes of the same format share one render; days left are computed from the
 * clock at render time.
 */
export class MetricsRenderer {
  readonly #inventory: Inventory;
  readonly #health: Health;
  readonly #inFlight = new Map<ExpositionFormat, Promise<Buffer[]>>();

  constructor(inventory: Inventory, health: Health) {
    this.#inventory = inventory;
    this.#health = health;
  }

  render(format: ExpositionFormat = "prometheus"): Promise<Buffer[]> {
    let pending = this.#inFlight.get(format);
    if (!pending) {
      pending = this.#render(format).finally(() => this.#inFlight.delete(format));
      this.#inFlight.set(format, pending);
    }
    return pending;
  }

  /** The certificate series alone, without the exporter's own metrics. */
  async renderCertificates(now = Date.now() / 1000): Promise<Buffer[]> {
    const notAfter = new Family("cert_not_after_timestamp_seconds", "Certificate notAfter as Unix time in seconds.");
    const notBefore = new Family("cert_not_before_timestamp_seconds", "Certificate notBefore as Unix time in seconds.");
    const daysLeft = new Family("cert_expires_in_days", "Days until the certificate's notAfter at scrape time; negative once expired.");
    const expired = new Family("cert_expired", "1 when the certificate's notAfter is in the past at scrape time.");
    const info = new Family("cert_info", "Certificate details; always 1.");
    const errors = new Family("cert_read_errors", "1 for each location whose certificates cannot currently be read, with the reason.");
    const warningDays = new Family("cert_threshold_warning_days", "Per-location warning threshold in days, from the cert-expiry-exporter.io/warning-days annotation.");
    const criticalDays = new Family("cert_threshold_critical_days", "Per-location critical threshold in days, from the cert-expiry-exporter.io/critical-days annotation.");
    const certManager = new Family("cert_certmanager_certificate_info", "The cert-manager Certificate that manages a Secret; always 1.");
    const probeSuccess = new Family("cert_endpoint_probe_success", "1 when the TLS handshake completed and certificates were read.");
    const chainVerified = new Family("cert_endpoint_chain_verified", "1 when the presented chain verified against the trust store.");
    const verifyError = new Family("cert_endpoint_verify_error", "Why the presented chain did not verify; always 1.");
    const hostnameMatch = new Family("cert_endpoint_hostname_match", "1 when the leaf certificate matches the name probed.");
    const tlsInfo = new Family("cert_endpoint_tls_info", "Negotiated TLS version and cipher; always 1.");
    const probeDuration = new Family("cert_endpoint_probe_duration_seconds", "Duration of the last probe of the endpoint.");

    let count = 0;
    for (const entry of this.#inventory.entries()) {
      if (++count % ENTRIES_PER_SLICE === 0) await yieldToEventLoop();
      const { location: at, identities } = identityLabels(entry);
      entry.certificates.forEach((cert, index) => {
        const identity = identities[index] as string;
        notAfter.add(`cert_not_after_timestamp_seconds{${identity}} ${cert.notAfter}\n`);
        notBefore.add(`cert_not_before_timestamp_seconds{${identity}} ${cert.notBefore}\n`);
        daysLeft.add(`cert_expires_in_days{${identity}} ${(cert.notAfter - now) / SECONDS_PER_DAY}\n`);
        expired.add(`cert_expired{${identity}} ${bool(cert.notAfter <= now)}\n`);
        info.add(`cert_info{${identity},${infoLabels(cert)}} 1\n`);
      });
      const failure = failureReason(entry);
      if (failure) errors.add(`cert_read_errors{${at},reason="${escapeLabelValue(failure)}"} 1\n`);
      if (entry.thresholds?.warningDays !== undefined) warningDays.add(`cert_threshold_warning_days{${at}} ${entry.thresholds.warningDays}\n`);
      if (entry.thresholds?.criticalDays !== undefined) criticalDays.add(`cert_threshold_critical_days{${at}} ${entry.thresholds.criticalDays}\n`);
      if (entry.certManager) {
        const link = labelText({
          certificate: entry.certManager.certificateName,
          issuer: entry.certManager.issuerName,
          issuer_kind: entry.certManager.issuerKind,
        });
        certManager.add(`cert_certmanager_certificate_info{${at},${link}} 1\n`);
      }
      const probe = entry.probe;
      if (probe) {
        probeSuccess.add(`cert_endpoint_probe_success{${at}} ${bool(probe.success)}\n`);
        chainVerified.add(`cert_endpoint_chain_verified{${at}} ${bool(probe.chainVerified)}\n`);
        if (probe.verifyError) verifyError.add(`cert_endpoint_verify_error{${at},reason="${escapeLabelValue(probe.verifyError)}"} 1\n`);
        hostnameMatch.add(`cert_endpoint_hostname_match{${at}} ${bool(probe.hostnameMatch)}\n`);
        if (probe.tlsVersion) tlsInfo.add(`cert_endpoint_tls_info{${at},${labelText({ tls_version: probe.tlsVersion, cipher: probe.cipher })}} 1\n`);
        probeDuration.add(`cert_endpoint_probe_duration_seconds{${at}} ${probe.durationSeconds}\n`);
      }
    }

    const families = [notAfter, notBefore, daysLeft, expired, info, errors, warningDays, criticalDays, certManager, probeSuccess, chainVerified, verifyError, hostnameMatch, tlsInfo, probeDuration];
    return families.flatMap((f) => f.finish());
  }

  async #render(format: ExpositionFormat): Promise<Buffer[]> {
    const started = performance.now();
    const certificates = await this.renderCertificates();
    this.#health.renderDuration.set((performance.now() - started) / 1000);
    const registry = format === "openmetrics" ? this.#health.openMetrics : this.#health.prometheus;
    // prom-client closes an OpenMetrics body with "# EOF", so its part goes last.
    return [...certificates, Buffer.from(await registry.metrics(), "utf8")];
  }
}

/** Picks the format a scraper asked for in its Accept header. */
export function negotiateFormat(accept: string | undefined): ExpositionFormat {
  return accept?.includes("application/openmetrics-text") ? "openmetrics" : "prometheus";
}
