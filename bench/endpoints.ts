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
 *   - Node's TLS client alone, on each runtime: connect, handshake (OpenSSL verifying the chain), close;
 *     nothing of ours. What the runtime spends per probe at least: ours over it is our own share.
 * Both sides do the same work: they trust the bench CA (our caFile, blackbox's ca_file), send and
 * check the name bench.local, and so verify every chain and host name successfully.
 * Every side stays up for the whole run and the cycles interleave: round after round, each side
 * probes the 1,000 endpoints once, in an order that rotates each round. The machine's load and the
 * CPU's clock then weigh on every side alike, and each round gives a ratio of ours to blackbox's
 * measured within seconds of each other (run-to-run drift moved sequential runs' ratios by 0.3x).
 * The first round is reported separately (cold: JIT, parse cache misses); the others are reported
 * as their median with the lowest and highest (BENCH_ENDPOINTS_ROUNDS, 7 by default).
 *
 * Our child runs with the Deployment's V8 flags (NODE_OPTIONS of deploy/base/deployment.yaml) and the
 * image's environment (its ENV; see runtime.ts), so that it runs as the exporter ships; a variable set
 * in the bench's own environment overrides the image's (e.g. MALLOC_ARENA_MAX=1 npm run bench -- endpoints).
 *
 *   npm run bench -- endpoints           (needs apt-get install prometheus-blackbox-exporter)
 *   BENCH_PROBE_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" npm run bench -- endpoints   (profile our side; added after the deployed flags, so they can also override them)
 *   BENCH_NODE_DEFAULTS=1 npm run bench -- endpoints   (Node's default heap sizes instead of the deployed flags)
 *   BENCH_ENDPOINTS_BEFORE=<git ref> npm run bench -- endpoints   (also the prober of that commit, in the same rounds)
 *   BENCH_ENDPOINTS_ROUNDS=11 npm run bench -- endpoints   (more rounds: a steadier median)
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
import { type BenchRow, median, printTable } from "./report.js";
import { benchNode, compileExporter, compileExporterAt, deployedNodeFlags, imageEnvironment, machineNode, peakRssBytes, ROOT, type NodeRuntime } from "./runtime.js";

const ENDPOINTS = 1000;
const CONCURRENCY = 32;
/** Rounds of one cycle per side; the first is the cold one. */
const ROUNDS = Math.max(2, Number(process.env.BENCH_ENDPOINTS_ROUNDS ?? 7));
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
// Children that probe: ours, and Node's TLS client alone. Each runs one cycle per line the parent
// sends ("cycle") and writes its figures back as a line; an empty line ends the cycles.

/** The loop of a probing child: `cycle` is a statement that probes every port once and sets `ok`. */
function cycleLoop(cycle: string): string {
  return `
    let pending = "";
    process.stdin.setEncoding("utf8");
    commands: for await (const chunk of process.stdin) {
      pending += chunk;
      let newline;
      while ((newline = pending.indexOf("\\n")) !== -1) {
        const command = pending.slice(0, newline);
        pending = pending.slice(newline + 1);
        if (command !== "cycle") break commands;
        const cpu = process.cpuUsage();
        const started = performance.now();
        let ok = 0;
        ${cycle}
        const wallSeconds = (performance.now() - started) / 1000;
        const used = process.cpuUsage(cpu);
        process.stdout.write(JSON.stringify({ wallSeconds, cpuSeconds: (used.user + used.system) / 1e6, ok }) + "\\n");
      }
    }`;
}

/**
 * Node's TLS client and nothing else: connect, handshake with OpenSSL verifying the chain against the
 * bench CA, close at secureConnect. No chain read from the wire, no parse, no host-name check, no
 * inventory, and none of Node's conversion of the chain into objects: the least CPU a prober on this
 * Node can spend per probe, beside which ours is read.
 */
function floorChildScript(portsFile: string, caFile: string): string {
  return `
    import { readFile } from "node:fs/promises";
    import { connect, createSecureContext } from "node:tls";
    const ports = JSON.parse(await readFile(${JSON.stringify(portsFile)}, "utf8"));
    const secureContext = createSecureContext({ ca: await readFile(${JSON.stringify(caFile)}) });
    const handshake = (port) => new Promise((resolve) => {
      const socket = connect({ host: "127.0.0.1", port, servername: "bench.local", secureContext, rejectUnauthorized: false, checkServerIdentity: () => undefined });
      // As in our probe: Node would otherwise convert the whole chain into objects for checkServerIdentity.
      socket.getPeerCertificate = () => ({});
      socket.once("secureConnect", () => {
        resolve(socket.authorized);
        socket.destroy();
      });
      socket.once("error", () => resolve(false));
    });
    ${cycleLoop(`
        let next = 0;
        await Promise.all(Array.from({ length: ${CONCURRENCY} }, async () => {
          while (next < ports.length) if (await handshake(ports[next++])) ok++;
        }));`)}
    const status = await readFile("/proc/self/status", "utf8");
    process.stdout.write(JSON.stringify({ rssPeakBytes: Number(/VmHWM:\\s+(\\d+) kB/.exec(status)?.[1] ?? 0) * 1024 }) + "\\n");
  `;
}

/** Our probe cycle, nothing else in the process, on compiled JavaScript (see runtime.ts). */
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
    ${cycleLoop(`
        await source.scanOnce();
        for (const entry of inventory.entries()) if (entry.probe?.success && entry.probe.chainVerified && entry.probe.hostnameMatch && entry.certificates.length > 0) ok++;`)}
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
    process.stdout.write(JSON.stringify({ rssPeakBytes: Number(/VmHWM:\\s+(\\d+) kB/.exec(status)?.[1] ?? 0) * 1024, memory, seriesDefault, seriesSmallest, certificates }) + "\\n");
  `;
}

/** Kernel clock ticks per second, the unit of /proc/<pid>/stat's CPU times. */
const clockTicks = (): number => Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;

async function cpuSecondsOf(pid: number, ticksPerSecond: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15 of stat(5); after the command they are at 11 and 12.
  return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond;
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

/** What our child reports once its cycles are done. */
interface ClosingFigures {
  rssPeakBytes: number;
  /** After the cycles: resident and anonymous bytes (smaps_rollup), the V8 heap's live bytes after a full GC. */
  memory: { rssBytes: number; anonymousBytes: number; heapUsedBytes: number };
  /** The inventory's series with the default and the smallest family set, and its certificates. */
  seriesDefault: number;
  seriesSmallest: number;
  certificates: number;
}

/** One side of the comparison, up for the whole run: it runs a cycle when asked, and reports at the end. */
interface Side {
  name: string;
  cycles: CycleFigures[];
  cycle(): Promise<CycleFigures>;
  /** Ours only: Node's TLS client alone on the same runtime, what the runtime spends per probe at least. */
  floor?: Side;
  finish(): Promise<{ rssPeakBytes: number; closing?: ClosingFigures }>;
}

/** Reads a child's stdout a line at a time, for as long as it runs. */
function lineReader(child: ChildProcess): () => Promise<string> {
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream })[Symbol.asyncIterator]();
  return async () => {
    const next = await lines.next();
    if (next.done) throw new Error("the child ended before answering");
    return next.value;
  };
}

/** A probing child on `node` (the Deployment's V8 flags, the image's environment), up until `finish`. */
function startChild(name: string, node: NodeRuntime, script: string): Side {
  const extra = process.env.BENCH_PROBE_NODE_ARGS ? process.env.BENCH_PROBE_NODE_ARGS.split(" ") : [];
  const child = spawn(node.path, [...deployedNodeFlags(), ...extra, "--expose-gc", "--input-type=module", "-e", script], {
    cwd: ROOT,
    env: { ...imageEnvironment(), ...process.env },
    stdio: ["pipe", "pipe", "inherit"],
  });
  const exited = once(child, "exit");
  const nextLine = lineReader(child);
  const ask = async (command: string): Promise<string> => {
    child.stdin?.write(`${command}\n`);
    return nextLine();
  };
  return {
    name,
    cycles: [],
    cycle: async () => JSON.parse(await ask("cycle")) as CycleFigures,
    finish: async () => {
      const closing = JSON.parse(await ask("")) as Partial<ClosingFigures> & { rssPeakBytes: number };
      await exited;
      return { rssPeakBytes: closing.rssPeakBytes, ...(closing.memory ? { closing: closing as ClosingFigures } : {}) };
    },
  };
}

async function startBlackbox(dir: string, ports: number[]): Promise<Side> {
  const ticks = clockTicks();
  const config = join(dir, "blackbox.yml");
  await writeFile(
    config,
    ["modules:", "  tls_connect:", "    prober: tcp", "    timeout: 10s", "    tcp:", "      tls: true", "      tls_config:", `        ca_file: ${join(dir, "ca.pem")}`, "        server_name: bench.local", ""].join("\n"),
  );
  const port = await freePort();
  const child = spawn(BLACKBOX, [`--config.file=${config}`, `--web.listen-address=127.0.0.1:${port}`, "--log.level=error"], { stdio: ["ignore", "ignore", "inherit"] });
  const exited = once(child, "exit");
  const stop = async () => {
    child.kill("SIGTERM");
    await exited;
  };
  const base = `http://127.0.0.1:${port}`;
  let healthy = false;
  for (let i = 0; i < 100 && !healthy; i++) {
    healthy = await fetch(`${base}/-/healthy`).then((r) => r.ok, () => false);
    if (!healthy) await new Promise((resolve) => setTimeout(resolve, 100));
  }
  if (!healthy) {
    await stop();
    throw new Error("blackbox_exporter did not come up");
  }
  const limit = pLimit(CONCURRENCY);
  const pid = child.pid as number;
  return {
    name: "blackbox_exporter",
    cycles: [],
    cycle: async () => {
      const cpu = await cpuSecondsOf(pid, ticks);
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
      return { wallSeconds, cpuSeconds: (await cpuSecondsOf(pid, ticks)) - cpu, ok: results.filter(Boolean).length };
    },
    finish: async () => {
      const rssPeakBytes = peakRssBytes(pid);
      await stop();
      return { rssPeakBytes };
    },
  };
}

/** The median of the warm rounds, with their lowest and highest. */
function warmFigure(values: readonly number[]): { value: number; range: [number, number] } {
  return { value: median(values), range: [Math.min(...values), Math.max(...values)] };
}

function summarize(side: Side, finished: { rssPeakBytes: number; closing?: ClosingFigures }, baseline: Side | undefined): BenchRow[] {
  const [cold, ...warm] = side.cycles as [CycleFigures, ...CycleFigures[]];
  const perProbe = (c: CycleFigures): number => (c.cpuSeconds / ENDPOINTS) * 1000;
  const b = (name: string): { baseline?: string } => (baseline ? { baseline: `${baseline.name} ${name}` } : {});
  const ok = Math.min(...side.cycles.map((c) => c.ok));
  const closing = finished.closing;
  // Each warm round's ratio to another side's cycle of the same round: the figure load moves least.
  const ratiosTo = (other: Side): number[] => warm.map((c, i) => perProbe(c) / perProbe(other.cycles[i + 1]!));
  return [
    { name: `${side.name} wall per cycle`, ...warmFigure(warm.map((c) => c.wallSeconds)), unit: "s", ...b("wall per cycle") },
    { name: `${side.name} CPU per probe`, ...warmFigure(warm.map(perProbe)), unit: "ms", ...b("CPU per probe") },
    ...(baseline ? [{ name: `${side.name} CPU per probe / ${baseline.name}'s, same round`, ...warmFigure(ratiosTo(baseline)), unit: "x" }] : []),
    ...(side.floor ? [{ name: `${side.name} CPU per probe / ${side.floor.name}'s, same round`, ...warmFigure(ratiosTo(side.floor)), unit: "x" }] : []),
    { name: `${side.name} CPU per probe, first round`, value: perProbe(cold), unit: "ms", ...b("CPU per probe, first round") },
    { name: `${side.name} peak RSS`, value: finished.rssPeakBytes / 1024 / 1024, unit: "MiB", ...b("peak RSS") },
    ...(closing === undefined
      ? []
      : [
          { name: `${side.name} RSS after the cycles, file-backed (the node binary's pages)`, value: (closing.memory.rssBytes - closing.memory.anonymousBytes) / 1024 / 1024, unit: "MiB" },
          { name: `${side.name} RSS after the cycles, anonymous (V8 heap, malloc)`, value: closing.memory.anonymousBytes / 1024 / 1024, unit: "MiB" },
          { name: `${side.name} V8 heap live after the cycles`, value: closing.memory.heapUsedBytes / 1024 / 1024, unit: "MiB" },
        ]),
    { name: `${side.name} endpoints read and verified`, value: ok, unit: "of 1000" },
    ...(closing === undefined
      ? []
      : [
          { name: `${side.name} series of the endpoints, default family set (${String(closing.certificates)} certificates)`, value: closing.seriesDefault, unit: "series" },
          { name: `${side.name} series of the endpoints, smallest family set`, value: closing.seriesSmallest, unit: "series" },
        ]),
  ];
}

/**
 * Ours runs on the image's Node (the figures that count) and on this machine's, beside
 * blackbox_exporter, all in the same rounds; BENCH_NODE picks another runtime for the first. With
 * BENCH_ENDPOINTS_BEFORE, the prober of that commit takes part on each runtime too.
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
  const sides: Side[] = [];
  try {
    const ports = JSON.parse(await lineReader(server)()) as number[];
    await writeFile(join(dir, "ports.json"), JSON.stringify(ports));
    const portsFile = join(dir, "ports.json");
    const caFile = join(dir, "ca.pem");
    for (const runtime of runtimes) {
      const floor = startChild(`Node's TLS client alone (${runtime.label})`, runtime, floorChildScript(portsFile, caFile));
      for (const build of builds) sides.push({ ...startChild(`cert-expiry-exporter (${build.label}${runtime.label})`, runtime, probeChildScript(build.dist, portsFile, caFile)), floor });
      sides.push(floor);
    }
    const blackbox = await startBlackbox(dir, ports);
    sides.push(blackbox);
    for (let round = 0; round < ROUNDS; round++) {
      for (let i = 0; i < sides.length; i++) {
        const side = sides[(round + i) % sides.length]!;
        side.cycles.push(await side.cycle());
      }
    }
    const rows: BenchRow[] = [];
    while (sides.length > 0) {
      const side = sides.shift()!;
      rows.push(...summarize(side, await side.finish(), side === blackbox ? undefined : blackbox));
    }
    return rows;
  } finally {
    for (const side of sides) await side.finish().catch(() => undefined);
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
  printTable(`TLS endpoints: ${ENDPOINTS} on loopback, concurrency ${CONCURRENCY}, ${ROUNDS} interleaved rounds of one cycle per side (medians of the warm rounds; the first reported apart)`, rows);
}
