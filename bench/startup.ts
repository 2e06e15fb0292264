/**
 * Start time: how long a freshly started process takes to be of use, on compiled JavaScript
 * (runtime.ts), on the image's Node and on this machine's.
 *
 *   - serve: process start → first 200 from /healthz, with one certificate file configured; run with
 *     the Deployment's V8 flags, as deployed;
 *   - check: `check --file one.crt`, start to exit, as a pipeline runs it;
 *
 * each as wall time and as the CPU time the process used by then (every thread), which other load on
 * the machine moves less, as the median and the 90th percentile of the runs, and each next to a
 * baseline in the same run: a bare Node start (`node -e 0`) and a bare node:http
 * server answering its first request. BENCH_STARTUP_BEFORE=<git ref> also measures the code of that
 * commit (built from `git archive` into node_modules/.cache), to compare a change with what it
 * replaced. Every variant runs once per round, in turn, so load on the machine falls on all alike.
 *
 *   npm run bench -- startup
 *   BENCH_STARTUP_BEFORE=HEAD~3 BENCH_STARTUP_RUNS=15 npm run bench -- startup
 */
import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { get } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { makeCert } from "../scripts/certgen.js";
import { freePort } from "../test/helpers/net.js";
import { median, printTable, type BenchRow } from "./report.js";
import { benchNode, compileExporter, compileExporterAt, cpuMs, deployedNodeFlags, machineNode, type NodeRuntime } from "./runtime.js";

const RUNS = Number(process.env.BENCH_STARTUP_RUNS ?? 15);
/** How often /healthz is asked while the server starts; small next to the figures measured. */
const POLL_MS = 2;
const DEADLINE_MS = 30_000;

/** Milliseconds since `start` (process.hrtime.bigint()). */
const since = (start: bigint): number => Number(process.hrtime.bigint() - start) / 1e6;

/** Wall time, and CPU time of every thread (less sensitive to other load on the machine). */
interface Timing {
  wallMs: number;
  cpuMs: number;
}

/** Seconds of bash's `times` ("0m0.520s"). */
const timesSeconds = (text: string): number => {
  const [, minutes, seconds] = /^(\d+)m([\d.]+)s$/.exec(text) ?? [];
  return Number(minutes) * 60 + Number(seconds);
};

/**
 * A command that exits by itself, which must exit 0. It runs under bash, whose `times` reports the
 * CPU its child used (user and system, every thread): a process that has exited has no /proc entry
 * left to read. bash's own start is in the wall time of every variant, the bare baseline's too.
 */
function exitTime(node: string, args: string[]): Promise<Timing> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn("bash", ["-c", '"$@" >/dev/null; code=$?; times; exit $code', "bash", node, ...args], { stdio: ["ignore", "pipe", "ignore"] });
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
    child.once("error", reject);
    child.once("close", (code) => {
      const wallMs = since(started);
      if (code !== 0) return reject(new Error(`${node} ${args.join(" ")} exited ${code}`));
      // The second line of `times` is the children's user and system time.
      const [user = "", system = ""] = out.trim().split("\n")[1]?.split(" ") ?? [];
      resolve({ wallMs, cpuMs: (timesSeconds(user) + timesSeconds(system)) * 1000 });
    });
  });
}

/** True once http://127.0.0.1:<port><path> answers 200; false while nothing listens. */
function answers(port: number, path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const request = get({ host: "127.0.0.1", port, path, agent: false }, (response) => {
      response.resume();
      resolve(response.statusCode === 200);
    });
    request.once("error", () => resolve(false));
  });
}

/** Process start → first 200 from /healthz on `port`, and the CPU used by then; the process is killed after. */
async function healthyTime(node: string, args: string[], port: number): Promise<Timing> {
  const started = process.hrtime.bigint();
  const child = spawn(node, args, { stdio: "ignore" });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  try {
    while (!(await answers(port, "/healthz"))) {
      if (child.exitCode !== null) throw new Error(`${node} ${args.join(" ")} exited ${child.exitCode} before /healthz answered`);
      if (since(started) > DEADLINE_MS) throw new Error(`${node} ${args.join(" ")}: /healthz did not answer within ${DEADLINE_MS} ms`);
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
    return { wallMs: since(started), cpuMs: cpuMs(child.pid as number) };
  } finally {
    child.kill("SIGKILL");
    await exited;
  }
}

interface Variant {
  name: string;
  /** Process start → first 200 from /healthz, listening on `port`, with `cert` configured. */
  serve(port: number, cert: string): Promise<Timing>;
  /** Start to exit of a one-off scan of `cert`. */
  check(cert: string): Promise<Timing>;
}

/** The exporter of one dist/ on one runtime: serve with the deployed V8 flags, check without (a pipeline's Node). */
function exporter(name: string, runtime: NodeRuntime, dist: string, flags: string[]): Variant {
  const cli = join(dist, "cli.js");
  return {
    name,
    serve: (port, cert) => healthyTime(runtime.path, [...flags, cli, "serve", "--listen-address", "127.0.0.1", "--port", String(port), "--log-level", "warn", "--file", cert], port),
    check: (cert) => exitTime(runtime.path, [cli, "check", "--file", cert]),
  };
}

/** Bare Node: `node -e 0` for check, a node:http server answering its first request for serve. */
function bareNode(runtime: NodeRuntime): Variant {
  const server = `require("node:http").createServer((q, s) => s.end("ok")).listen(+process.argv[1], "127.0.0.1")`;
  return {
    name: "bare node",
    serve: (port) => healthyTime(runtime.path, ["-e", server, String(port)], port),
    check: () => exitTime(runtime.path, ["-e", "0"]),
  };
}

/** The value 90% of the runs do not exceed (nearest rank). */
const p90 = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.ceil(values.length * 0.9) - 1] as number;

export async function benchStartup(): Promise<BenchRow[]> {
  const after = compileExporter("bench-startup");
  const beforeRef = process.env.BENCH_STARTUP_BEFORE;
  const before = beforeRef ? compileExporterAt(beforeRef, "bench-startup-before") : undefined;
  const dir = await mkdtemp(join(tmpdir(), "bench-startup-"));
  const cert = join(dir, "one.crt");
  await writeFile(cert, (await makeCert({ cn: "startup.bench.test", notAfterDays: 90 })).pem);
  const image = benchNode();
  const machine = machineNode();
  const runtimes = image.path === machine.path ? [image] : [image, machine];
  const flags = deployedNodeFlags();
  const rows: BenchRow[] = [];
  try {
    for (const runtime of runtimes) {
      const variants = [bareNode(runtime), ...(before ? [exporter(`before (${beforeRef})`, runtime, before, flags)] : []), exporter("exporter", runtime, after, flags)];
      const serve = new Map(variants.map((v) => [v, [] as Timing[]]));
      const check = new Map(variants.map((v) => [v, [] as Timing[]]));
      for (let round = 0; round < RUNS; round++) {
        for (const variant of variants) {
          serve.get(variant)?.push(await variant.serve(await freePort(), cert));
          check.get(variant)?.push(await variant.check(cert));
        }
      }
      const node = `node ${runtime.label.split(" ")[1] ?? ""}`;
      for (const [what, timings] of [["serve → /healthz 200", serve], ["check --file one.crt", check]] as const) {
        for (const measure of ["wallMs", "cpuMs"] as const) {
          const label = `${node}: ${what}, ${measure === "wallMs" ? "wall" : "CPU"}`;
          for (const variant of variants) {
            const values = (timings.get(variant) as Timing[]).map((timing) => timing[measure]);
            const name = `${label}, ${variant.name}`;
            const bare = `${label}, bare node`;
            rows.push({ name, value: median(values), unit: "ms", p90: p90(values), range: [Math.min(...values), Math.max(...values)], ...(name === bare ? {} : { baseline: bare }) });
          }
        }
      }
    }
    return rows;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export const STARTUP_TITLE = `Start time, compiled, on the image's Node and this machine's: median, p90 (range) of ${RUNS} runs; serve with the deployed V8 flags`;

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  printTable(STARTUP_TITLE, await benchStartup());
}
