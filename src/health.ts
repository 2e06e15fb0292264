import { Counter, Gauge, Registry, type Metric, type RegistryContentType } from "./prom.js";
import { HealthState } from "./health-state.js";
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
 * The exporter's own metrics over the sources' health (HealthState), with Node's and the process's.
 * `prometheus` renders the text format and holds every metric; `openMetrics` shares them but for its
 * counter twins (see openMetricsRegistry).
 */
export class Health extends HealthState {
  readonly prometheus = new Registry();
  readonly openMetrics: Registry<RegistryContentType>;
  readonly sourceUp: Gauge<"source">;
  readonly lastSuccess: Gauge<"source">;
  readonly scanDuration: Gauge<"source">;
  readonly readErrors: Counter<"source" | "reason">;
  readonly relists: Counter<"source" | "reason">;
  readonly watchRestarts: Counter<"source" | "reason">;
  readonly renderDuration: Gauge;

  constructor(inventory: Inventory) {
    super();
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
        // From the inventory's running counts: a pass over 200,000 locations here, prom-client's inc
        // for each, was 100–170 ms of every scrape without a yield.
        this.reset();
        for (const [source, count] of inventory.certificatesBySource()) this.set({ source }, count);
      },
    });
    this.openMetrics = openMetricsRegistry(this.prometheus);
  }

  /** Also removes the source's health series. */
  override unregister(source: string): void {
    super.unregister(source);
    for (const gauge of [this.sourceUp, this.lastSuccess, this.scanDuration]) gauge.remove({ source });
  }

  override scanSucceeded(source: string, durationSeconds: number): void {
    super.scanSucceeded(source, durationSeconds);
    this.scanDuration.set({ source }, durationSeconds);
    this.lastSuccess.set({ source }, Date.now() / 1000);
  }

  override scanFailed(source: string, durationSeconds?: number): void {
    super.scanFailed(source, durationSeconds);
    if (durationSeconds !== undefined) this.scanDuration.set({ source }, durationSeconds);
  }

  override setUp(source: string, up: boolean): void {
    super.setUp(source, up);
    this.sourceUp.set({ source }, up ? 1 : 0);
  }

  override readError(source: string, reason: string): void {
    this.readErrors.inc({ source, reason });
  }

  override relisted(source: string, reason: string): void {
    this.relists.inc({ source, reason });
  }

  override watchRestarted(source: string, reason: string): void {
    this.watchRestarts.inc({ source, reason });
  }
}
