/**
 * Secrets at scale: 20,000 TLS Secrets (leaf + intermediate in tls.crt, CA in ca.crt) served by the
 * API server double over HTTPS. Measured in child processes, so their memory is their own:
 *
 * - baseline: list the same Secrets page by page (500) with the same client (@kubernetes/client-node
 *   CoreV1Api, same field selector) and JSON-decode them, nothing else;
 * - exporter: a real exporter (Exporter, HTTP server and all) until its first full sync;
 *
 * each with its peak RSS (VmHWM of /proc/<pid>/status); then the time from a Secret update on the
 * server to the new certificate on the exporter's /metrics (polled back to back).
 *
 * As in a real cluster, every Secret has its own leaf certificate, and they share 4 intermediates
 * and 4 roots. Every tls.crt and ca.crt value has distinct bytes (a line naming the Secret before the
 * PEM blocks, which PEM allows), so the whole-value cache hits nothing; the per-certificate cache
 * decodes each shared intermediate and root once, as it would in production.
 *
 * Both children run on the image's Node with the Deployment's V8 flags (runtime.ts).
 *
 *   npm run bench -- secrets                         (or: npx tsx bench/secrets.ts)
 *   BENCH_NODE=machine npm run bench -- secrets      (on this machine's Node instead)
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";
import { makeCert, type Issued } from "../scripts/certgen.js";
import { FakeApiServer } from "../test/k8s/apiserver.js";
import { printTable, type BenchRow } from "./report.js";
import { benchNode, compileExporter, deployedNodeFlags, peakRssBytes, ROOT, type NodeRuntime } from "./runtime.js";

const SECRETS = 20_000;
const NAMESPACES = 50;
const UPDATES = 5;

/**
 * Both children run with the Deployment's V8 flags (runtime.ts), so the figures are those of the
 * exporter as deployed, next to a baseline under the same flags. BENCH_NODE_DEFAULTS=1 runs both
 * with Node's defaults instead.
 */
const DEPLOYED_NODE_FLAGS: string[] = deployedNodeFlags();

// ---------------------------------------------------------------- child side

/**
 * The children run JavaScript compiled from src/ on the image's Node (see runtime.ts). Each prints
 * one JSON line when synced, then waits for its stdin to close.
 */
function childScript(mode: "baseline" | "exporter", compiled: string, kubeconfig: string): string {
  const common = `
    const report = (m) => process.stdout.write(JSON.stringify(m) + "\\n");
    const stdinEnd = () => new Promise((r) => { process.stdin.on("end", r); process.stdin.on("close", r); process.stdin.resume(); });
    const kubeconfig = ${JSON.stringify(kubeconfig)};
  `;
  if (mode === "baseline") {
    return `${common}
    const { CoreV1Api, KubeConfig } = await import("@kubernetes/client-node");
    const kc = new KubeConfig();
    kc.loadFromFile(kubeconfig);
    const core = kc.makeApiClient(CoreV1Api);
    const started = performance.now();
    let items = 0;
    let token;
    do {
      const page = await core.listSecretForAllNamespaces({ limit: 500, _continue: token, fieldSelector: "type=kubernetes.io/tls" });
      items += page.items.length;
      token = page.metadata?._continue || undefined;
    } while (token);
    report({ seconds: (performance.now() - started) / 1000, items });
    await stdinEnd();
    process.exit(0);`;
  }
  return `${common}
    const { validateConfig } = await import(${JSON.stringify(pathToFileURL(`${compiled}/config.js`).href)});
    const { Exporter } = await import(${JSON.stringify(pathToFileURL(`${compiled}/app.js`).href)});
    const config = validateConfig({ listen: { address: "127.0.0.1", port: 0 }, logLevel: "warn", sources: { secrets: { enabled: true } }, kubernetes: { kubeconfig } });
    const exporter = await Exporter.create(config);
    const started = performance.now();
    await exporter.serve();
    while (exporter.health.pendingSources().length > 0) await new Promise((r) => setTimeout(r, 2));
    const seconds = (performance.now() - started) / 1000;
    report({ seconds, items: exporter.inventory.size, certificates: exporter.inventory.certificateCount(), port: exporter.port, heapUsedMiB: (globalThis.gc?.(), process.memoryUsage().heapUsed / 2 ** 20), externalMiB: process.memoryUsage().external / 2 ** 20 });
    // The source's own share of the update latency: when the inventory changes, to the millisecond.
    let generation = exporter.inventory.generation;
    const watcher = setInterval(() => {
      if (exporter.inventory.generation === generation) return;
      generation = exporter.inventory.generation;
      report({ inventoryChangedAt: Date.now() });
    }, 1);
    await stdinEnd();
    clearInterval(watcher);
    await exporter.close();
    process.exit(0);`;
}

// ---------------------------------------------------------------- parent side

interface Child {
  proc: ChildProcess;
  first: Promise<Record<string, unknown>>;
  /** Resolves with the next line after the first. */
  next(): Promise<Record<string, unknown>>;
  /** Forgets lines not yet read. */
  drain(): void;
}

function startChild(node: NodeRuntime, mode: "baseline" | "exporter", compiled: string, kubeconfig: string): Child {
  const proc = spawn(node.path, [...DEPLOYED_NODE_FLAGS, ...(mode === "exporter" && process.env.BENCH_PROF ? ["--cpu-prof", "--cpu-prof-dir=/tmp/prof"] : []), "--expose-gc", "--input-type=module", "-e", childScript(mode, compiled, kubeconfig)], { cwd: ROOT, stdio: ["pipe", "pipe", "inherit"] });
  const lines = createInterface({ input: proc.stdout! });
  const queue: Record<string, unknown>[] = [];
  const waiting: ((line: Record<string, unknown>) => void)[] = [];
  lines.on("line", (line) => {
    const message = JSON.parse(line) as Record<string, unknown>;
    const waiter = waiting.shift();
    if (waiter) waiter(message);
    else queue.push(message);
  });
  const next = () => new Promise<Record<string, unknown>>((resolve) => {
    const queued = queue.shift();
    if (queued) resolve(queued);
    else waiting.push(resolve);
  });
  const first = new Promise<Record<string, unknown>>((resolve, reject) => {
    void next().then(resolve);
    proc.once("exit", (code) => reject(new Error(`${mode} child exited with ${code}`)));
  });
  return { proc, first, next, drain: () => void queue.splice(0) };
}

async function stopChild(child: Child): Promise<void> {
  const exited = new Promise((r) => child.proc.once("exit", r));
  child.proc.stdin!.end();
  await exited;
}

async function fixtures(): Promise<{ chains: { root: Issued; intermediate: Issued }[]; leaves: Issued[] }> {
  const chains: { root: Issued; intermediate: Issued }[] = [];
  for (let i = 0; i < 4; i++) {
    const root = await makeCert({ cn: `Bench Root CA ${i}`, ca: true, notAfterDays: 3650 });
    const intermediate = await makeCert({ cn: `Bench Intermediate CA ${i}`, ca: true, issuer: root, notAfterDays: 1825 });
    chains.push({ root, intermediate });
  }
  const leaves: Issued[] = [];
  for (let i = 0; i < SECRETS; i++) {
    leaves.push(await makeCert({ cn: `svc-${i}.bench.example`, issuer: chains[i % 4]!.intermediate, sans: [`svc-${i}.bench.example`], notAfterDays: 30 + i }));
  }
  return { chains, leaves };
}

function plant(api: FakeApiServer, chains: { root: Issued; intermediate: Issued }[], leaves: Issued[]): void {
  const key = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n";
  for (let i = 0; i < SECRETS; i++) {
    const leaf = leaves[i]!;
    const chain = chains[i % 4]!;
    const ns = `ns-${i % NAMESPACES}`;
    const name = `tls-${i}`;
    api.putSecret(
      ns,
      name,
      { "tls.crt": `${ns}/${name}\n${leaf.pem}${chain.intermediate.pem}`, "ca.crt": `${ns}/${name}\n${chain.root.pem}`, "tls.key": key },
      { type: "kubernetes.io/tls" },
    );
  }
}

/**
 * The scraper: its own plain-node process, as Prometheus is, so the parent (which also runs the API
 * double) does not slow it down. It waits for "go" on stdin, then scrapes back to back, scanning the
 * streamed bytes, until `needle` appears (or once, without one), and prints when it finished.
 */
const SCRAPER = `
  import { get } from "node:http";
  const [url, needle = ""] = process.argv.slice(1);
  const wanted = Buffer.from(needle);
  const scrape = () => new Promise((resolve, reject) => {
    get(url, (res) => {
      let bytes = 0, found = false, tail = Buffer.alloc(0);
      res.on("data", (chunk) => {
        bytes += chunk.length;
        if (!needle || found) return;
        const window = tail.length ? Buffer.concat([tail, chunk]) : chunk;
        found = window.includes(wanted);
        tail = Buffer.from(window.subarray(Math.max(0, window.length - wanted.length)));
      });
      res.on("end", () => resolve({ bytes, found }));
      res.on("error", reject);
    }).on("error", reject);
  });
  process.stdout.write("ready\\n");
  process.stdin.once("data", async () => {
    const started = Date.now();
    let result = await scrape();
    for (let tries = 1; needle && !result.found && tries < 2000; tries++) result = await scrape();
    process.stdout.write(JSON.stringify({ started, finished: Date.now(), bytes: result.bytes, found: result.found }) + "\\n");
    process.exit(0);
  });
`;

/** Starts the scraper, then runs `before` and lets it go; resolves with its report. */
async function scrapeAfter(url: string, needle: string, before: () => void = () => undefined): Promise<{ started: number; finished: number; bytes: number; found: boolean }> {
  const proc = spawn(process.execPath, ["--input-type=module", "-e", SCRAPER, url, needle], { stdio: ["pipe", "pipe", "inherit"] });
  const lines = createInterface({ input: proc.stdout! });
  const iterator = lines[Symbol.asyncIterator]();
  await iterator.next();
  before();
  proc.stdin!.write("go\n");
  const report = (await iterator.next()).value as string;
  lines.close();
  return JSON.parse(report) as { started: number; finished: number; bytes: number; found: boolean };
}

export async function benchSecrets(node: NodeRuntime = benchNode()): Promise<BenchRow[]> {
  const compiled = compileExporter("bench-secrets");
  const { chains, leaves } = await fixtures();
  const api = await FakeApiServer.start({ historyWindow: 100_000 });
  try {
    plant(api, chains, leaves);
    const kubeconfig = api.kubeconfigPath();

    const baseline = startChild(node, "baseline", compiled, kubeconfig);
    const b = await baseline.first;
    const baselineRss = peakRssBytes(baseline.proc.pid!) / 2 ** 20;
    await stopChild(baseline);

    const exporter = startChild(node, "exporter", compiled, kubeconfig);
    const e = await exporter.first;
    const exporterRss = peakRssBytes(exporter.proc.pid!) / 2 ** 20;
    if (e.items !== SECRETS * 2) throw new Error(`exporter holds ${String(e.items)} locations, expected ${SECRETS * 2}`);

    // Update latency: a new leaf in one Secret, then /metrics polled back to back until it shows.
    const url = `http://127.0.0.1:${String(e.port)}/metrics`;
    await scrapeAfter(url, ""); // first render outside the measurement
    const body = await scrapeAfter(url, "");
    const renderMs = body.finished - body.started;
    const latencies: number[] = [];
    const sourceLatencies: number[] = [];
    for (let u = 0; u < UPDATES; u++) {
      const chain = chains[u % 4]!;
      const fresh = await makeCert({ cn: `updated-${u}.bench.example`, issuer: chain.intermediate, notAfterDays: 60 });
      const serial = fresh.cert.serialNumber.toLowerCase();
      await new Promise((resolve) => setTimeout(resolve, 100));
      exporter.drain();
      const changed = exporter.next();
      let startedAt = 0;
      const seen = await scrapeAfter(url, `serial="${serial}"`, () => {
        startedAt = Date.now();
        api.putSecret(`ns-${u}`, `tls-${u * 1000 + u}`, { "tls.crt": fresh.pem + chain.intermediate.pem, "ca.crt": chain.root.pem }, { type: "kubernetes.io/tls" });
      });
      if (!seen.found) throw new Error(`update ${u} never appeared on /metrics`);
      latencies.push(seen.finished - startedAt);
      sourceLatencies.push(Number((await changed).inventoryChangedAt) - startedAt);
    }
    const withScrapesRss = peakRssBytes(exporter.proc.pid!) / 2 ** 20;
    await stopChild(exporter);
    latencies.sort((x, y) => x - y);
    sourceLatencies.sort((x, y) => x - y);

    const baseName = `list + JSON-decode ${SECRETS} Secrets, client-node only (baseline)`;
    const baseRssName = "peak RSS, list-only baseline";
    return [
      { name: baseName, value: Number(b.seconds) * 1000, unit: "ms" },
      { name: `exporter initial sync, ${SECRETS} Secrets (${String(e.certificates)} certificates)`, value: Number(e.seconds) * 1000, unit: "ms", baseline: baseName },
      { name: baseRssName, value: baselineRss, unit: "MiB" },
      { name: "peak RSS, exporter after initial sync", value: exporterRss, unit: "MiB", baseline: baseRssName },
      { name: "V8 heap in use, exporter after initial sync", value: Number(e.heapUsedMiB), unit: "MiB" },
      { name: `peak RSS, exporter after ${UPDATES} updates and back-to-back /metrics scrapes`, value: withScrapesRss, unit: "MiB", baseline: baseRssName },
      { name: `one GET /metrics (${(body.bytes / 2 ** 20).toFixed(0)} MiB, ${String(e.certificates)} certificates)`, value: renderMs, unit: "ms" },
      { name: `update → new value on /metrics, median of ${UPDATES}`, value: latencies[Math.floor(latencies.length / 2)]!, unit: "ms" },
      { name: `update → new value on /metrics, worst of ${UPDATES}`, value: latencies[latencies.length - 1]!, unit: "ms" },
      { name: `update → new value in the inventory (the source's share), median of ${UPDATES}`, value: sourceLatencies[Math.floor(sourceLatencies.length / 2)]!, unit: "ms" },
      { name: `update → new value in the inventory, worst of ${UPDATES}`, value: sourceLatencies[sourceLatencies.length - 1]!, unit: "ms" },
    ];
  } finally {
    await api.close();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const node = benchNode();
  printTable(`Secrets source (${SECRETS.toLocaleString("en-US")} TLS Secrets over HTTPS; ${node.label}, flags ${DEPLOYED_NODE_FLAGS.join(" ") || "Node's defaults"})`, await benchSecrets(node));
}
