import { Counter, Gauge, Registry, type Metric, type RegistryContentType } from "prom-client";
import type { Inventory } from "./inventory.js";
import { registerProcessMetrics } from "./process-metrics.js";
import { VERSION } from "./version.js";

const PREFIX = "cert_expiry_exporter_";
/**
 * A registry's metric objects. prom-client's typings describe them as plain records and leave out
 * `labelNames`, which every metric keeps from its configuration.
 */
function metricObjects(registry: Registry): (Metric & { name: string; help: string; labelNames: readonly string[] })[] {
  return registry.getMetricsAsArray() as unknown as ReturnType<typeof metricObjects>;
}

/**
 * The same metrics as `text`, for OpenMetrics. prom-client renders a counter as OpenMetrics by
 * renaming the counter object itself (`x_total` becomes `x`, and each sample gets `_total` back), so a
 * counter shared with the text registry would lose `_total` in every text body rendered after an
 * OpenMetrics one. Each counter therefore has a twin here that takes the counter's values at every
 * render; gauges and histograms are left as they are by either format, and are shared.
 */
function openMetricsRegistry(text: Registry): Registry<RegistryContentType> {
  const openMetrics = new Registry<RegistryContentType>();
  openMetrics.setContentType(Registry.OPENMETRICS_CONTENT_TYPE);
  for (const metric of metricObjects(text)) {
    if (!(metric instanceof Counter)) {
      openMetrics.registerMetric(metric);
      continue;
    }
    new Counter({
      name: metric.name,
      help: metric.help,
      labelNames: metric.labelNames,
      registers: [openMetrics],
      async collect() {
        const { values } = await metric.get();
        this.reset();
        for (const { labels, value } of values) this.inc(labels, value);
      },
    });
  }
  return openMetrics;
}

/**
 * The exporter's own metrics, with Node's and the process's. `prometheus` renders the text format and
 * holds every metric; `openMetrics` shares them but for its counter twins (see openMetricsRegistry).
 */
export class Health {
  readonly prometheus = new Registry();
  readonly openMetrics: Registry<RegistryContentType>;
  readonly sourceUp: Gauge<"source">;
  readonly lastSuccess: Gauge<"source">;
  readonly scanDuration: Gauge<"source">;
  readonly readErrors: Counter<"source" | "reason">;
  readonly relists: Counter<"source" | "reason">;
  readonly watchRestarts: Counter<"source" | "reason">;
  readonly renderDuration: Gauge;
  readonly #ready = new Map<string, boolean>();

  constructor(inventory: Inventory) {
    registerProcessMetrics(this.prometheus);
    const registers = [this.prometheus];

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
    this.openMetrics = openMetricsRegistry(this.prometheus);
  }

  /** The one handle through which a source reports its health; registers the source. */
  source(source: string): SourceHealth {
    this.register(source);
    return new SourceHealth(this, source);
  }

  /** Marks a source as enabled but not yet through its first full scan: not ready, and not up. */
  register(source: string): void {
    if (this.#ready.has(source)) return;
    this.#ready.set(source, false);
    this.sourceUp.set({ source }, 0);
  }

  /** Forgets a source a reload turned off: it no longer holds /readyz, and its health series go. */
  unregister(source: string): void {
    this.#ready.delete(source);
    for (const gauge of [this.sourceUp, this.lastSuccess, this.scanDuration]) gauge.remove({ source });
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

  /** A location of `source` turned to an error. */
  readError(source: string, reason: string): void {
    this.readErrors.inc({ source, reason });
  }

  /** Sources that have not finished a first full scan; /readyz is ready when this is empty. */
  pendingSources(): string[] {
    return [...this.#ready].filter(([, ready]) => !ready).map(([source]) => source);
  }
}

/**
 * One source's view of the health metrics: every source reports through one of these, so `up`,
 * readiness, the last success and the counters follow the same rules whatever the kind.
 */
export class SourceHealth {
  readonly #health: Health;
  readonly name: string;

  constructor(health: Health, name: string) {
    this.#health = health;
    this.name = name;
  }

  /** A full scan or list completed: up, ready, and its duration and time recorded. */
  succeeded(durationSeconds: number): void {
    this.#health.scanSucceeded(this.name, durationSeconds);
  }

  /** The source is not current: down (readiness, once reached, is kept). */
  failed(durationSeconds?: number): void {
    this.#health.scanFailed(this.name, durationSeconds);
  }

  /** Requests work again after failures, with no full scan to time. */
  restored(): void {
    this.#health.sourceUp.set({ source: this.name }, 1);
  }

  /** Runs one full scan, recording success or failure and its duration; rethrows. */
  async scan<T>(run: () => Promise<T>): Promise<T> {
    const started = performance.now();
    const seconds = () => (performance.now() - started) / 1000;
    let result: T;
    try {
      result = await run();
    } catch (err) {
      this.failed(seconds());
      throw err;
    }
    this.succeeded(seconds());
    return result;
  }

  relisted(reason: string): void {
    this.#health.relists.inc({ source: this.name, reason });
  }

  watchRestarted(reason: string): void {
    this.#health.watchRestarts.inc({ source: this.name, reason });
  }
}
