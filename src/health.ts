import { Counter, Gauge, Registry, collectDefaultMetrics, type RegistryContentType } from "prom-client";
import type { Inventory } from "./inventory.js";
import { VERSION } from "./version.js";

const PREFIX = "cert_expiry_exporter_";
const LINT_FAILING_DEFAULTS = ["nodejs_active_handles_total", "nodejs_active_requests_total", "nodejs_active_resources_total"];

/**
 * The exporter's own metrics. Each is registered in two registries, one per exposition format,
 * because a prom-client registry renders only the format it was made with.
 */
export class Health {
  readonly prometheus = new Registry();
  readonly openMetrics = new Registry<RegistryContentType>();
  readonly sourceUp: Gauge<"source">;
  readonly lastSuccess: Gauge<"source">;
  readonly scanDuration: Gauge<"source">;
  readonly readErrors: Counter<"source" | "reason">;
  readonly relists: Counter<"source" | "reason">;
  readonly watchRestarts: Counter<"source" | "reason">;
  readonly renderDuration: Gauge;
  readonly #ready = new Map<string, boolean>();

  constructor(inventory: Inventory) {
    this.openMetrics.setContentType(Registry.OPENMETRICS_CONTENT_TYPE);
    const registers = [this.prometheus, this.openMetrics];
    for (const registry of registers) {
      collectDefaultMetrics({ register: registry });
      // prom-client names these gauges *_total, which promtool rejects; the rest of its set is lint-clean.
      for (const name of LINT_FAILING_DEFAULTS) registry.removeSingleMetric(name);
    }

    new Gauge({
      name: `${PREFIX}build_info`,
      help: "Build information of the exporter; always 1.",
      labelNames: ["version", "nodejs_version"],
      registers,
    }).set({ version: VERSION, nodejs_version: process.version }, 1);
    this.sourceUp = new Gauge({
      name: `${PREFIX}source_up`,
      help: "1 when the source's last scan or sync succeeded, 0 when it failed.",
      labelNames: ["source"],
      registers,
    });
    this.lastSuccess = new Gauge({
      name: `${PREFIX}last_success_timestamp_seconds`,
      help: "Unix time of the source's last successful full scan or sync.",
      labelNames: ["source"],
      registers,
    });
    this.scanDuration = new Gauge({
      name: `${PREFIX}scan_duration_seconds`,
      help: "Duration of the source's last full scan or list.",
      labelNames: ["source"],
      registers,
    });
    this.readErrors = new Counter({
      name: `${PREFIX}read_errors_total`,
      help: "Locations that turned to an error, by source and reason.",
      labelNames: ["source", "reason"],
      registers,
    });
    this.relists = new Counter({
      name: `${PREFIX}relists_total`,
      help: "Full relists of a Kubernetes source, by reason.",
      labelNames: ["source", "reason"],
      registers,
    });
    this.watchRestarts = new Counter({
      name: `${PREFIX}watch_restarts_total`,
      help: "Restarts of a Kubernetes watch, by reason.",
      labelNames: ["source", "reason"],
      registers,
    });
    this.renderDuration = new Gauge({
      name: `${PREFIX}render_duration_seconds`,
      help: "Time the last /metrics response took to render and stream the certificate series; a slow scraper lengthens it.",
      registers,
    });
    new Gauge({
      name: `${PREFIX}certificates`,
      help: "Certificates currently in the inventory, by source.",
      labelNames: ["source"],
      registers,
      collect() {
        this.reset();
        for (const entry of inventory.entries()) {
          this.inc({ source: entry.location.source }, entry.certificates.length);
        }
      },
    });
  }

  /** Marks a source as enabled but not yet through its first full scan: not ready, and not up. */
  register(source: string): void {
    if (this.#ready.has(source)) return;
    this.#ready.set(source, false);
    this.sourceUp.set({ source }, 0);
  }

  scanSucceeded(source: string, durationSeconds: number): void {
    this.#ready.set(source, true);
    this.sourceUp.set({ source }, 1);
    this.scanDuration.set({ source }, durationSeconds);
    this.lastSuccess.set({ source }, Date.now() / 1000);
  }

  scanFailed(source: string, durationSeconds?: number): void {
    this.sourceUp.set({ source }, 0);
    if (durationSeconds !== undefined) this.scanDuration.set({ source }, durationSeconds);
  }

  /** Sources that have not finished a first full scan; /readyz is ready when this is empty. */
  pendingSources(): string[] {
    return [...this.#ready].filter(([, ready]) => !ready).map(([source]) => source);
  }
}
