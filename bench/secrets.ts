/**
 * Secrets at scale: 100,000 TLS Secrets over 400 namespaces (leaf + intermediate in tls.crt, CA in
 * ca.crt), served by the API server double over HTTPS from this (the parent) process. Measured in
 * child processes, so their memory is their own, each on the image's Node with the Deployment's V8
 * flags (runtime.ts):
 *
 * 1. list-only (baseline): the compiled ListWatch (src/kube/list-watch.ts) with the exporter's paging,
 *    byte limit, field selector and JSON decoding, and a handler that drops every page: its time to a
 *    complete list and its peak RSS;
 * 2. exporter: a real exporter (Exporter, HTTP server and all): its initial sync time, RSS after the
 *    sync, the first gzip `/metrics` GET and the next ones (wall time, CPU, RSS while scraped, the
 *    longest event-loop stall during the scrapes), and the time from a Secret update on the server
 *    to the new certificate on /metrics;
 * 3. shards: three exporters with `shard: {count: 3, index: i}`, started together: each one's sync
 *    time and RSS; then the replica count changed 3 → 4 and 4 → 3 the way a StatefulSet applies a
 *    new config (below), measuring the longest time a namespace's certificates were exported by no
 *    replica at all.
 *
 * As in a real cluster, every Secret has its own leaf certificate, and they share 4 intermediates
 * and 4 roots. Every tls.crt and ca.crt value has distinct bytes (a line naming the Secret before the
 * PEM blocks, which PEM allows), so the whole-value cache hits nothing; the per-certificate cache
 * decodes each shared intermediate and root once, as it would in production. The leaves take minutes
 * to sign, so they are kept in node_modules/.cache for a day.
 *
 * The shard count reaches a replica through its configuration file only, read at start (a reload
 * cannot change it: src/app.ts); the sharded overlay's ConfigMap is generated with a hash suffix, so a
 * new `shard.count` rolls the StatefulSet. A StatefulSet rolls pods from the highest ordinal down, one
 * at a time, each once the one before is Ready (/readyz: after its first sync); a scale-up creates the
 * new ordinals first, a scale-down deletes the condemned ones at once. The bench does the same, with
 * "Ready" meaning the first sync completed (the kubelet's readiness period, 10 s, is not simulated).
 *
 *   npm run bench -- secrets                         (or: npx tsx bench/secrets.ts)
 *   BENCH_NODE=machine npm run bench -- secrets      (on this machine's Node instead)
 *   BENCH_SECRETS=20000 BENCH_NAMESPACES=50          (another size; the former case was 20,000 over 50)
 *   BENCH_SHARDS=0                                   (skip the shard part)
 *   BENCH_SINGLE=0                                   (skip the single replica)
 *   BENCH_NODE_DEFAULTS=1                            (every child on Node's default heap sizes)
 *   BENCH_NODE_FLAGS="--max-old-space-size=256"      (every child on these V8 flags instead of the deployed ones)
 *   BENCH_HEAP_SNAPSHOT=1                            (a heap snapshot of the single replica after its sync, in /tmp)
 *   BENCH_SECRETS_IDLE=60                            (the single replica's CPU over 60 s without a request, after its sync)
 *   BENCH_SECRETS_CHECKS=0                           (key and chain checks off, as checks.privateKeys and checks.chains: false)
 *
 * CPU is user + system time of the whole child (every thread), not wall time, which other work on the
 * machine moves more: the sync's from `serve()` to synced (and from process start, module loading
 * included), each gzip scrape's as the child's CPU over the measured scrapes divided by their number,
 * and idle CPU per second (BENCH_SECRETS_IDLE) once the exporter is quiet after its sync (it renders
 * /metrics ahead then; the time and CPU until quiet are reported).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";
import { makeCert, type Issued } from "../scripts/certgen.js";
import { FakeApiServer } from "../test/k8s/apiserver.js";
import { median, printTable, type BenchRow } from "./report.js";
import { benchNode, compileExporter, cpuMs, currentRssBytes, deployedNodeFlags, peakRssBytes, ROOT, type NodeRuntime } from "./runtime.js";

export const SECRETS = Number(process.env.BENCH_SECRETS ?? 100_000);
export const NAMESPACES = Number(process.env.BENCH_NAMESPACES ?? 400);
const SHARDS = Number(process.env.BENCH_SHARDS ?? 3);
/** Seconds of the single replica without a request, after its sync, for its idle CPU; 0 skips it. */
const IDLE_SECONDS = Number(process.env.BENCH_SECRETS_IDLE ?? 0);
/**
 * Before the idle window: the exporter's CPU is sampled every second until IDLE_SETTLE_QUIET_SAMPLES
 * samples in a row show it quiet, at most IDLE_SETTLE_MAX_MS. One quiet second is not enough: V8's
 * memory reducer starts a full GC about 8 s after the allocations stop (the render ahead), which at
 * 100,000 Secrets costs about 1.2 s of CPU and would fall into the idle window.
 */
const IDLE_SETTLE_SAMPLE_MS = 1000;
const IDLE_SETTLE_QUIET_MS = 20;
const IDLE_SETTLE_QUIET_SAMPLES = 15;
const IDLE_SETTLE_MAX_MS = 180_000;
/** The key and chain checks (on by default, as in the exporter); BENCH_SECRETS_CHECKS=0 turns both off. */
const CHECKS = process.env.BENCH_SECRETS_CHECKS === "0" ? { privateKeys: false, chains: false } : {};
const UPDATES = 5;
const SCRAPES = 3;
/** Resolution of the in-process event-loop delay histogram used for the stall during scrapes. */
const LAG_RESOLUTION_MS = 10;

/**
 * Every child runs with the Deployment's V8 flags (runtime.ts), so the figures are those of the
 * exporter as deployed, next to a baseline under the same flags. BENCH_NODE_DEFAULTS=1 runs them
 * with Node's defaults instead.
 */
const DEPLOYED_NODE_FLAGS: string[] = deployedNodeFlags();

const namespaceOf = (i: number): string => `ns-${i % NAMESPACES}`;

// ---------------------------------------------------------------- child side

/**
 * The children run JavaScript compiled from src/ on the image's Node (see runtime.ts). Each prints
 * JSON lines: one when synced, then answers to the commands it reads from stdin, one a line; it exits
 * when stdin closes.
 */
function childScript(mode: "baseline" | "exporter", compiled: string, kubeconfig: string, shard?: { count: number; index: number }): string {
  const module = (path: string) => JSON.stringify(pathToFileURL(`${compiled}/${path}`).href);
  const common = `
    const report = (m) => process.stdout.write(JSON.stringify(m) + "\\n");
    const { createInterface } = await import("node:readline");
    const { monitorEventLoopDelay } = await import("node:perf_hooks");
    const commands = createInterface({ input: process.stdin });
    const handlers = {};
    commands.on("line", async (line) => { const h = handlers[line.trim()]; if (h) report(await h()); });
    const stdinEnd = new Promise((r) => commands.on("close", r));
    const { validateConfig } = await import(${module("config.js")});
    const config = validateConfig({ listen: { address: "127.0.0.1", port: 0 }, logLevel: "warn", sources: { secrets: { enabled: true } }, checks: ${JSON.stringify(CHECKS)}, kubernetes: { kubeconfig: ${JSON.stringify(kubeconfig)} }${shard ? `, shard: ${JSON.stringify(shard)}` : ""} });
    handlers.snapshot = async () => ({ snapshot: (await import("node:v8")).writeHeapSnapshot("/tmp/bench-secrets-" + process.pid + ".heapsnapshot") });
    handlers.gc = () => { globalThis.gc?.(); globalThis.gc?.(); return { heapUsedMiB: process.memoryUsage().heapUsed / 2 ** 20 }; };
    let lag;
    let heapPeak = 0, heapSampler;
    handlers["lag-start"] = () => {
      lag = monitorEventLoopDelay({ resolution: ${LAG_RESOLUTION_MS} });
      lag.enable();
      heapPeak = 0;
      heapSampler = setInterval(() => { heapPeak = Math.max(heapPeak, process.memoryUsage().heapUsed); }, 50);
      return { lag: "started" };
    };
    handlers["lag-stop"] = () => { lag.disable(); clearInterval(heapSampler); return { lagMaxMs: lag.max / 1e6, lagP99Ms: lag.percentile(99) / 1e6, heapPeakMiB: heapPeak / 2 ** 20 }; };
  `;
  if (mode === "baseline") {
    return `${common}
    const { KubeConfig } = await import("@kubernetes/client-node");
    const { ListWatch, listWatchPacing } = await import(${module("kube/list-watch.js")});
    const { createLogger } = await import(${module("log.js")});
    const kc = new KubeConfig();
    kc.loadFromFile(config.kubernetes.kubeconfig);
    let items = 0;
    const none = () => undefined;
    const listWatch = new ListWatch({
      description: "secrets (list-only baseline)",
      kubeConfig: kc,
      path: "/api/v1/secrets",
      fieldSelector: "type=kubernetes.io/tls",
      ...listWatchPacing(config.kubernetes),
      handler: { listPage: (page) => { items += page.length; }, listCompleted: none, watchEvent: none, forbidden: none, allowed: none },
      reporter: { relisted: none, watchRestarted: none, listSucceeded: none, failed: none, recovered: none },
      log: createLogger("warn"),
    });
    const started = performance.now();
    await listWatch.start();
    report({ seconds: (performance.now() - started) / 1000, items });
    await stdinEnd;
    await listWatch.stop();
    process.exit(0);`;
  }
  return `${common}
    const { Exporter } = await import(${module("app.js")});
    const cpuMs = (usage) => (usage.user + usage.system) / 1000;
    const exporter = await Exporter.create(config);
    const cpuAtServe = process.cpuUsage();
    const started = performance.now();
    await exporter.serve();
    while (exporter.health.pendingSources().length > 0) await new Promise((r) => setTimeout(r, 2));
    const seconds = (performance.now() - started) / 1000;
    report({ seconds, syncCpuMs: cpuMs(process.cpuUsage(cpuAtServe)), processCpuMs: cpuMs(process.cpuUsage()), items: exporter.inventory.size, certificates: exporter.inventory.certificateCount(), port: exporter.port, syncedAt: Date.now() });
    // When the inventory changes, to the millisecond: the moment from which a scrape shows it. Polled
    // every millisecond, which costs CPU of its own, so only from the "watch" command on (the updates),
    // after the idle and scrape CPU are measured.
    let generation, watcher;
    handlers.watch = () => {
      generation = exporter.inventory.generation;
      watcher ??= setInterval(() => {
        if (exporter.inventory.generation === generation) return;
        generation = exporter.inventory.generation;
        report({ inventoryChangedAt: Date.now() });
      }, 1);
      return { watching: true };
    };
    // Locations held per namespace, for the shard transitions.
    handlers.coverage = () => {
      const counts = {};
      for (const entry of exporter.inventory.entries()) if (!entry.error) counts[entry.location.namespace] = (counts[entry.location.namespace] ?? 0) + 1;
      return { coverage: counts, at: Date.now() };
    };
    await stdinEnd;
    clearInterval(watcher);
    await exporter.close();
    process.exit(0);`;
}

// ---------------------------------------------------------------- parent side

interface Child {
  proc: ChildProcess;
  /** Resolves when the process has exited. */
  exited: Promise<void>;
  first: Promise<Record<string, unknown>>;
  /** Sends a command; resolves with the first line that has `field`. */
  ask(command: string, field: string): Promise<Record<string, unknown>>;
  /** Resolves with the next line that has `field`. */
  next(field: string): Promise<Record<string, unknown>>;
}

function startChild(node: NodeRuntime, mode: "baseline" | "exporter", compiled: string, kubeconfig: string, shard?: { count: number; index: number }): Child {
  const prof = mode === "exporter" && process.env.BENCH_PROF ? ["--cpu-prof", "--cpu-prof-dir=/tmp/prof"] : [];
  const proc = spawn(node.path, [...DEPLOYED_NODE_FLAGS, ...prof, "--expose-gc", "--input-type=module", "-e", childScript(mode, compiled, kubeconfig, shard)], { cwd: ROOT, stdio: ["pipe", "pipe", "inherit"] });
  const lines = createInterface({ input: proc.stdout! });
  const waiting: { field: string; resolve: (line: Record<string, unknown>) => void }[] = [];
  let firstResolve!: (line: Record<string, unknown>) => void;
  let firstSeen = false;
  lines.on("line", (line) => {
    const message = JSON.parse(line) as Record<string, unknown>;
    if (!firstSeen) {
      firstSeen = true;
      firstResolve(message);
      return;
    }
    const at = waiting.findIndex((w) => w.field in message);
    if (at >= 0) waiting.splice(at, 1)[0]!.resolve(message);
  });
  const first = new Promise<Record<string, unknown>>((resolve, reject) => {
    firstResolve = resolve;
    proc.once("exit", (code) => reject(new Error(`${mode} child exited with ${code}`)));
  });
  const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
  const next = (field: string) => new Promise<Record<string, unknown>>((resolve) => waiting.push({ field, resolve }));
  const ask = (command: string, field: string) => {
    const answer = next(field);
    proc.stdin!.write(`${command}\n`);
    return answer;
  };
  return { proc, exited, first, ask, next };
}

async function stopChild(child: Child): Promise<void> {
  child.proc.stdin!.end();
  await child.exited;
}

interface Fixtures {
  chains: { root: Issued; intermediate: Issued }[];
  leaves: string[];
}

/** 4 roots and intermediates, made each run; the leaves (PEM), kept for a day in node_modules/.cache. */
async function fixtures(): Promise<Fixtures> {
  const chains: { root: Issued; intermediate: Issued }[] = [];
  for (let i = 0; i < 4; i++) {
    const root = await makeCert({ cn: `Bench Root CA ${i}`, ca: true, notAfterDays: 3650 });
    const intermediate = await makeCert({ cn: `Bench Intermediate CA ${i}`, ca: true, issuer: root, notAfterDays: 1825 });
    chains.push({ root, intermediate });
  }
  // The leaves need not chain to these CAs for the exporter: it reads each certificate, it does not verify.
  const dir = join(ROOT, "node_modules", ".cache", "bench-secrets-leaves");
  const file = join(dir, `${SECRETS}.json`);
  const larger = join(dir, "100000.json");
  for (const cached of [file, larger]) {
    if (!existsSync(cached) || Date.now() - statSync(cached).mtimeMs > 86_400_000) continue;
    const leaves = (JSON.parse(readFileSync(cached, "utf8")) as string[]).slice(0, SECRETS);
    if (leaves.length === SECRETS) return { chains, leaves };
  }
  const leaves: string[] = [];
  for (let i = 0; i < SECRETS; i++) {
    leaves.push((await makeCert({ cn: `svc-${i}.bench.example`, issuer: chains[i % 4]!.intermediate, sans: [`svc-${i}.bench.example`], notAfterDays: 30 + (i % 3000) })).pem);
  }
  mkdirSync(dir, { recursive: true });
  writeFileSync(file, JSON.stringify(leaves));
  return { chains, leaves };
}

function plant(api: FakeApiServer, { chains, leaves }: Fixtures): void {
  const key = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n";
  for (let i = 0; i < SECRETS; i++) {
    const chain = chains[i % 4]!;
    const ns = namespaceOf(i);
    const name = `tls-${i}`;
    api.putSecret(ns, name, { "tls.crt": `${ns}/${name}\n${leaves[i]!}${chain.intermediate.pem}`, "ca.crt": `${ns}/${name}\n${chain.root.pem}`, "tls.key": key }, { type: "kubernetes.io/tls" });
  }
}

interface ScrapeResult {
  started: number;
  finished: number;
  /** Bytes on the wire (gzip) and after gunzip. */
  bytes: number;
  plainBytes: number;
  found: boolean;
  /** nodejs_eventloop_lag_max_seconds in the body, NaN when absent. */
  lagMax: number;
}

/**
 * The scraper: its own plain-node process, as Prometheus is, so the parent (which also runs the API
 * double) does not slow it down. Each line on stdin is a needle (or empty); it GETs /metrics with
 * Accept-Encoding: gzip, gunzips the body as it streams, looks for the needle and the event-loop lag
 * gauge, and prints one JSON line per scrape.
 */
const SCRAPER = `
  import { get } from "node:http";
  import { createGunzip } from "node:zlib";
  import { createInterface } from "node:readline";
  const [url] = process.argv.slice(1);
  const scrape = (needle) => new Promise((resolve, reject) => {
    const wanted = Buffer.from(needle);
    const started = Date.now();
    get(url, { headers: { "accept-encoding": "gzip" } }, (res) => {
      if (res.headers["content-encoding"] !== "gzip") return reject(new Error("not gzip"));
      let bytes = 0, plainBytes = 0, found = false, tail = Buffer.alloc(0);
      res.on("data", (chunk) => { bytes += chunk.length; });
      const plain = res.pipe(createGunzip());
      plain.on("data", (chunk) => {
        plainBytes += chunk.length;
        const window = tail.length ? Buffer.concat([tail, chunk]) : chunk;
        if (needle && !found) found = window.includes(wanted);
        tail = Buffer.from(window.subarray(Math.max(0, window.length - 65536)));
      });
      plain.on("end", () => {
        const lag = /^nodejs_eventloop_lag_max_seconds (\\S+)$/m.exec(tail.toString("utf8"));
        resolve({ started, finished: Date.now(), bytes, plainBytes, found, lagMax: lag ? Number(lag[1]) : NaN });
      });
      plain.on("error", reject);
    }).on("error", reject);
  });
  const lines = createInterface({ input: process.stdin });
  process.stdout.write("ready\\n");
  for await (const line of lines) process.stdout.write(JSON.stringify(await scrape(line)) + "\\n");
`;

class Scraper {
  readonly #proc: ChildProcess;
  readonly #lines: AsyncIterator<string>;

  private constructor(proc: ChildProcess) {
    this.#proc = proc;
    this.#lines = createInterface({ input: proc.stdout! })[Symbol.asyncIterator]();
  }

  static async start(url: string): Promise<Scraper> {
    const scraper = new Scraper(spawn(process.execPath, ["--input-type=module", "-e", SCRAPER, url], { stdio: ["pipe", "pipe", "inherit"] }));
    await scraper.#lines.next();
    return scraper;
  }

  async scrape(needle = ""): Promise<ScrapeResult> {
    this.#proc.stdin!.write(`${needle}\n`);
    return JSON.parse((await this.#lines.next()).value as string) as ScrapeResult;
  }

  close(): void {
    this.#proc.stdin!.end();
  }
}

const mib = (bytes: number): number => bytes / 2 ** 20;
const range = (values: number[]): { min: number; max: number } => ({ min: Math.min(...values), max: Math.max(...values) });

/** Samples a process's RSS every 50 ms until stopped; returns the largest seen. */
function rssSampler(pid: number): () => number {
  let max = currentRssBytes(pid);
  const timer = setInterval(() => {
    try {
      max = Math.max(max, currentRssBytes(pid));
    } catch {
      // exited
    }
  }, 50);
  return () => {
    clearInterval(timer);
    return max;
  };
}

async function singleReplica(node: NodeRuntime, compiled: string, api: FakeApiServer, chains: Fixtures["chains"]): Promise<BenchRow[]> {
  const kubeconfig = api.kubeconfigPath();
  const baseline = startChild(node, "baseline", compiled, kubeconfig);
  const b = await baseline.first;
  const baselineCpu = cpuMs(baseline.proc.pid!);
  if (b.items !== SECRETS) throw new Error(`the baseline listed ${String(b.items)} Secrets, expected ${SECRETS}`);
  const baselineRss = mib(peakRssBytes(baseline.proc.pid!));
  await stopChild(baseline);

  const exporter = startChild(node, "exporter", compiled, kubeconfig);
  const e = await exporter.first;
  const pid = exporter.proc.pid!;
  const rssAfterSync = mib(currentRssBytes(pid));
  const peakAtSync = mib(peakRssBytes(pid));
  if (e.items !== SECRETS * 2) throw new Error(`exporter holds ${String(e.items)} locations, expected ${SECRETS * 2}`);
  const heap = Number((await exporter.ask("gc", "heapUsedMiB")).heapUsedMiB);
  if (process.env.BENCH_HEAP_SNAPSHOT) console.error(`heap snapshot: ${String((await exporter.ask("snapshot", "snapshot")).snapshot)}`);
  const rssAfterGc = mib(currentRssBytes(pid));

  // Idle: nobody scrapes, nothing changes; the watches stay open.
  let idleCpuPerSecond = NaN;
  let settle = { ms: NaN, cpuMs: NaN };
  if (IDLE_SECONDS > 0) {
    // After the sync the exporter renders /metrics ahead (MetricsRenderer.warm): wait until it is quiet.
    const settleStarted = performance.now();
    const cpuAtSync = cpuMs(pid);
    let quietSince = { at: settleStarted, cpuMs: cpuAtSync, samples: 0 };
    for (let last = cpuAtSync; quietSince.samples < IDLE_SETTLE_QUIET_SAMPLES && performance.now() - settleStarted < IDLE_SETTLE_MAX_MS; ) {
      await new Promise((resolve) => setTimeout(resolve, IDLE_SETTLE_SAMPLE_MS));
      const now = cpuMs(pid);
      if (now - last >= IDLE_SETTLE_QUIET_MS) quietSince = { at: performance.now(), cpuMs: now, samples: 0 };
      else quietSince.samples++;
      last = now;
    }
    settle = { ms: quietSince.at - settleStarted, cpuMs: quietSince.cpuMs - cpuAtSync };
    const before = cpuMs(pid);
    await new Promise((resolve) => setTimeout(resolve, IDLE_SECONDS * 1000));
    idleCpuPerSecond = (cpuMs(pid) - before) / IDLE_SECONDS;
  }
  const rssIdle = mib(currentRssBytes(pid));

  const scraper = await Scraper.start(`http://127.0.0.1:${String(e.port)}/metrics`);
  // The first scrape apart: the renderer keeps a gzip body's pieces for the next (src/metrics.ts). Once the
  // sync is done the exporter renders them ahead (MetricsRenderer.warm): right after the sync this scrape
  // shares that render; after an idle window (BENCH_SECRETS_IDLE), as Prometheus's first scrape after a
  // start usually comes, it finds them kept.
  await exporter.ask("lag-start", "lag");
  const cpuBeforeFirst = cpuMs(pid);
  const first = await scraper.scrape();
  const firstCpu = cpuMs(pid) - cpuBeforeFirst;
  const firstLag = await exporter.ask("lag-stop", "lagMaxMs");
  await exporter.ask("lag-start", "lag");
  const sampling = rssSampler(pid);
  const scrapes: ScrapeResult[] = [];
  const cpuBeforeScrapes = cpuMs(pid);
  for (let s = 0; s < SCRAPES; s++) scrapes.push(await scraper.scrape());
  const cpuPerScrape = (cpuMs(pid) - cpuBeforeScrapes) / SCRAPES;
  const rssWhileScraped = mib(sampling());
  const lag = await exporter.ask("lag-stop", "lagMaxMs");

  // Update latency: a new leaf in one Secret; when the inventory has it (from then on every scrape
  // shows it), and the first scrape started after that, which must show it.
  const toInventory: number[] = [];
  const toScraped: number[] = [];
  await exporter.ask("watch", "watching");
  for (let u = 0; u < UPDATES; u++) {
    const chain = chains[u % 4]!;
    const fresh = await makeCert({ cn: `updated-${u}.bench.example`, issuer: chain.intermediate, notAfterDays: 60 });
    await new Promise((resolve) => setTimeout(resolve, 200));
    const changed = exporter.next("inventoryChangedAt");
    const i = u * 997;
    const putAt = Date.now();
    api.putSecret(namespaceOf(i), `tls-${i}`, { "tls.crt": fresh.pem + chain.intermediate.pem, "ca.crt": chain.root.pem }, { type: "kubernetes.io/tls" });
    const changedAt = Number((await changed).inventoryChangedAt);
    const seen = await scraper.scrape(`serial="${fresh.cert.serialNumber.toLowerCase()}"`);
    if (!seen.found) throw new Error(`update ${u} was not on /metrics after the inventory had it`);
    toInventory.push(changedAt - putAt);
    toScraped.push(seen.finished - putAt);
  }
  const peakWithScrapes = mib(peakRssBytes(pid));
  scraper.close();
  await stopChild(exporter);

  const wall = scrapes.map((s) => s.finished - s.started);
  // The first scrape finds the loop not yet sampled (NaN; src/process-metrics.ts).
  const lagMaxFromMetrics = Math.max(...scrapes.map((s) => s.lagMax).filter((lag) => !Number.isNaN(lag))) * 1000 - 1000;
  const body = scrapes[scrapes.length - 1]!;
  const baseName = `list-only baseline: complete list of ${SECRETS} Secrets (ListWatch, same paging and decoding)`;
  const baseRssName = "peak RSS, list-only baseline";
  const certs = String(e.certificates);
  const w = range(wall);
  return [
    { name: baseName, value: Number(b.seconds) * 1000, unit: "ms" },
    { name: `exporter initial sync, ${SECRETS} Secrets in ${NAMESPACES} namespaces (${certs} certificates)`, value: Number(e.seconds) * 1000, unit: "ms", baseline: baseName },
    { name: baseRssName, value: baselineRss, unit: "MiB" },
    { name: "RSS, exporter right after the sync", value: rssAfterSync, unit: "MiB", baseline: baseRssName },
    { name: "peak RSS, exporter up to the end of the sync", value: peakAtSync, unit: "MiB", baseline: baseRssName },
    { name: "RSS, exporter after the sync and a full GC", value: rssAfterGc, unit: "MiB", baseline: baseRssName },
    { name: "V8 heap in use, exporter after the sync and a full GC", value: heap, unit: "MiB" },
    { name: "CPU (user + system), list-only baseline, process start to complete list", value: baselineCpu, unit: "ms" },
    { name: "CPU (user + system), exporter initial sync, serve() to synced", value: Number(e.syncCpuMs), unit: "ms" },
    { name: "CPU (user + system), exporter process start to synced (module loading included)", value: Number(e.processCpuMs), unit: "ms", baseline: "CPU (user + system), list-only baseline, process start to complete list" },
    ...(IDLE_SECONDS > 0
      ? [
          { name: `after the sync and its GC until quiet for ${String(IDLE_SETTLE_QUIET_SAMPLES)} s (the render ahead, V8's memory reducer; sampled every second), wall`, value: settle.ms, unit: "ms" },
          { name: "after the sync and its GC until quiet, CPU (user + system)", value: settle.cpuMs, unit: "ms" },
          { name: `idle CPU (user + system) over ${IDLE_SECONDS} s without a request, after that`, value: idleCpuPerSecond, unit: "ms/s" },
          { name: "RSS after the idle window", value: rssIdle, unit: "MiB" },
        ]
      : []),
    { name: `first gzip GET /metrics after the sync (${IDLE_SECONDS > 0 ? `after the idle window: the pieces rendered ahead are kept` : "at once: it shares the render ahead"})`, value: first.finished - first.started, unit: "ms" },
    { name: "CPU (user + system) of that first gzip scrape", value: firstCpu, unit: "ms" },
    { name: `longest event-loop stall during that first scrape (in-process histogram, max − ${LAG_RESOLUTION_MS} ms)`, value: Number(firstLag.lagMaxMs) - LAG_RESOLUTION_MS, unit: "ms" },
    { name: `CPU (user + system) per gzip scrape, mean of the ${SCRAPES} next`, value: cpuPerScrape, unit: "ms" },
    { name: `RSS while scraped, largest sampled every 50 ms over ${SCRAPES} gzip scrapes`, value: rssWhileScraped, unit: "MiB", baseline: baseRssName },
    { name: "peak RSS, exporter at the end (scrapes and updates included)", value: peakWithScrapes, unit: "MiB", baseline: baseRssName },
    { name: `gzip GET /metrics, fastest of ${SCRAPES} (${mib(body.bytes).toFixed(1)} MiB gzip, ${mib(body.plainBytes).toFixed(0)} MiB plain)`, value: w.min, unit: "ms" },
    { name: `gzip GET /metrics, slowest of ${SCRAPES}`, value: w.max, unit: "ms" },
    { name: "V8 heap in use while scraped, largest sampled every 50 ms", value: Number(lag.heapPeakMiB), unit: "MiB" },
    { name: `longest event-loop stall during the scrapes (in-process histogram, max − ${LAG_RESOLUTION_MS} ms)`, value: Number(lag.lagMaxMs) - LAG_RESOLUTION_MS, unit: "ms" },
    { name: "nodejs_eventloop_lag_max_seconds of those scrapes, less its 1 s sampling interval", value: Math.max(0, lagMaxFromMetrics), unit: "ms" },
    { name: `update → in the inventory (every scrape from then shows it), median of ${UPDATES}`, value: median(toInventory), unit: "ms" },
    { name: `update → in the inventory, worst of ${UPDATES}`, value: Math.max(...toInventory), unit: "ms" },
    { name: `update → the next gzip scrape showing it completed, worst of ${UPDATES}`, value: Math.max(...toScraped), unit: "ms" },
  ];
}

/** One replica of the sharded set, as a StatefulSet pod: its ordinal and the shard count of its config. */
interface Replica {
  index: number;
  count: number;
  child: Child;
  coverage: Map<string, number>;
  ready: boolean;
}

/**
 * Shards: SHARDS replicas started together; then 3 → 4 and 4 → 3 as a StatefulSet rolls a new
 * config. Coverage (locations held per namespace, every live replica) is polled every 250 ms; a
 * namespace is exported while some live replica holds all of its locations.
 */
async function sharded(node: NodeRuntime, compiled: string, api: FakeApiServer): Promise<BenchRow[]> {
  const kubeconfig = api.kubeconfigPath();
  const expected = new Map<string, number>();
  for (let i = 0; i < SECRETS; i++) expected.set(namespaceOf(i), (expected.get(namespaceOf(i)) ?? 0) + 2);
  const replicas = new Map<number, Replica>();
  const rows: BenchRow[] = [];

  const launch = (index: number, count: number): { replica: Replica; synced: Promise<Record<string, unknown>> } => {
    const replica: Replica = { index, count, child: startChild(node, "exporter", compiled, kubeconfig, { count, index }), coverage: new Map(), ready: false };
    replicas.set(index, replica);
    const synced = replica.child.first.then((m) => {
      replica.ready = true;
      return m;
    });
    return { replica, synced };
  };
  const retire = async (index: number) => {
    const replica = replicas.get(index)!;
    replicas.delete(index);
    await stopChild(replica.child);
  };

  // Coverage tracking: for each namespace, since when no live replica holds it whole.
  const uncoveredSince = new Map<string, number>();
  let longestGap = 0;
  let longestGapNamespace = "";
  let tracking = false;
  const observe = () => {
    const now = Date.now();
    for (const [ns, want] of expected) {
      const covered = [...replicas.values()].some((r) => r.ready && (r.coverage.get(ns) ?? 0) >= want);
      const since = uncoveredSince.get(ns);
      if (covered && since !== undefined) {
        uncoveredSince.delete(ns);
        if (now - since > longestGap) [longestGap, longestGapNamespace] = [now - since, ns];
      } else if (!covered && since === undefined && tracking) uncoveredSince.set(ns, now);
    }
  };
  let polling = true;
  const poller = (async () => {
    while (polling) {
      await Promise.all(
        [...replicas.values()]
          .filter((r) => r.ready)
          .map(async (r) => {
            const answer = await Promise.race([r.child.ask("coverage", "coverage"), r.child.exited.then(() => undefined)]);
            if (answer) r.coverage = new Map(Object.entries(answer.coverage as Record<string, number>));
          }),
      );
      observe();
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  })();

  // Start: every replica at once (podManagementPolicy: Parallel).
  const started = [...Array(SHARDS).keys()].map((i) => launch(i, SHARDS));
  const syncs = await Promise.all(started.map((s) => s.synced));
  for (const [i, m] of syncs.entries()) {
    const pid = replicas.get(i)!.child.proc.pid!;
    rows.push({ name: `shard ${i}/${SHARDS}: initial sync, all ${SHARDS} starting together (${String(m.items)} locations)`, value: Number(m.seconds) * 1000, unit: "ms" });
    rows.push({ name: `shard ${i}/${SHARDS}: RSS right after the sync (peak ${mib(peakRssBytes(pid)).toFixed(0)} MiB)`, value: mib(currentRssBytes(pid)), unit: "MiB" });
  }
  await new Promise((resolve) => setTimeout(resolve, 1000));
  observe();
  const uncovered = [...expected.keys()].filter((ns) => ![...replicas.values()].some((r) => (r.coverage.get(ns) ?? 0) >= expected.get(ns)!));
  if (uncovered.length) throw new Error(`after the start, ${uncovered.length} namespaces are held by no shard`);

  const roll = async (from: number, to: number): Promise<{ ms: number; gap: number; namespace: string }> => {
    tracking = true;
    longestGap = 0;
    longestGapNamespace = "";
    const began = Date.now();
    // Scale-up: the new ordinals first, Ready before the rolling update goes on; scale-down: the
    // condemned ordinals deleted at once.
    for (let i = from; i < to; i++) await launch(i, to).synced;
    await Promise.all([...Array(Math.max(0, from - to)).keys()].map((k) => retire(to + k)));
    // Rolling update, highest ordinal first, each Ready before the next.
    for (let i = Math.min(from, to) - 1; i >= 0; i--) {
      await retire(i);
      await launch(i, to).synced;
    }
    // Until every namespace is whole again.
    while (uncoveredSince.size > 0 || [...replicas.values()].some((r) => r.coverage.size === 0)) await new Promise((resolve) => setTimeout(resolve, 100));
    await new Promise((resolve) => setTimeout(resolve, 600));
    observe();
    tracking = false;
    return { ms: Date.now() - began, gap: longestGap, namespace: longestGapNamespace };
  };
  for (const [from, to] of [
    [SHARDS, SHARDS + 1],
    [SHARDS + 1, SHARDS],
  ] as const) {
    const { ms, gap, namespace } = await roll(from, to);
    rows.push({ name: `${from} → ${to} replicas: whole roll, until every namespace is exported again`, value: ms, unit: "ms" });
    rows.push({ name: `${from} → ${to} replicas: longest time a namespace was exported by no replica${namespace ? ` (${namespace})` : ""}`, value: gap, unit: "ms" });
  }
  polling = false;
  await poller;
  for (const index of [...replicas.keys()]) await retire(index);
  return rows;
}

export async function benchSecrets(node: NodeRuntime = benchNode()): Promise<BenchRow[]> {
  const compiled = compileExporter("bench-secrets");
  const fx = await fixtures();
  // History enough for a watch to outlive the whole plant, as in a cluster that keeps its history.
  const api = await FakeApiServer.start({ historyWindow: SECRETS + 10_000 });
  try {
    plant(api, fx);
    const rows: BenchRow[] = [];
    if (process.env.BENCH_SINGLE !== "0") {
      try {
        rows.push(...(await singleReplica(node, compiled, api, fx.chains)));
      } catch (err) {
        // At 100,000 Secrets one replica does not fit the deployed heap limit: said, and the shards still run.
        console.error(`single replica failed: ${err instanceof Error ? err.message : String(err)}`);
        rows.push({ name: `single replica, ${SECRETS} Secrets: FAILED (${err instanceof Error ? err.message : String(err)}); see stderr`, value: NaN, unit: "" });
      }
    }
    if (SHARDS > 0) rows.push(...(await sharded(node, compiled, api)));
    return rows;
  } finally {
    await api.close();
  }
}

export const SECRETS_TITLE = `Secrets source: ${SECRETS.toLocaleString("en-US")} TLS Secrets in ${NAMESPACES} namespaces over HTTPS, key and chain checks ${process.env.BENCH_SECRETS_CHECKS === "0" ? "off" : "on"}, on the image's Node with the deployed V8 flags (${DEPLOYED_NODE_FLAGS.join(" ") || "Node's defaults"}); load average ${loadavg().map((l) => l.toFixed(1)).join(" ")} at start`;

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const node = benchNode();
  printTable(`${SECRETS_TITLE}; ${node.label}`, await benchSecrets(node));
}
