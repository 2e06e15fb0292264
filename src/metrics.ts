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

/** One metric family's samples, appended as text: V8 concatenation beats collecting and joining. */
interface Family {
  name: string;
  help: string;
  text: string;
}

function family(name: string, help: string): Family {
  return { name, help, text: "" };
}

/** Label strings and constant lines of one location, which only change when the location is replaced. */
interface PreparedEntry {
  location: string;
  identities: string[];
  notAfter: string;
  notBefore: string;
  info: string;
}

function prepareEntry(entry: LocationEntry): PreparedEntry {
  const { source, namespace, name, key } = entry.location;
  const location = labelText({ source, namespace, name, key });
  const prepared: PreparedEntry = { location, identities: [], notAfter: "", notBefore: "", info: "" };
  entry.certificates.forEach((cert: CertRecord, index) => {
    const identity = `${location},${labelText({
      index: String(index),
      subject_cn: cert.subjectCN,
      issuer_cn: cert.issuerCN,
      serial: cert.serial,
      ca: String(cert.isCA),
    })}`;
    const info = `${identity},${labelText({
      fingerprint_sha256: cert.fingerprintSha256,
      subject: cert.subject,
      issuer: cert.issuer,
      sans: cert.sans.join(","),
      key_algorithm: cert.keyAlgorithm,
      key_bits: String(cert.keyBits),
      signature_algorithm: cert.signatureAlgorithm,
    })}`;
    prepared.identities.push(identity);
    prepared.notAfter += `cert_not_after_timestamp_seconds{${identity}} ${cert.notAfter}\n`;
    prepared.notBefore += `cert_not_before_timestamp_seconds{${identity}} ${cert.notBefore}\n`;
    prepared.info += `cert_info{${info}} 1\n`;
  });
  return prepared;
}

const bool = (value: boolean): string => (value ? "1" : "0");

/**
 * Renders the inventory and the exporter's own metrics. Concurrent scrapes of the same format
 * share one render; days left are computed from the clock at render time.
 */
export class MetricsRenderer {
  readonly #inventory: Inventory;
  readonly #health: Health;
  readonly #prepared = new WeakMap<LocationEntry, PreparedEntry>();
  readonly #inFlight = new Map<ExpositionFormat, Promise<string>>();

  constructor(inventory: Inventory, health: Health) {
    this.#inventory = inventory;
    this.#health = health;
  }

  render(format: ExpositionFormat = "prometheus"): Promise<string> {
    let pending = this.#inFlight.get(format);
    if (!pending) {
      pending = this.#render(format).finally(() => this.#inFlight.delete(format));
      this.#inFlight.set(format, pending);
    }
    return pending;
  }

  /** The certificate series alone, without the exporter's own metrics. */
  async renderCertificates(now = Date.now() / 1000): Promise<string> {
    const notAfter = family("cert_not_after_timestamp_seconds", "Certificate notAfter as Unix time in seconds.");
    const notBefore = family("cert_not_before_timestamp_seconds", "Certificate notBefore as Unix time in seconds.");
    const daysLeft = family("cert_expires_in_days", "Days until the certificate's notAfter at scrape time; negative once expired.");
    const expired = family("cert_expired", "1 when the certificate's notAfter is in the past at scrape time.");
    const info = family("cert_info", "Certificate details; always 1.");
    const errors = family("cert_read_errors", "1 for each location whose certificates cannot currently be read, with the reason.");
    const warningDays = family("cert_threshold_warning_days", "Per-location warning threshold in days, from the cert-expiry-exporter.io/warning-days annotation.");
    const criticalDays = family("cert_threshold_critical_days", "Per-location critical threshold in days, from the cert-expiry-exporter.io/critical-days annotation.");
    const certManager = family("cert_certmanager_certificate_info", "The cert-manager Certificate that manages a Secret; always 1.");
    const probeSuccess = family("cert_endpoint_probe_success", "1 when the TLS handshake completed and certificates were read.");
    const chainVerified = family("cert_endpoint_chain_verified", "1 when the presented chain verified against the trust store.");
    const verifyError = family("cert_endpoint_verify_error", "Why the presented chain did not verify; always 1.");
    const hostnameMatch = family("cert_endpoint_hostname_match", "1 when the leaf certificate matches the name probed.");
    const tlsInfo = family("cert_endpoint_tls_info", "Negotiated TLS version and cipher; always 1.");
    const probeDuration = family("cert_endpoint_probe_duration_seconds", "Duration of the last probe of the endpoint.");

    let count = 0;
    for (const entry of this.#inventory.entries()) {
      if (++count % ENTRIES_PER_SLICE === 0) await yieldToEventLoop();
      let prepared = this.#prepared.get(entry);
      if (!prepared) {
        prepared = prepareEntry(entry);
        this.#prepared.set(entry, prepared);
      }
      notAfter.text += prepared.notAfter;
      notBefore.text += prepared.notBefore;
      info.text += prepared.info;
      entry.certificates.forEach((cert, index) => {
        const identity = prepared.identities[index] as string;
        daysLeft.text += `cert_expires_in_days{${identity}} ${(cert.notAfter - now) / SECONDS_PER_DAY}\n`;
        expired.text += `cert_expired{${identity}} ${bool(cert.notAfter <= now)}\n`;
      });
      const at = prepared.location;
      const failure = failureReason(entry);
      if (failure) errors.text += `cert_read_errors{${at},reason="${escapeLabelValue(failure)}"} 1\n`;
      if (entry.thresholds?.warningDays !== undefined) warningDays.text += `cert_threshold_warning_days{${at}} ${entry.thresholds.warningDays}\n`;
      if (entry.thresholds?.criticalDays !== undefined) criticalDays.text += `cert_threshold_critical_days{${at}} ${entry.thresholds.criticalDays}\n`;
      if (entry.certManager) {
        const link = labelText({
          certificate: entry.certManager.certificateName,
          issuer: entry.certManager.issuerName,
          issuer_kind: entry.certManager.issuerKind,
        });
        certManager.text += `cert_certmanager_certificate_info{${at},${link}} 1\n`;
      }
      const probe = entry.probe;
      if (probe) {
        probeSuccess.text += `cert_endpoint_probe_success{${at}} ${bool(probe.success)}\n`;
        chainVerified.text += `cert_endpoint_chain_verified{${at}} ${bool(probe.chainVerified)}\n`;
        if (probe.verifyError) verifyError.text += `cert_endpoint_verify_error{${at},reason="${escapeLabelValue(probe.verifyError)}"} 1\n`;
        hostnameMatch.text += `cert_endpoint_hostname_match{${at}} ${bool(probe.hostnameMatch)}\n`;
        if (probe.tlsVersion) tlsInfo.text += `cert_endpoint_tls_info{${at},${labelText({ tls_version: probe.tlsVersion, cipher: probe.cipher })}} 1\n`;
        probeDuration.text += `cert_endpoint_probe_duration_seconds{${at}} ${probe.durationSeconds}\n`;
      }
    }

    const families = [notAfter, notBefore, daysLeft, expired, info, errors, warningDays, criticalDays, certManager, probeSuccess, chainVerified, verifyError, hostnameMatch, tlsInfo, probeDuration];
    let out = "";
    for (const f of families) {
      if (f.text) out += `# HELP ${f.name} ${f.help}\n# TYPE ${f.name} gauge\n${f.text}`;
    }
    return out;
  }

  async #render(format: ExpositionFormat): Promise<string> {
    const started = performance.now();
    const certificates = await this.renderCertificates();
    this.#health.renderDuration.set((performance.now() - started) / 1000);
    const registry = format === "openmetrics" ? this.#health.openMetrics : this.#health.prometheus;
    // prom-client closes an OpenMetrics body with "# EOF", so its part goes last.
    return certificates + (await registry.metrics());
  }
}

/** Picks the format a scraper asked for in its Accept header. */
export function negotiateFormat(accept: string | undefined): ExpositionFormat {
  return accept?.includes("application/openmetrics-text") ? "openmetrics" : "prometheus";
}
