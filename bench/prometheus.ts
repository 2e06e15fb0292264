/**
 * Prometheus-side cost, measured in Prometheus itself: a real Prometheus (/usr/bin/prometheus, the
 * Debian package) scrapes the exporter serving 50,000 distinct certificates (render.ts's
 * fillDistinct), once per family set, all in one run:
 *
 *   - full: every family and every cert_info label, what the exporter sent before the choice
 *     existed: the baseline of the other rows;
 *   - default: DEFAULT_SELECTION;
 *   - smallest: REQUIRED_FAMILIES, no optional cert_info label.
 *
 * The exporter is the real HTTP server, buildServer of src/server.ts, in this process on the
 * machine's Node, over one inventory that every set shares; it serves whatever format and encoding
 * Prometheus asks for (OpenMetrics and gzip, from Prometheus 2.42's headers). Each set gets a fresh
 * Prometheus: its own temporary TSDB, a free loopback port, no self-scrape, so its head holds the
 * target's series alone plus the five or so it writes per target itself (up, scrape_*).
 * Prometheus starts with no target; its RSS is read once it is ready, then the target is added by a
 * reload and read again after SCRAPES successful scrapes. A scrape that fails (a timeout, when
 * other work loads the machine) is counted and reported, and left out of the medians. Reported per set:
 *
 *   - head series (prometheus_tsdb_head_series), per certificate, and the series of the
 *     per-certificate families alone per certificate (the head also holds the exporter's own
 *     metrics, a few dozen series); samples per scrape (scrape_samples_scraped);
 *   - Prometheus RSS (VmRSS) before the first scrape, and its growth after SCRAPES scrapes;
 *   - scrape_duration_seconds, median over the scrapes;
 *   - bytes on the wire per certificate: what the response put on its socket (socket.bytesWritten
 *     from the request to the response's finish: status line, headers, chunk framing and gzip body),
 *     median over the scrapes; and the uncompressed body per certificate as Prometheus counted it
 *     (scrape_body_size_bytes, --enable-feature=extra-scrape-metrics);
 *   - Prometheus CPU per scrape (utime + stime over the scrapes, ingestion included).
 *
 *   npm run bench -- prometheus
 *   BENCH_PROMETHEUS_CERTS=10000 BENCH_PROMETHEUS_SCRAPES=8 BENCH_PROMETHEUS_INTERVAL=5 npm run bench -- prometheus
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import YAML from "yaml";
import { validateConfig } from "../src/config.js";
import { Health } from "../src/health.js";
import type { Inventory } from "../src/inventory.js";
import { createLogger } from "../src/log.js";
import { CERTIFICATE_FAMILY_NAMES, DEFAULT_SELECTION, FULL_SELECTION, REQUIRED_FAMILIES, type SeriesSelection } from "../src/series-selection.js";
import { buildServer } from "../src/server.js";
import { freePort } from "../test/helpers/net.js";
import { getJson, missing, PROMETHEUS, sleep, startPrometheus, stop, waitFor, type Started } from "../test/helpers/processes.js";
import { fillDistinct } from "./render.js";
import { median, printTable, type BenchRow } from "./report.js";
import { cpuMs, currentRssBytes } from "./runtime.js";

const CERTIFICATES = Number(process.env.BENCH_PROMETHEUS_CERTS ?? 50_000);
const SCRAPES = Number(process.env.BENCH_PROMETHEUS_SCRAPES ?? 6);
const INTERVAL_SECONDS = Number(process.env.BENCH_PROMETHEUS_INTERVAL ?? 10);
const JOB = "cert-expiry-exporter";
/** Prometheus ready after start, and its RSS left to settle before it is read. */
const READY_DEADLINE_MS = 60_000;
const SETTLE_MS = 3_000;
/** The reload applies targets on the scrape manager's 5 s tick, and the first scrape waits up to an interval more. */
const SCRAPES_DEADLINE_MS = (2 * SCRAPES + 4) * INTERVAL_SECONDS * 1000 + 60_000;
const INGESTED_DEADLINE_MS = 30_000;
const MIB = 1024 * 1024;

export const PROMETHEUS_TITLE = `Prometheus-side cost: ${CERTIFICATES.toLocaleString("en-US")} certificates scraped by a real Prometheus, each family set next to the full set (before the choice)`;

interface FamilySet {
  name: string;
  selection: SeriesSelection;
}

const SETS: FamilySet[] = [
  { name: "full (before)", selection: FULL_SELECTION },
  { name: "default", selection: DEFAULT_SELECTION },
  { name: "smallest", selection: { certificateFamilies: REQUIRED_FAMILIES, infoLabels: [], leafOnly: false, markSuperseded: true } },
];

/** One /metrics response as it left the exporter. */
interface Scrape {
  /** False when the response closed before its end was sent (the scraper gave up). */
  finished: boolean;
  status: number;
  wireBytes: number;
  encoding: string;
  contentType: string;
}

interface Measured {
  headSeries: number;
  certificateSeries: number;
  samplesScraped: number;
  rssBeforeBytes: number;
  rssGrowthBytes: number;
  scrapeSeconds: number;
  wireBytes: number;
  bodyBytes: number;
  cpuMsPerScrape: number;
  scrapes: number;
  failedScrapes: number;
  served: string;
}

/** A sample of Prometheus's own /metrics, without labels. */
async function ownMetric(base: string, name: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
  const value = new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1];
  if (value === undefined) throw new Error(`Prometheus's /metrics has no ${name}`);
  return Number(value);
}

/**
 * Head series of the per-certificate families, from the TSDB status (its ten largest metric names,
 * which they are): counting them with a query would read 250,000 series while Prometheus scrapes.
 */
async function certificateSeries(base: string): Promise<number> {
  const status = await getJson<{ data: { seriesCountByMetricName: { name: string; value: number }[] } }>(`${base}/api/v1/status/tsdb`);
  const names: readonly string[] = CERTIFICATE_FAMILY_NAMES;
  return status.data.seriesCountByMetricName.filter(({ name }) => names.includes(name)).reduce((sum, { value }) => sum + value, 0);
}

/** The exporter on a loopback port, serving `selection`; every /metrics response it sends is recorded. */
async function startExporter(inventory: Inventory, selection: SeriesSelection) {
  const server = buildServer({ inventory, health: new Health(inventory), log: createLogger("silent"), http: validateConfig({}).http, selection: () => selection });
  const scrapes: Scrape[] = [];
  server.server.on("request", (request, response) => {
    if (!request.url?.startsWith("/metrics")) return;
    const socket = request.socket;
    const before = socket.bytesWritten;
    response.once("close", () => {
      scrapes.push({
        finished: response.writableFinished,
        status: response.statusCode,
        wireBytes: socket.bytesWritten - before,
        encoding: String(response.getHeader("content-encoding") ?? "identity"),
        contentType: String(response.getHeader("content-type") ?? ""),
      });
    });
  });
  await server.listen({ host: "127.0.0.1", port: 0 });
  const port = (server.server.address() as AddressInfo).port;
  const close = async (): Promise<void> => {
    server.server.closeAllConnections();
    await server.close();
  };
  return { port, scrapes, close };
}

/** One fresh Prometheus scraping the exporter until it has stored SCRAPES successful scrapes. */
async function measure(inventory: Inventory, set: FamilySet): Promise<Measured> {
  const exporter = await startExporter(inventory, set.selection);
  const dir = await mkdtemp(join(tmpdir(), "cee-bench-prometheus-"));
  let prometheus: Started | undefined;
  // Prometheus runs in a process group of its own: an interrupted run must not leave it behind.
  const killNow = (): void => {
    if (prometheus?.process.pid !== undefined && prometheus.process.exitCode === null) {
      try {
        process.kill(-prometheus.process.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  };
  const interrupted = (): void => {
    killNow();
    process.exit(130);
  };
  process.once("exit", killNow);
  process.once("SIGINT", interrupted);
  process.once("SIGTERM", interrupted);
  try {
    const configFile = join(dir, "prometheus.yml");
    const config = (targets: string[]): string =>
      YAML.stringify({
        global: { scrape_interval: `${INTERVAL_SECONDS}s`, scrape_timeout: `${INTERVAL_SECONDS}s` },
        scrape_configs: [{ job_name: JOB, honor_labels: true, static_configs: targets.length ? [{ targets }] : [] }],
      });
    await writeFile(configFile, config([]));
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    prometheus = startPrometheus(configFile, join(dir, "data"), port, ["--web.enable-lifecycle", "--enable-feature=extra-scrape-metrics"]);
    const pid = prometheus.process.pid as number;
    await waitFor("prometheus ready", READY_DEADLINE_MS, async () => (await fetch(`${base}/-/ready`, { signal: AbortSignal.timeout(5_000) })).ok, prometheus);
    await sleep(SETTLE_MS);
    const rssBeforeBytes = currentRssBytes(pid);
    const cpuBefore = cpuMs(pid);

    await writeFile(configFile, config([`127.0.0.1:${exporter.port}`]));
    const reload = await fetch(`${base}/-/reload`, { method: "POST", signal: AbortSignal.timeout(10_000) });
    if (!reload.ok) throw new Error(`Prometheus refused the reload: ${reload.status} ${await reload.text()}`);
    const reloadedAt = Date.now();
    const sent = (): Scrape[] => exporter.scrapes.filter((s) => s.finished && s.status === 200);
    try {
      await waitFor(`${SCRAPES} scrapes of the exporter`, SCRAPES_DEADLINE_MS, async () => sent().length >= SCRAPES, prometheus);
    } catch (err) {
      throw new Error(`${set.name}: ${sent().length} of ${exporter.scrapes.length} responses complete; the rest cut off at the scrape timeout`, { cause: err });
    }
    const instant = async (expr: string): Promise<{ metric: Record<string, string>; value?: [number, string]; values?: [number, string][] }[]> => {
      const body = await getJson<{ status: string; error?: string; data?: { result: { metric: Record<string, string>; value?: [number, string]; values?: [number, string][] }[] } }>(
        `${base}/api/v1/query?query=${encodeURIComponent(expr)}`,
      );
      if (body.status !== "success") throw new Error(`${expr}: ${body.error ?? body.status}`);
      return body.data?.result ?? [];
    };
    // Every scrape since the reload.
    const window = (): string => `${Math.ceil((Date.now() - reloadedAt) / 1000) + 2 * INTERVAL_SECONDS}s`;
    // The last response is sent before Prometheus has parsed and stored it.
    await waitFor(
      `Prometheus stored ${SCRAPES} scrapes`,
      INGESTED_DEADLINE_MS,
      async () => Number((await instant(`sum_over_time(up{job="${JOB}"}[${window()}])`))[0]?.value?.[1] ?? 0) >= SCRAPES,
      prometheus,
    );
    const rssAfterBytes = currentRssBytes(pid);
    const cpuAfter = cpuMs(pid);
    const scrapes = [...exporter.scrapes];

    const atEnd = Date.now() / 1000;
    const range = window();
    const ups = (await instant(`up{job="${JOB}"}[${range}]`))[0]?.values ?? [];
    const succeeded = new Set(ups.filter(([, value]) => value === "1").map(([at]) => at));
    const complete = scrapes.filter((s) => s.finished && s.status === 200);
    const served = [...new Set(complete.map((s) => `${s.contentType.split(";")[0] ?? ""}, ${s.encoding}`))].join(" / ");
    if (complete.some((s) => s.encoding !== "gzip")) throw new Error(`${set.name}: not every scrape was served gzip: ${served}`);
    const durations = ((await instant(`scrape_duration_seconds{job="${JOB}"}[${range}]`))[0]?.values ?? [])
      .filter(([at]) => succeeded.has(at) && at <= atEnd)
      .map(([, value]) => Number(value));
    // The largest over the scrapes: a failed scrape counts 0.
    const largest = async (name: string): Promise<number> => Number((await instant(`max_over_time(${name}{job="${JOB}"}[${range}])`))[0]?.value?.[1] ?? Number.NaN);
    return {
      headSeries: await ownMetric(base, "prometheus_tsdb_head_series"),
      certificateSeries: await certificateSeries(base),
      samplesScraped: await largest("scrape_samples_scraped"),
      rssBeforeBytes,
      rssGrowthBytes: rssAfterBytes - rssBeforeBytes,
      scrapeSeconds: median(durations),
      wireBytes: median(complete.map((s) => s.wireBytes)),
      bodyBytes: await largest("scrape_body_size_bytes"),
      cpuMsPerScrape: (cpuAfter - cpuBefore) / scrapes.length,
      scrapes: durations.length,
      failedScrapes: ups.filter(([at, value]) => value !== "1" && at <= atEnd).length,
      served,
    };
  } finally {
    if (prometheus) await stop(prometheus);
    process.removeListener("exit", killNow);
    process.removeListener("SIGINT", interrupted);
    process.removeListener("SIGTERM", interrupted);
    await exporter.close();
    await rm(dir, { recursive: true, force: true });
  }
}

export async function benchPrometheus(): Promise<BenchRow[]> {
  if (missing(PROMETHEUS)) throw new Error(`${PROMETHEUS} is not installed: apt-get install prometheus`);
  const inventory = fillDistinct(CERTIFICATES);
  const measured: { set: FamilySet; m: Measured }[] = [];
  for (const set of SETS) {
    const m = await measure(inventory, set);
    // Other work on the machine lengthens scrapes and can time them out: the load says how much there was.
    const load = loadavg()[0]?.toFixed(1) ?? "?";
    console.log(`${set.name}: ${m.scrapes} successful scrapes stored, ${m.failedScrapes} failed; served as ${m.served}; load average ${load}`);
    measured.push({ set, m });
  }
  const figures: { what: string; unit: string; value: (m: Measured) => number }[] = [
    { what: "head series", unit: "series", value: (m) => m.headSeries },
    { what: "head series per certificate", unit: "series", value: (m) => m.headSeries / CERTIFICATES },
    { what: "series of the per-certificate families, per certificate", unit: "series", value: (m) => m.certificateSeries / CERTIFICATES },
    { what: "samples per scrape", unit: "samples", value: (m) => m.samplesScraped },
    { what: "Prometheus RSS before the first scrape", unit: "MiB", value: (m) => m.rssBeforeBytes / MIB },
    { what: `Prometheus RSS growth after ${SCRAPES} scrapes`, unit: "MiB", value: (m) => m.rssGrowthBytes / MIB },
    { what: "Prometheus RSS growth per certificate", unit: "B", value: (m) => m.rssGrowthBytes / CERTIFICATES },
    { what: "scrape duration (median)", unit: "ms", value: (m) => m.scrapeSeconds * 1000 },
    { what: "bytes on the wire per scrape (gzip, with headers)", unit: "B", value: (m) => m.wireBytes },
    { what: "bytes on the wire per certificate (gzip)", unit: "B", value: (m) => m.wireBytes / CERTIFICATES },
    { what: "uncompressed body per certificate", unit: "B", value: (m) => m.bodyBytes / CERTIFICATES },
    { what: "Prometheus CPU per scrape", unit: "ms", value: (m) => m.cpuMsPerScrape },
    { what: "failed scrapes (left out of the medians)", unit: "scrapes", value: (m) => m.failedScrapes },
  ];
  const rows: BenchRow[] = [];
  for (const { what, unit, value } of figures) {
    const baseline = `${what}, ${SETS[0]?.name ?? ""}`;
    for (const { set, m } of measured) {
      const name = `${what}, ${set.name}`;
      rows.push({ name, value: value(m), unit, baseline: name === baseline ? undefined : baseline });
    }
  }
  return rows;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  printTable(PROMETHEUS_TITLE, await benchPrometheus());
}
