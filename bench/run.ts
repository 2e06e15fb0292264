/**
 * `npm run bench`: every benchmark, each next to its baseline measured in the same run.
 * `npm run bench -- parse render` runs only the named ones.
 */
import { loadavg } from "node:os";
import { benchConfigMaps, CONFIGMAPS_TITLE } from "./configmaps.js";
import { benchEndpoints } from "./endpoints.js";
import { benchHostile } from "./hostile.js";
import { benchParse } from "./parse.js";
import { benchRender } from "./render.js";
import { benchSecrets, SECRETS_TITLE } from "./secrets.js";
import { benchStartup, STARTUP_TITLE } from "./startup.js";
import { printTable, type BenchRow } from "./report.js";

const BENCHES: Record<string, { title: string; run: () => Promise<BenchRow[]> }> = {
  parse: { title: "Parse throughput (1,000 certificates)", run: benchParse },
  render: { title: "/metrics render", run: benchRender },
  secrets: { title: SECRETS_TITLE, run: () => benchSecrets() },
  configmaps: { title: CONFIGMAPS_TITLE, run: () => benchConfigMaps() },
  hostile: { title: "Hostile input: decode time on the event loop, the decode pool, /healthz while hostile files are re-read", run: benchHostile },
  endpoints: { title: "TLS probes: 1,000 endpoints, ours (on the image's Node, then this machine's) and blackbox_exporter", run: () => benchEndpoints() },
  startup: { title: STARTUP_TITLE, run: benchStartup },
  idle: { title: "Idle: CPU and wake-ups without a request, ours (on the image's Node, then this machine's) and blackbox_exporter", run: async () => (await import("./idle.js")).benchIdle() },
  chain: { title: "Key and chain checks of presented Secrets, next to the parse alone, and our key and signature paths next to OpenSSL's general ones", run: async () => (await import("./chain.js")).benchChain() },
  prometheus: { title: "Prometheus-side cost: 50,000 certificates (BENCH_PROMETHEUS_CERTS) scraped by a real Prometheus, each family set next to the full set", run: async () => (await import("./prometheus.js")).benchPrometheus() },
};

const wanted = process.argv.slice(2);
const unknown = wanted.filter((name) => !(name in BENCHES));
if (unknown.length) {
  console.error(`unknown benchmark: ${unknown.join(", ")}; choose from ${Object.keys(BENCHES).join(", ")}`);
  process.exit(2);
}
/** The machine's load averages (1, 5, 15 minutes): other load moves wall times, so every table is read with them. */
const load = (): string => `load average ${loadavg().map((l) => l.toFixed(2)).join(", ")}`;
console.log(`Node ${process.version}, ${new Date().toISOString()}, ${load()}`);
for (const [name, bench] of Object.entries(BENCHES)) {
  if (wanted.length && !wanted.includes(name)) continue;
  printTable(bench.title, await bench.run());
  console.log(`${load()} at the end of ${name}, ${new Date().toISOString()}`);
}
