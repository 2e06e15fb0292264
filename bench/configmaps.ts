/**
 * ConfigMaps at scale: what the exporter's memory does while it lists 20,050 ConfigMaps, almost all
 * of them large and without certificates, next to a list-only baseline in the same run.
 *
 * The cluster, served by the API server double over HTTPS from this (the parent) process:
 *
 * - 19,900 ConfigMaps with 100 KiB of dashboard JSON under `dashboard.json` (no key the source reads);
 * - 100 with a CA certificate of their own under `ca.crt`;
 * - `kube-root-ca.crt` in each of the 50 namespaces, one cluster CA under `ca.crt`, as every real
 *   cluster has.
 *
 * Each LIST page of 500 (about 59 MB) is over `kubernetes.maxPageBytes` (8 MiB by default), so both
 * children ask for it again with half as many objects until it fits (62), as the source does in
 * production; BENCH_MAX_PAGE_BYTES sets another limit for both. Measured in child processes, one after the other, so
 * their memory is their own and the double's is not counted:
 *
 * - list-only (baseline): the same compiled ListWatch (src/kube/list-watch.ts) with the same paging,
 *   byte limit and JSON decoding, and a handler that drops every page;
 * - exporter: a real exporter (Exporter, HTTP server and all) with `sources.configMaps` on.
 *
 * For each: the time to the first complete list and the CPU the child spent on it; memory idle (the
 * process ready, before its first LIST), at its peak during that list, and settled (after the list,
 * three forced garbage collections). RSS is read from /proc/<pid>/status by this process (VmRSS, and
 * VmHWM for the peak); the V8 heap in use is reported by the child, its peak sampled right after each
 * page is parsed and every 10 ms while the list runs. Both children run on the image's Node with the
 * Deployment's V8 flags (runtime.ts), plus --expose-gc.
 *
 * The list time is mostly the double's: it takes 0.55–0.8 s to answer each 29 MB page (a third of
 * that in writing one 29 MB string to its TLS socket), and a child asks for the next page only once
 * it has read the last. So the whole bench takes about 2.5 minutes on 2 cores; running both lists
 * at once saved only 12 s, the double being the bottleneck.
 *
 *   npm run bench -- configmaps                      (or: npx tsx bench/configmaps.ts)
 *   BENCH_NODE=machine npm run bench -- configmaps   (on this machine's Node instead)
 *   BENCH_MAX_PAGE_BYTES=8MiB npm run bench -- configmaps   (another kubernetes.maxPageBytes for both)
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";
import { makeCert } from "../scripts/certgen.js";
import { FakeApiServer } from "../test/k8s/apiserver.js";
import { printTable, type BenchRow } from "./report.js";
import { benchNode, compileExporter, cpuMs, currentRssBytes, deployedNodeFlags, peakRssBytes, ROOT, type NodeRuntime } from "./runtime.js";

const NAMESPACES = 50;
const DASHBOARDS = 19_900;
const CA_CONFIGMAPS = 100;
const DASHBOARD_BYTES = 100 * 1024;
const TOTAL = DASHBOARDS + CA_CONFIGMAPS + NAMESPACES;
/** Certificate locations the exporter must hold after the list: every CA ConfigMap and every kube-root-ca.crt. */
const LOCATIONS = CA_CONFIGMAPS + NAMESPACES;

const NODE_FLAGS: string[] = deployedNodeFlags();

/** BENCH_MAX_PAGE_BYTES=8MiB (say) sets `kubernetes.maxPageBytes` for both children; default the configuration's. */
const KUBERNETES_OVERRIDES: Record<string, string> = process.env.BENCH_MAX_PAGE_BYTES ? { maxPageBytes: process.env.BENCH_MAX_PAGE_BYTES } : {};

// ---------------------------------------------------------------- child side

/**
 * Both children follow one script: set up, report "idle" and wait for a line on stdin; list, report
 * "listed" and wait; collect garbage, report "settled" and wait for stdin to close.
 */
function childScript(mode: "list-only" | "exporter", compiled: string, kubeconfig: string): string {
  const module = (path: string) => JSON.stringify(pathToFileURL(`${compiled}/${path}`).href);
  const common = `
    const { getHeapStatistics } = await import("node:v8");
    const { createInterface } = await import("node:readline");
    const report = (m) => process.stdout.write(JSON.stringify(m) + "\\n");
    const commands = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
    const command = async () => { if ((await commands.next()).done) process.exit(0); };
    const heapMiB = () => getHeapStatistics().used_heap_size / 2 ** 20;
    const settle = async () => {
      for (let i = 0; i < 3; i++) { globalThis.gc(); await new Promise((r) => setTimeout(r, 200)); }
      return heapMiB();
    };
    const kubeconfig = ${JSON.stringify(kubeconfig)};
    const { validateConfig } = await import(${module("config.js")});
    const config = validateConfig({ listen: { address: "127.0.0.1", port: 0 }, logLevel: "warn", sources: { configMaps: { enabled: true } }, kubernetes: { kubeconfig, ...${JSON.stringify(KUBERNETES_OVERRIDES)} } });
  `;
  const measured = (setup: string, list: string, after: string) => `${common}
    ${setup}
    report({ phase: "idle", heapMiB: await settle() });
    await command();
    // The heap is sampled right after each LIST page is parsed (body, chunks and items all live) and
    // every 10 ms between: a page is read and decoded in one go, which no timer sees.
    let peakHeapMiB = heapMiB();
    const sample = () => { peakHeapMiB = Math.max(peakHeapMiB, heapMiB()); };
    const parse = JSON.parse;
    JSON.parse = (...args) => { const value = parse(...args); sample(); return value; };
    const sampler = setInterval(sample, 10);
    const started = performance.now();
    ${list}
    const seconds = (performance.now() - started) / 1000;
    clearInterval(sampler);
    JSON.parse = parse;
    sample();
    report({ phase: "listed", seconds, peakHeapMiB, ${after} });
    await command();
    report({ phase: "settled", heapMiB: await settle() });
    await command();`;
  if (mode === "list-only") {
    return measured(
      `
    const { KubeConfig } = await import("@kubernetes/client-node");
    const { ListWatch, listWatchPacing } = await import(${module("kube/list-watch.js")});
    const { createLogger } = await import(${module("log.js")});
    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfig);
    let items = 0;
    const none = () => undefined;
    const listWatch = new ListWatch({
      description: "configmaps (list-only baseline)",
      kubeConfig: kc,
      path: "/api/v1/configmaps",
      ...listWatchPacing(config.kubernetes),
      handler: { listPage: (page) => { items += page.length; }, listCompleted: none, watchEvent: none, forbidden: none, allowed: none },
      reporter: { relisted: none, watchRestarted: none, listSucceeded: none, failed: none, recovered: none },
      log: createLogger("warn"),
    });`,
      `await listWatch.start();`,
      `items`,
    );
  }
  return measured(
    `
    const { Exporter } = await import(${module("app.js")});
    const exporter = await Exporter.create(config);`,
    `
    await exporter.serve();
    while (exporter.health.pendingSources().length > 0) await new Promise((r) => setTimeout(r, 2));`,
    `locations: exporter.inventory.size, certificates: exporter.inventory.certificateCount()`,
  );
}

// ---------------------------------------------------------------- parent side

interface Measured {
  seconds: number;
  /** CPU the child used from the list's start to its end. */
  listCpuMs: number;
  items?: number;
  locations?: number;
  certificates?: number;
  idleRssMiB: number;
  idleHeapMiB: number;
  peakRssMiB: number;
  peakHeapMiB: number;
  settledRssMiB: number;
  settledHeapMiB: number;
}

async function measure(node: NodeRuntime, mode: "list-only" | "exporter", compiled: string, kubeconfig: string): Promise<Measured> {
  const proc: ChildProcess = spawn(node.path, [...NODE_FLAGS, "--expose-gc", "--input-type=module", "-e", childScript(mode, compiled, kubeconfig)], { cwd: ROOT, stdio: ["pipe", "pipe", "inherit"] });
  const exited = new Promise<number | null>((resolve) => proc.once("exit", resolve));
  const lines = createInterface({ input: proc.stdout! })[Symbol.asyncIterator]();
  const phase = async (name: string): Promise<Record<string, number>> => {
    const line = await Promise.race([lines.next(), exited.then((code) => Promise.reject(new Error(`${mode} child exited with ${String(code)}`)))]);
    if (line.done) throw new Error(`${mode} child closed its output`);
    const message = JSON.parse(line.value) as Record<string, number | string>;
    if (message.phase !== name) throw new Error(`${mode} child said ${String(message.phase)}, expected ${name}`);
    return message as Record<string, number>;
  };
  const pid = proc.pid!;
  const mib = (bytes: number) => bytes / 2 ** 20;
  try {
    const idle = await phase("idle");
    const idleRssMiB = mib(currentRssBytes(pid));
    const cpuBefore = cpuMs(pid);
    proc.stdin!.write("list\n");
    const listed = await phase("listed");
    const listCpuMs = cpuMs(pid) - cpuBefore;
    const peakRssMiB = mib(peakRssBytes(pid));
    proc.stdin!.write("settle\n");
    const settled = await phase("settled");
    const settledRssMiB = mib(currentRssBytes(pid));
    return {
      seconds: listed.seconds!,
      listCpuMs,
      items: listed.items,
      locations: listed.locations,
      certificates: listed.certificates,
      idleRssMiB,
      idleHeapMiB: idle.heapMiB!,
      peakRssMiB,
      peakHeapMiB: listed.peakHeapMiB!,
      settledRssMiB,
      settledHeapMiB: settled.heapMiB!,
    };
  } finally {
    proc.stdin!.end();
    await exited;
  }
}

/** A Grafana-like dashboard of exactly `bytes` characters of JSON. */
function dashboardJson(bytes: number): string {
  const panels: unknown[] = [];
  const dashboard = { title: "Bench dashboard", uid: "bench", description: "", panels };
  for (let i = 0; JSON.stringify(dashboard).length < bytes - 1000; i++) {
    panels.push({
      id: i,
      type: "timeseries",
      title: `Requests of svc-${i}`,
      gridPos: { h: 8, w: 12, x: (i % 2) * 12, y: Math.floor(i / 2) * 8 },
      targets: [{ refId: "A", expr: `sum by (code) (rate(http_requests_total{job="svc-${i}"}[5m]))` }],
    });
  }
  dashboard.description = "x".repeat(bytes - JSON.stringify(dashboard).length);
  const text = JSON.stringify(dashboard);
  if (text.length !== bytes) throw new Error(`dashboard is ${text.length} bytes`);
  return text;
}

/**
 * structuredClone for the plain JSON values put() stores, keeping strings by reference (they are
 * immutable, so this is the same value). The double clones each object it stores; with this, the
 * 19,900 dashboards share one 100 KiB string instead of holding 2 GB in this process.
 */
function cloneSharingStrings<T>(value: T): T {
  if (Array.isArray(value)) return value.map(cloneSharingStrings) as T;
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = cloneSharingStrings(v);
    return out as T;
  }
  return value;
}

async function plant(api: FakeApiServer): Promise<void> {
  const dashboard = dashboardJson(DASHBOARD_BYTES);
  const clusterCa = await makeCert({ cn: "kubernetes", ca: true, notAfterDays: 3650 });
  const cas = [];
  for (let i = 0; i < CA_CONFIGMAPS; i++) cas.push(await makeCert({ cn: `Bench Trust CA ${i}`, ca: true, notAfterDays: 365 + i }));
  const original = globalThis.structuredClone;
  globalThis.structuredClone = cloneSharingStrings as typeof structuredClone;
  try {
    const configMap = (namespace: string, name: string, data: Record<string, string>) => api.put({ apiVersion: "v1", kind: "ConfigMap", metadata: { name, namespace }, data });
    for (let n = 0; n < NAMESPACES; n++) configMap(`team-${n}`, "kube-root-ca.crt", { "ca.crt": clusterCa.pem });
    for (let i = 0; i < CA_CONFIGMAPS; i++) configMap(`team-${i % NAMESPACES}`, `trust-bundle-${i}`, { "ca.crt": cas[i]!.pem });
    for (let i = 0; i < DASHBOARDS; i++) configMap(`team-${i % NAMESPACES}`, `dashboard-${i}`, { "dashboard.json": dashboard });
  } finally {
    globalThis.structuredClone = original;
  }
}

export async function benchConfigMaps(node: NodeRuntime = benchNode()): Promise<BenchRow[]> {
  const compiled = compileExporter("bench-configmaps");
  const api = await FakeApiServer.start();
  try {
    await plant(api);
    const kubeconfig = api.kubeconfigPath();
    const base = await measure(node, "list-only", compiled, kubeconfig);
    if (base.items !== TOTAL) throw new Error(`the list-only child saw ${String(base.items)} ConfigMaps, expected ${TOTAL}`);
    const ours = await measure(node, "exporter", compiled, kubeconfig);
    if (ours.locations !== LOCATIONS) throw new Error(`the exporter holds ${String(ours.locations)} locations, expected ${LOCATIONS}`);

    const listBase = "first complete list, list-only (baseline)";
    const cpuBase = "CPU during the list, list-only";
    const rss = { idle: "RSS idle, list-only", peak: "RSS peak during the list, list-only", growth: "RSS peak over idle, list-only", settled: "RSS settled after GC, list-only" };
    const heap = { idle: "V8 heap idle, list-only", peak: "V8 heap peak (sampled), list-only", settled: "V8 heap settled after GC, list-only" };
    return [
      { name: listBase, value: base.seconds * 1000, unit: "ms" },
      { name: `first complete list, exporter (${String(ours.certificates)} certificates)`, value: ours.seconds * 1000, unit: "ms", baseline: listBase },
      { name: cpuBase, value: base.listCpuMs, unit: "ms" },
      { name: "CPU during the list, exporter", value: ours.listCpuMs, unit: "ms", baseline: cpuBase },
      { name: rss.idle, value: base.idleRssMiB, unit: "MiB" },
      { name: "RSS idle, exporter", value: ours.idleRssMiB, unit: "MiB", baseline: rss.idle },
      { name: rss.peak, value: base.peakRssMiB, unit: "MiB" },
      { name: "RSS peak during the list, exporter", value: ours.peakRssMiB, unit: "MiB", baseline: rss.peak },
      { name: rss.growth, value: base.peakRssMiB - base.idleRssMiB, unit: "MiB" },
      { name: "RSS peak over idle, exporter", value: ours.peakRssMiB - ours.idleRssMiB, unit: "MiB", baseline: rss.growth },
      { name: rss.settled, value: base.settledRssMiB, unit: "MiB" },
      { name: "RSS settled after GC, exporter", value: ours.settledRssMiB, unit: "MiB", baseline: rss.settled },
      { name: heap.idle, value: base.idleHeapMiB, unit: "MiB" },
      { name: "V8 heap idle, exporter", value: ours.idleHeapMiB, unit: "MiB", baseline: heap.idle },
      { name: heap.peak, value: base.peakHeapMiB, unit: "MiB" },
      { name: "V8 heap peak (sampled), exporter", value: ours.peakHeapMiB, unit: "MiB", baseline: heap.peak },
      { name: heap.settled, value: base.settledHeapMiB, unit: "MiB" },
      { name: "V8 heap settled after GC, exporter", value: ours.settledHeapMiB, unit: "MiB", baseline: heap.settled },
    ];
  } finally {
    await api.close();
  }
}

export const CONFIGMAPS_TITLE = `ConfigMaps source: ${TOTAL.toLocaleString("en-US")} ConfigMaps over HTTPS (${DASHBOARDS.toLocaleString("en-US")} of 100 KiB without certificates, ${LOCATIONS} with a CA), on the image's Node with the deployed V8 flags${KUBERNETES_OVERRIDES.maxPageBytes ? `, maxPageBytes ${KUBERNETES_OVERRIDES.maxPageBytes}` : ""}`;

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const node = benchNode();
  printTable(`${CONFIGMAPS_TITLE} (${node.label}, flags ${NODE_FLAGS.join(" ") || "Node's defaults"})`, await benchConfigMaps(node));
}
