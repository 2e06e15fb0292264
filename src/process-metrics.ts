import { createRequire } from "node:module";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { Counter, Gauge, type Registry } from "./prom.js";

/**
 * How often the event-loop delay histogram (nodejs_eventloop_lag_*_seconds) samples the loop while it
 * samples at all. A sample is the time between two wake-ups, so the gauges include this interval: a
 * stall of a second or more always shows, and the health dashboard subtracts the second.
 */
export const EVENT_LOOP_SAMPLING_MS = 1000;
/**
 * The loop is sampled from a scrape until this long after the last one: longer than any scrape
 * interval, so a scraped exporter samples without a break. An exporter nobody scrapes (or nobody has
 * yet) does not sample: every sample wakes the process, about half a millisecond of CPU each.
 */
export const EVENT_LOOP_SAMPLING_AFTER_SCRAPE_MS = 10 * 60_000;

/**
 * prom-client's default metrics but two: its event-loop monitor, which samples from start and never
 * stops, and its process CPU counters, which load @opentelemetry/api for exemplars (src/prom.ts).
 */
const PROM_CLIENT_DEFAULTS = [
  "processStartTime",
  "osMemoryHeap",
  "processOpenFileDescriptors",
  "processMaxFileDescriptors",
  "processResources",
  "processHandles",
  "processRequests",
  "heapSizeAndUsed",
  "heapSpacesSizeAndUsed",
  "version",
  "gc",
];
/** prom-client names these gauges *_total, which promtool rejects; the rest of its set is lint-clean. */
const LINT_FAILING_DEFAULTS = ["nodejs_active_handles_total", "nodejs_active_requests_total", "nodejs_active_resources_total"];

type DefaultMetric = (registry: Registry, config: object) => void;

/** The standard process_* and nodejs_* metrics, prom-client's names and meanings, into `registry`. */
export function registerProcessMetrics(registry: Registry): void {
  registerProcessCpu(registry);
  const load = createRequire(import.meta.url);
  for (const name of PROM_CLIENT_DEFAULTS) (load(`prom-client/lib/metrics/${name}.js`) as DefaultMetric)(registry, {});
  for (const name of LINT_FAILING_DEFAULTS) registry.removeSingleMetric(name);
  registerEventLoopLag(registry);
}

/** prom-client's process_cpu_* counters, same names, help and values. */
function registerProcessCpu(registry: Registry): void {
  let last = process.cpuUsage();
  // One collect sets all three, as prom-client does: user is registered, and so read, first.
  const user = new Counter({
    name: "process_cpu_user_seconds_total",
    help: "Total user CPU time spent in seconds.",
    registers: [registry],
    collect() {
      const now = process.cpuUsage();
      const userSeconds = (now.user - last.user) / 1e6;
      const systemSeconds = (now.system - last.system) / 1e6;
      last = now;
      user.inc(userSeconds);
      system.inc(systemSeconds);
      total.inc(userSeconds + systemSeconds);
    },
  });
  const system = new Counter({ name: "process_cpu_system_seconds_total", help: "Total system CPU time spent in seconds.", registers: [registry] });
  const total = new Counter({ name: "process_cpu_seconds_total", help: "Total user and system CPU time spent in seconds.", registers: [registry] });
}

const STATISTICS = [
  ["min", "The minimum recorded event loop delay."],
  ["max", "The maximum recorded event loop delay."],
  ["mean", "The mean of the recorded event loop delays."],
  ["stddev", "The standard deviation of the recorded event loop delays."],
  ["p50", "The 50th percentile of the recorded event loop delays."],
  ["p90", "The 90th percentile of the recorded event loop delays."],
  ["p99", "The 99th percentile of the recorded event loop delays."],
] as const;

/**
 * prom-client's event-loop gauges, from a histogram that samples only around scrapes (see
 * EVENT_LOOP_SAMPLING_AFTER_SCRAPE_MS). Each scrape reads and resets it; the first finds it empty, and
 * the statistics are NaN.
 */
function registerEventLoopLag(registry: Registry): void {
  const histogram = monitorEventLoopDelay({ resolution: EVENT_LOOP_SAMPLING_MS });
  let sampling: NodeJS.Timeout | undefined;
  const keepSampling = (): void => {
    if (sampling) {
      sampling.refresh();
      return;
    }
    histogram.enable();
    sampling = setTimeout(() => {
      histogram.disable();
      sampling = undefined;
    }, EVENT_LOOP_SAMPLING_AFTER_SCRAPE_MS).unref();
  };
  const read = (name: (typeof STATISTICS)[number][0]): number => {
    if (histogram.count === 0) return NaN;
    if (name === "p50") return histogram.percentile(50);
    if (name === "p90") return histogram.percentile(90);
    if (name === "p99") return histogram.percentile(99);
    return histogram[name];
  };
  // Registered first, as prom-client does: its collect sets the statistics before they are rendered.
  new Gauge({
    name: "nodejs_eventloop_lag_seconds",
    help: "Lag of event loop in seconds.",
    registers: [registry],
    // As prom-client: the time to the next turn of the loop, measured now and reported at the next scrape.
    collect() {
      const started = process.hrtime.bigint();
      setImmediate(() => this.set(Number(process.hrtime.bigint() - started) / 1e9));
      for (const { name, gauge } of statistics) gauge.set(read(name) / 1e9);
      histogram.reset();
      keepSampling();
    },
  });
  const statistics = STATISTICS.map(([name, help]) => ({ name, gauge: new Gauge({ name: `nodejs_eventloop_lag_${name}_seconds`, help, registers: [registry] }) }));
}
