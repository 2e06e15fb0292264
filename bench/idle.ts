/**
 * Idle cost: CPU and wake-ups of a running exporter that nobody scrapes, next to Debian's
 * prometheus-blackbox-exporter in the same run, over the same window.
 *
 *   - ours: the compiled exporter (runtime.ts) on the image's Node and on this machine's, twice: serving
 *     one certificate file (rescanned every minute, the files source's default), and as a prober of
 *     one endpoint between its probe cycles (set an hour apart, so that the window holds none);
 *   - blackbox_exporter: one tcp module, listening on 127.0.0.1.
 *
 * Each process is started and waited for (/readyz, /-/healthy); after 30 s of settling
 * (BENCH_IDLE_SETTLE_SECONDS), all of them sit side by side for IDLE_SECONDS without a request. CPU
 * is the time on CPU of every thread
 * (/proc/<pid>/task/<tid>/schedstat, nanoseconds: clock ticks of /proc/<pid>/stat are too coarse for
 * a process idling below one tick a minute); wake-ups are the context switches of every thread, which
 * shows what a timer firing every few milliseconds costs.
 *
 *   npm run bench -- idle        (needs apt-get install prometheus-blackbox-exporter)
 *   BENCH_IDLE_SECONDS=120 npx tsx bench/idle.ts
 *   BENCH_IDLE_SETTLE_SECONDS=240 npm run bench -- idle      (after V8's memory reducer is done)
 */
import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { makeCert } from "../scripts/certgen.js";
import { freePort } from "../test/helpers/net.js";
import { sleep, start, stop, waitFor, type Started } from "../test/helpers/processes.js";
import { type BenchRow, printTable } from "./report.js";
import { benchNode, compileExporter, machineNode } from "./runtime.js";

const IDLE_SECONDS = Number(process.env.BENCH_IDLE_SECONDS ?? 60);
/**
 * After readiness, until start-up is over: V8 collects garbage for a while after the first scan. Its
 * memory reducer keeps waking the process every 8 s for about 3.5 minutes after the last activity
 * (two GCs, then it stops); BENCH_IDLE_SETTLE_SECONDS=240 measures the quiet that follows.
 */
const SETTLE_MS = Number(process.env.BENCH_IDLE_SETTLE_SECONDS ?? 30) * 1000;
const BLACKBOX = "/usr/bin/prometheus-blackbox-exporter";
const BLACKBOX_ROW = "blackbox_exporter";

interface Sample {
  cpuNs: number;
  contextSwitches: number;
}

/** Time on CPU and context switches of the live threads (no thread comes or goes in an idle process). */
async function sample(pid: number): Promise<Sample> {
  let cpuNs = 0;
  let contextSwitches = 0;
  for (const task of await readdir(`/proc/${pid}/task`)) {
    // schedstat(5): time on CPU in ns, time waiting to run, timeslices.
    cpuNs += Number((await readFile(`/proc/${pid}/task/${task}/schedstat`, "utf8").catch(() => "0")).split(" ")[0]);
    const status = await readFile(`/proc/${pid}/task/${task}/status`, "utf8").catch(() => "");
    for (const match of status.matchAll(/^(?:non)?voluntary_ctxt_switches:\s+(\d+)$/gm)) contextSwitches += Number(match[1]);
  }
  return { cpuNs, contextSwitches };
}

async function startExporter(label: string, node: string, cli: string, source: string[]): Promise<{ label: string; process: Started }> {
  const port = await freePort();
  const child = start(label, node, [cli, "serve", "--listen-address", "127.0.0.1", "--port", String(port), "--log-level", "warn", ...source]);
  await waitFor(label, 60_000, async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).ok, child);
  return { label, process: child };
}

async function startBlackbox(dir: string): Promise<{ label: string; process: Started }> {
  const config = join(dir, "blackbox.yml");
  await writeFile(config, ["modules:", "  tcp_connect:", "    prober: tcp", ""].join("\n"));
  const port = await freePort();
  const child = start(BLACKBOX_ROW, BLACKBOX, [`--config.file=${config}`, `--web.listen-address=127.0.0.1:${port}`, "--log.level=error"]);
  await waitFor(BLACKBOX_ROW, 30_000, async () => (await fetch(`http://127.0.0.1:${port}/-/healthy`)).ok, child);
  return { label: BLACKBOX_ROW, process: child };
}

export async function benchIdle(): Promise<BenchRow[]> {
  const cli = join(compileExporter("bench-idle"), "cli.js");
  const image = benchNode();
  const machine = machineNode();
  const runtimes = image.path === machine.path ? [image] : [image, machine];
  const dir = await mkdtemp(join(tmpdir(), "bench-idle-"));
  await writeFile(join(dir, "leaf.pem"), (await makeCert({ cn: "idle.bench.test", notAfterDays: 90 })).pem);
  // Its one probe is refused at once: what is measured is the time between cycles.
  const proberConfig = join(dir, "prober.yaml");
  await writeFile(proberConfig, ["intervals:", "  endpoints: 1h", "sources:", "  endpoints:", `    - address: 127.0.0.1:${await freePort()}`, ""].join("\n"));
  const configurations = [
    { name: "one file", source: ["--file", join(dir, "*.pem")] },
    { name: "prober of one endpoint", source: ["--config", proberConfig] },
  ];
  const running: { label: string; process: Started }[] = [];
  try {
    for (const runtime of runtimes) {
      for (const { name, source } of configurations) running.push(await startExporter(`cert-expiry-exporter, ${name} (${runtime.label})`, runtime.path, cli, source));
    }
    running.push(await startBlackbox(dir));
    await sleep(SETTLE_MS);
    const pid = (side: { process: Started }): number => side.process.process.pid as number;
    const before = await Promise.all(running.map((side) => sample(pid(side))));
    await sleep(IDLE_SECONDS * 1000);
    const after = await Promise.all(running.map((side) => sample(pid(side))));
    const rows = running.flatMap((side, i): BenchRow[] => {
      const [was, is] = [before[i] as Sample, after[i] as Sample];
      const compared = (name: string): { baseline?: string } => (side.label === BLACKBOX_ROW ? {} : { baseline: `${BLACKBOX_ROW} ${name}` });
      return [
        { name: `${side.label} idle CPU`, value: (is.cpuNs - was.cpuNs) / 1e6 / IDLE_SECONDS, unit: "ms/s", ...compared("idle CPU") },
        { name: `${side.label} wake-ups`, value: (is.contextSwitches - was.contextSwitches) / IDLE_SECONDS, unit: "/s", ...compared("wake-ups") },
      ];
    });
    return rows;
  } finally {
    for (const side of running.reverse()) await stop(side.process);
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  printTable(`Idle: ${IDLE_SECONDS} s without a request, side by side`, await benchIdle());
}
