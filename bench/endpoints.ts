/**
 * Endpoint probe benchmark against Debian's prometheus-blackbox-exporter, in the same run.
 *
 * One server process serves 1,000 TLS ports on 127.0.0.1, each with its own leaf certificate
 * (P-256, one CA). Then, each side in a process of its own at the same concurrency:
 *   - ours: a child process running only EndpointSource cycles over the 1,000 static targets (the
 *     full probe: connect, handshake, wire chain, verification, host name, parse, publish); CPU by
 *     process.cpuUsage() around each cycle, peak RSS from /proc/self/status VmHWM. It runs on the
 *     image's Node, then on this machine's (runtime.ts);
 *   - blackbox_exporter: /probe?module=tls_connect&target=… (tcp prober, tls: true), driven from
 *     here with the same concurrency; CPU from /proc/<pid>/stat (utime+stime) around each cycle,
 *     VmHWM likewise.
 * Both sides do the same work: they trust the bench CA (our caFile, blackbox's ca_file), send and
 * check the name bench.local, and so verify every chain and host name successfully.
 * Three cycles each; the first is reported separately (cold: JIT, parse cache misses), the rest
 * are averaged (steady state, as an exporter runs).
 *
 * Our child runs with the Deployment's V8 flags (NODE_OPTIONS of deploy/base/deployment.yaml) and the
 * image's environment (its ENV; see runtime.ts), so that it runs as the exporter ships; a variable set
 * in the bench's own environment overrides the image's (e.g. MALLOC_ARENA_MAX=1 npm run bench -- endpoints).
 *
 *   npm run bench -- endpoints           (needs apt-get install prometheus-blackbox-exporter)
 *   BENCH_PROBE_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" npm run bench -- endpoints   (profile our side; added after the deployed flags, so they can also override them)
 *   BENCH_NODE_DEFAULTS=1 npm run bench -- endpoints   (Node's default heap sizes instead of the deployed flags)
 *   BENCH_ENDPOINTS_BEFORE=<git ref> npm run bench -- endpoints   (also the prober of that commit, in the same run)
 *
 * After the cycles, our child reports where its resident memory is (file-backed pages, mostly the node
 * binary, and anonymous ones, from /proc/self/smaps_rollup; the V8 heap's live part after a full
 * collection) and renders the inventory's series (src/metrics.ts) with the default
 * family set and with the smallest, and counts the samples: the series the 1,000 endpoints add to
 * Prometheus, besides the exporter's own metrics.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { createServer as createTlsServer } from "node:tls";
import { fileURLToPath, pathToFileURL } from "node:url";
import pLimit from "p-limit";
import { freePort } from "../test/helpers/net.js";
import { type BenchRow, printTable } from "./report.js";
import { benchNode, compileExporter, compileExporterAt, deployedNodeFlags, imageEnvironment, machineNode, peakRssBytes, ROOT, type NodeRuntime } from "./runtime.js";

const ENDPOINTS = 1000;
const CONCURRENCY = 32;
const CYCLES = 3;
const BLACKBOX = "/usr/bin/prometheus-blackbox-exporter";
const SELF = fileURLToPath(import.meta.url);

interface CycleFigures {
  wallSeconds: number;
  cpuSeconds: number;
  ok: number;
}

// --------------------------------------------------------------------------------------------
// Child: the TLS servers.

async function serve(certsFile: string): Promise<void> {
  const { key, chains } = JSON.parse(await readFile(certsFile, "utf8")) as { key: string; chains: string[] };
  const ports: number[] = [];
  for (const chain of chains) {
    const server = createTlsServer({ key, cert: chain }, (socket) => socket.end());
    server.on("tlsClientError", () => undefined);
    server.listen({ port: 0, host: "127.0.0.1", backlog: 1024 });
    await once(server, "listening");
    ports.push((server.address() as AddressInfo).port);
  }
  process.stdout.write(JSON.stringify(ports) + "\n");
  // Lives until the parent closes stdin.
  process.stdin.resume();
  process.stdin.on("end", () => process.exit(0));
}

// --------------------------------------------------------------------------------------------
// Child: our probe cycle, nothing else in the process, on compiled JavaScript (see runtime.ts).

function probeChildScript(compiled: string, portsFile: string, caFile: string): string {
  const load = (module: string): string => JSON.stringify(pathToFileURL(join(compiled, module)).href);
  return `
    import { readFile } from "node:fs/promises";
    const { EndpointSource } = await import(${load("sources/endpoints.js")});
    const { SourceContext } = await import(${load("sources/source.js")});
    const { Inventory } = await import(${load("inventory.js")});
    const { ParseCache } = await import(${load("certs/cache.js")});
    const { Health } = await import(${load("health.js")});
    const { createLogger } = await import(${load("log.js")});
    const { MetricsRenderer } = await import(${load("metrics.js")});
    const { DEFAULT_SELECTION, REQUIRED_FAMILIES } = await import(${load("series-selection.js")});
    const ports = JSON.parse(await readFile(${JSON.stringify(portsFile)}, "utf8"));
    const inventory = new Inventory();
    const health = new Health(inventory);
    const ctx = new SourceContext(inventory, new ParseCache(20000), health, createLogger("silent"));
    const targets = ports.map((port) => ({ address: "127.0.0.1:" + port, serverName: "bench.local", caFile: ${JSON.stringify(caFile)} }));
    const source = new EndpointSource(targets, { intervalSeconds: 3600, jitter: 0, concurrency: ${CONCURRENCY}, timeout: 10, connectTimeout: 5, maxFileSize: 1048576 }, ctx);
    const cycles = [];
    for (let i = 0; i < ${CYCLES}; i++) {
      const cpu = process.cpuUsage();
      const started = performance.now();
      await source.scanOnce();
      const wallSeconds = (performance.now() - started) / 1000;
      const used = process.cpuUsage(cpu);
      let ok = 0;
      for (const entry of inventory.entries()) if (entry.probe?.success && entry.probe.chainVerified && entry.probe.hostnameMatch && entry.certificates.length > 0) ok++;
      cycles.push({ wallSeconds, cpuSeconds: (used.user + used.system) / 1e6, ok });
    }
    const status = await readFile("/proc/self/status", "utf8");
    const rollup = await readFile("/proc/self/smaps_rollup", "utf8");
    const kib = (pattern) => Number(pattern.exec(rollup)?.[1] ?? 0) * 1024;
    globalThis.gc();
    const memory = { rssBytes: kib(/^Rss:\\s+(\\d+) kB/m), anonymousBytes: kib(/^Anonymous:\\s+(\\d+) kB/m), heapUsedBytes: process.memoryUsage().heapUsed };
    const series = async (selection) => {
      const text = Buffer.concat(await new MetricsRenderer(inventory, health, { selection: () => selection }).renderCertificates()).toString("utf8");
      return text.split("\\n").filter((line) => line !== "" && !line.startsWith("#")).length;
    };
    const seriesDefault = await series(DEFAULT_SELECTION);
    const seriesSmallest = await series({ certificateFamilies: REQUIRED_FAMILIES, infoLabels: [], leafOnly: false, markSuperseded: true });
    let certificates = 0;
    for (const entry of inventory.entries()) certificates += entry.certificates.length;
    process.stdout.write(JSON.stringify({ cycles, rssPeakBytes: Number(/VmHWM:\\s+(\\d+) kB/.exec(status)?.[1] ?? 0) * 1024, memory, seriesDefault, seriesSmallest, certificates }) + "\\n");
  `;
}

interface RunFigures {
  cycles: CycleFigures[];
  rssPeakBytes: number;
  /** Ours only, after the cycles: resident and anonymous bytes (smaps_rollup), the V8 heap's live bytes after a full GC. */
  memory?: { rssBytes: number; anonymousBytes: number; heapUsedBytes: number };
  /** Ours only: the inventory's series with the default and the smallest family set, and its certificates. */
  seriesDefault?: number;
  seriesSmallest?: number;
  certificates?: number;
}

async function runOurs(node: NodeRuntime, compiled: string, dir: string): Promise<RunFigures> {
  const extra = process.env.BENCH_PROBE_NODE_ARGS ? process.env.BENCH_PROBE_NODE_ARGS.split(" ") : [];
  const prober = spawn(node.path, [...deployedNodeFlags(), ...extra, "--expose-gc", "--input-type=module", "-e", probeChildScript(compiled, join(dir, "ports.json"), join(dir, "ca.pem"))], {
    cwd: ROOT,
    env: { ...imageEnvironment(), ...process.env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const exited = once(prober, "exit");
  const figures = JSON.parse(await readLine(prober)) as RunFigures;
  await exited;
  return figures;
}

// --------------------------------------------------------------------------------------------
// Parent.

/** Kernel clock ticks per second, the unit of /proc/<pid>/stat's CPU times. */
const clockTicks = (): number => Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;

async function cpuSecondsOf(pid: number, ticksPerSecond: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15 of stat(5); after the command they are at 11 and 12.
  return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond;
}

async function readLine(child: ChildProcess): Promise<string> {
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const [line] = (await once(lines, "line")) as [string];
  lines.close();
  return line;
}

/** The TLS servers, on the machine's Node: the same load for both sides. */
function serverChild(certsFile: string): ChildProcess {
  return spawn(process.execPath, ["--import", "tsx", SELF, "--serve", certsFile], { stdio: ["pipe", "pipe", "inherit"] });
}

async function makeCertificates(dir: string): Promise<string> {
  const { makeCert, privateKeyPem, sharedKeys } = await import("../scripts/certgen.js");
  const keys = await sharedKeys("ec-p256");
  const ca = await makeCert({ cn: "Bench CA", ca: true, notAfterDays: 3650 });
  const chains: string[] = [];
  let leafKey = "";
  for (let i = 0; i < ENDPOINTS; i++) {
    const leaf = await makeCert({ cn: `svc-${i}.bench.local`, sans: [`svc-${i}.bench.local`, "bench.local"], issuer: ca, keys });
    leafKey ||= await privateKeyPem(leaf);
    chains.push(leaf.pem + ca.pem);
  }
  const file = join(dir, "certs.json");
  await writeFile(file, JSON.stringify({ key: leafKey, chains }));
  await writeFile(join(dir, "ca.pem"), ca.pem);
  return file;
}

async function runBlackbox(dir: string, ports: number[]): Promise<{ cycles: CycleFigures[]; rssPeakBytes: number }> {
  const ticks = clockTicks();
  const config = join(dir, "blackbox.yml");
  await writeFile(
    config,
    ["modules:", "  tls_connect:", "    prober: tcp", "    timeout: 10s", "    tcp:", "      tls: true", "      tls_config:", `        ca_file: ${join(dir, "ca.pem")}`, "        server_name: bench.local", ""].join("\n"),
  );
  const port = await freePort();
  const child = spawn(BLACKBOX, [`--config.file=${config}`, `--web.listen-address=127.0.0.1:${port}`, "--log.level=error"], { stdio: ["ignore", "ignore", "inherit"] });
  const exited = once(child, "exit");
  try {
    const base = `http://127.0.0.1:${port}`;
    let healthy = false;
    for (let i = 0; i < 100 && !healthy; i++) {
      healthy = await fetch(`${base}/-/healthy`).then((r) => r.ok, () => false);
      if (!healthy) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    if (!healthy) throw new Error("blackbox_exporter did not come up");
    const limit = pLimit(CONCURRENCY);
    const cycles: CycleFigures[] = [];
    for (let c = 0; c < CYCLES; c++) {
      const cpu = await cpuSecondsOf(child.pid as number, ticks);
      const started = performance.now();
      const results = await Promise.all(
        ports.map((p) =>
          limit(async () => {
            const body = await (await fetch(`${base}/probe?module=tls_connect&target=127.0.0.1:${p}`)).text();
            return /^probe_success 1$/m.test(body) && /^probe_ssl_earliest_cert_expiry /m.test(body);
          }),
        ),
      );
      const wallSeconds = (performance.now() - started) / 1000;
      cycles.push({ wallSeconds, cpuSeconds: (await cpuSecondsOf(child.pid as number, ticks)) - cpu, ok: results.filter(Boolean).length });
    }
    return { cycles, rssPeakBytes: peakRssBytes(child.pid as number) };
  } finally {
    child.kill("SIGTERM");
    await exited;
  }
}

function summarize(side: string, run: RunFigures, baseline: string | undefined): BenchRow[] {
  const [cold, ...warm] = run.cycles as [CycleFigures, ...CycleFigures[]];
  const mean = (pick: (c: CycleFigures) => number): number => warm.reduce((sum, c) => sum + pick(c), 0) / Math.max(1, warm.length);
  const b = (name: string): { baseline?: string } => (baseline ? { baseline: `${baseline} ${name}` } : {});
  const ok = Math.min(...run.cycles.map((c) => c.ok));
  return [
    { name: `${side} wall per cycle`, value: mean((c) => c.wallSeconds), unit: "s", ...b("wall per cycle") },
    { name: `${side} CPU per probe`, value: (mean((c) => c.cpuSeconds) / ENDPOINTS) * 1000, unit: "ms", ...b("CPU per probe") },
    { name: `${side} CPU per probe, first cycle`, value: (cold.cpuSeconds / ENDPOINTS) * 1000, unit: "ms", ...b("CPU per probe, first cycle") },
    { name: `${side} CPU per cycle of ${ENDPOINTS} probes`, value: mean((c) => c.cpuSeconds) * 1000, unit: "ms", ...b(`CPU per cycle of ${ENDPOINTS} probes`) },
    { name: `${side} peak RSS`, value: run.rssPeakBytes / 1024 / 1024, unit: "MiB", ...b("peak RSS") },
    ...(run.memory === undefined
      ? []
      : [
          { name: `${side} RSS after the cycles, file-backed (the node binary's pages)`, value: (run.memory.rssBytes - run.memory.anonymousBytes) / 1024 / 1024, unit: "MiB" },
          { name: `${side} RSS after the cycles, anonymous (V8 heap, malloc)`, value: run.memory.anonymousBytes / 1024 / 1024, unit: "MiB" },
          { name: `${side} V8 heap live after the cycles`, value: run.memory.heapUsedBytes / 1024 / 1024, unit: "MiB" },
        ]),
    { name: `${side} endpoints read and verified`, value: ok, unit: "of 1000" },
    ...(run.seriesDefault === undefined
      ? []
      : [
          { name: `${side} series of the endpoints, default family set (${String(run.certificates)} certificates)`, value: run.seriesDefault, unit: "series" },
          { name: `${side} series of the endpoints, smallest family set`, value: run.seriesSmallest ?? NaN, unit: "series" },
        ]),
  ];
}

/**
 * Ours runs on the image's Node (the figures that count) and on this machine's, in the same run;
 * BENCH_NODE picks another runtime for the first. With BENCH_ENDPOINTS_BEFORE, the prober of that
 * commit runs before ours on each runtime.
 */
export async function benchEndpoints(node: NodeRuntime = benchNode()): Promise<BenchRow[]> {
  const compiled = compileExporter("bench-endpoints");
  const beforeRef = process.env.BENCH_ENDPOINTS_BEFORE;
  const builds = [...(beforeRef ? [{ label: `before (${beforeRef}), `, dist: compileExporterAt(beforeRef, "bench-endpoints-before") }] : []), { label: "", dist: compiled }];
  const machine = machineNode();
  const runtimes = node.path === machine.path ? [node] : [node, machine];
  const dir = await mkdtemp(join(tmpdir(), "bench-endpoints-"));
  const server = serverChild(await makeCertificates(dir));
  const serverExited = once(server, "exit");
  try {
    const ports = JSON.parse(await readLine(server)) as number[];
    await writeFile(join(dir, "ports.json"), JSON.stringify(ports));
    const rows: BenchRow[] = [];
    for (const runtime of runtimes) {
      for (const build of builds) rows.push(...summarize(`cert-expiry-exporter (${build.label}${runtime.label})`, await runOurs(runtime, build.dist, dir), "blackbox_exporter"));
    }
    return [...rows, ...summarize("blackbox_exporter", await runBlackbox(dir, ports), undefined)];
  } finally {
    server.stdin?.end();
    await serverExited;
    await rm(dir, { recursive: true, force: true });
  }
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
const mode = process.argv[2];
if (isMain && mode === "--serve") {
  await serve(process.argv[3] as string);
} else if (isMain) {
  const rows = await benchEndpoints();
  printTable(`TLS endpoints: ${ENDPOINTS} on loopback, concurrency ${CONCURRENCY}, ${CYCLES} cycles (first reported apart)`, rows);
}
