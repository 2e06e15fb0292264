/**
 * /metrics at the size of one replica holding 100,000 TLS Secrets: 300,000 certificates over 200,000
 * locations, shaped like bench/secrets.ts (tls.crt: the Secret's own leaf and one of 4 shared
 * intermediates; ca.crt: one of 4 shared roots; 400 namespaces), default series selection. Each
 * renderer renders gzip scrapes (the body /metrics streams, exporter's own metrics included) in a
 * child process on compiled JavaScript under the Deployment's V8 flags (runtime.ts), on the image's
 * Node and then on this machine's. Per scrape: wall time, CPU (user + system, every thread: zlib
 * compresses on the thread pool), the longest event-loop stall (a 1 ms timer's longest gap, less
 * 1 ms), and the largest V8 heap and RSS sampled every ~20 ms during the scrapes.
 *
 * The baseline is the renderer of an earlier commit, in the same run: its src/metrics.ts
 * (`git show <ref>:src/metrics.ts`, BENCH_RENDER_BEFORE, default RENDER_BEFORE below) transpiled
 * next to the working tree's other modules; "after" is the working tree's. Both transpile only
 * src/metrics.ts and the modules it imports, into node_modules/.cache/bench-render-scale-*. Before
 * and after take turns, one child each per round, so a busy moment of the machine weighs on both.
 * Each child also hashes the inventory's series (a fixed clock): the two must be byte-identical.
 *
 *   BENCH_RENDER_SCALE_SECRETS=100000   Secrets (certificates: three times as many)
 *   BENCH_RENDER_SCALE_ROUNDS=2         children per renderer and Node (3 measured scrapes each)
 *   BENCH_RENDER_SCALE_CHANGES=100      Secrets given a new leaf before each measured scrape
 *   BENCH_RENDER_SCALE=0                skip this case
 *   BENCH_NODE_DEFAULTS=1               Node's default heap sizes instead of the deployed flags
 */
import { spawn } from "node:child_process";
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { pathToFileURL } from "node:url";
import ts from "typescript";
import type { BenchRow } from "./report.js";
import { benchNode, deployedNodeFlags, machineNode, ROOT, type NodeRuntime } from "./runtime.js";

/** The last commit with the renderer this work started from. */
const RENDER_BEFORE = "3398de0";
const SECRETS = Number(process.env.BENCH_RENDER_SCALE_SECRETS ?? 100_000);
const ROUNDS = Number(process.env.BENCH_RENDER_SCALE_ROUNDS ?? 2);
const SCRAPES = 3;
/** Secrets given a new leaf before each measured scrape, as renewals would between two scrapes. */
const CHANGES = Number(process.env.BENCH_RENDER_SCALE_CHANGES ?? 100);

/**
 * Transpiles src/metrics.ts and every module it imports (relative imports, followed) into `out`,
 * with `metricsSource` in place of src/metrics.ts. No type check: the sources are checked elsewhere.
 */
function transpileRenderer(out: string, metricsSource: string): void {
  rmSync(dirname(out), { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  copyFileSync(join(ROOT, "package.json"), join(dirname(out), "package.json")); // version.js reads ../package.json
  const src = join(ROOT, "src");
  const pending = [join(src, "metrics.ts")];
  const done = new Set<string>();
  while (pending.length > 0) {
    const file = pending.pop() as string;
    if (done.has(file)) continue;
    done.add(file);
    const source = file === join(src, "metrics.ts") ? metricsSource : readFileSync(file, "utf8");
    for (const [, path] of source.matchAll(/(?:from|import\()\s*"(\.{1,2}\/[^"]+)\.js"/g)) pending.push(join(dirname(file), `${path}.ts`));
    const { outputText } = ts.transpileModule(source, { compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext, verbatimModuleSyntax: false } });
    const target = join(out, relative(src, file)).replace(/\.ts$/, ".js");
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, outputText);
  }
}

/**
 * The child: builds the inventory, renders a first gzip scrape (measured apart: a renderer that keeps
 * pieces between scrapes has none yet) and SCRAPES measured gzip scrapes, each after CHANGES Secrets
 * got a new leaf, hashes the series, prints one JSON line. A renderer of before the kept pieces is
 * served through one gzip stream, as its server did.
 */
export function childScript(dist: string): string {
  const module = (path: string) => JSON.stringify(pathToFileURL(join(dist, path)).href);
  return `
    const { createHash } = await import("node:crypto");
    const { Inventory } = await import(${module("inventory.js")});
    const { Health } = await import(${module("health.js")});
    const metrics = await import(${module("metrics.js")});
    const { MetricsRenderer } = metrics;
    const hex = (seed, length) => createHash("sha256").update(seed).digest("hex").slice(0, length);
    const DAY = 86400, T0 = 1767225600;
    const ca = (cn, issuerCN, k, years) => ({
      notBefore: T0 - 400 * DAY - k, notAfter: T0 + years * 365 * DAY + k, subject: "CN=" + cn, subjectCN: cn, issuer: "CN=" + issuerCN, issuerCN,
      serial: hex("serial" + cn, 32), sans: [], isCA: true, keyUsage: 96, extendedKeyUsage: "", fingerprintSha256: hex("fp" + cn, 64), keyAlgorithm: "ECDSA", keyBits: 256, signatureAlgorithm: "ecdsa-with-SHA256",
    });
    const chains = [0, 1, 2, 3].map((k) => ({ root: ca("Bench Root CA " + k, "Bench Root CA " + k, k, 10), intermediate: ca("Bench Intermediate CA " + k, "Bench Root CA " + k, k, 5) }));
    const inventory = new Inventory();
    for (let i = 0; i < ${SECRETS}; i++) {
      const chain = chains[i % 4], namespace = "ns-" + (i % 400), name = "tls-" + i, cn = "svc-" + i + ".bench.example";
      const leaf = {
        notBefore: T0 - (i % 90) * DAY - i, notAfter: T0 + (30 + (i % 3000)) * DAY + i, subject: "CN=" + cn, subjectCN: cn, issuer: chain.intermediate.subject, issuerCN: chain.intermediate.subjectCN,
        serial: hex("serial" + i, 32), sans: ["DNS:" + cn], isCA: false, keyUsage: 1, extendedKeyUsage: "1.3.6.1.5.5.7.3.1", fingerprintSha256: hex("fingerprint" + i, 64), keyAlgorithm: "ECDSA", keyBits: 256, signatureAlgorithm: "ecdsa-with-SHA256",
      };
      inventory.replace({ source: "secret", namespace, name, key: "tls.crt" }, { certificates: [leaf, chain.intermediate] });
      inventory.replace({ source: "secret", namespace, name, key: "ca.crt" }, { certificates: [chain.root] });
    }
    // Renewals: the same Secrets in every child (a fixed sequence), each a leaf 60 days newer.
    let renewal = 0;
    const renew = () => {
      for (let c = 0; c < ${CHANGES}; c++) {
        const i = (renewal++ * 7919) % ${SECRETS}, at = { source: "secret", namespace: "ns-" + (i % 400), name: "tls-" + i, key: "tls.crt" };
        const [leaf, intermediate] = inventory.get(at).certificates;
        inventory.replace(at, { certificates: [{ ...leaf, notBefore: leaf.notBefore + 60 * DAY, notAfter: leaf.notAfter + 60 * DAY, serial: hex("renewed" + renewal, 32), fingerprintSha256: hex("renewed-fp" + renewal, 64) }, intermediate] });
      }
    };
    const renderer = new MetricsRenderer(inventory, new Health(inventory));
    const mib = (bytes) => bytes / 2 ** 20;
    globalThis.gc(); globalThis.gc();
    const phase = (what) => process.stderr.write("phase: " + what + "\\n");
    phase("inventory built");
    const setup = { rssMiB: mib(process.memoryUsage.rss()), heapMiB: mib(process.memoryUsage().heapUsed), certificates: inventory.certificateCount() };

    let sampling = false, maxGap = 0, heapPeak = 0, rssPeak = 0, last = 0, ticks = 0;
    const tick = () => {
      const t = performance.now();
      maxGap = Math.max(maxGap, t - last);
      last = t;
      if (++ticks % 20 === 0) { const m = process.memoryUsage(); heapPeak = Math.max(heapPeak, m.heapUsed); rssPeak = Math.max(rssPeak, m.rss); }
      if (sampling) setTimeout(tick, 1);
    };
    const scrape = async () => {
      const cpu = process.cpuUsage();
      const started = performance.now();
      let bytes = 0;
      const body = metrics.gzipped ? metrics.gzipped(renderer.stream()) : renderer.stream("prometheus", "gzip");
      for await (const chunk of body) bytes += chunk.length;
      const { user, system } = process.cpuUsage(cpu);
      return { wallMs: performance.now() - started, cpuMs: (user + system) / 1000, gzipBytes: bytes };
    };
    const first = await scrape();
    phase("first scrape done");
    sampling = true; last = performance.now(); maxGap = 0; heapPeak = 0; rssPeak = process.memoryUsage.rss();
    setTimeout(tick, 1);
    const scrapes = [];
    for (let s = 0; s < ${SCRAPES}; s++) { renew(); scrapes.push(await scrape()); phase("scrape " + (s + 1) + " done"); }
    sampling = false;
    await new Promise((r) => setTimeout(r, 5));
    const during = { stallMs: maxGap - 1, heapPeakMiB: mib(heapPeak), rssPeakMiB: mib(rssPeak) };
    const hash = createHash("sha256");
    let plainBytes = 0;
    for (const chunk of await renderer.renderCertificates(T0)) { hash.update(chunk); plainBytes += chunk.length; }
    process.stdout.write(JSON.stringify({ setup, first, scrapes, during, plainBytes, sha256: hash.digest("hex") }) + "\\n");
  `;
}

interface ChildResult {
  setup: { rssMiB: number; heapMiB: number; certificates: number };
  first: { wallMs: number; cpuMs: number; gzipBytes: number };
  scrapes: { wallMs: number; cpuMs: number; gzipBytes: number }[];
  during: { stallMs: number; heapPeakMiB: number; rssPeakMiB: number };
  plainBytes: number;
  sha256: string;
}

function runChild(node: NodeRuntime, dist: string): Promise<ChildResult | { failed: string }> {
  return new Promise((resolve) => {
    const proc = spawn(node.path, [...deployedNodeFlags(), "--expose-gc", "--input-type=module", "-e", childScript(dist)], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    proc.stdout.on("data", (chunk: Buffer) => (out += chunk.toString("utf8")));
    proc.stderr.on("data", (chunk: Buffer) => (err += chunk.toString("utf8")));
    proc.once("exit", (code, signal) => {
      if (code === 0 && out.trim()) resolve(JSON.parse(out) as ChildResult);
      else {
        const why = /heap out of memory/i.test(err) ? "JavaScript heap out of memory" : `exit ${code ?? signal}: ${err.trim().split("\n").slice(-3).join(" | ")}`;
        const reached = [...err.matchAll(/^phase: (.*)$/gm)].at(-1)?.[1] ?? "nothing";
        resolve({ failed: `${why}, after: ${reached}` });
      }
    });
  });
}

const stats = (values: number[]): Pick<BenchRow, "value" | "range"> => {
  const sorted = [...values].sort((a, b) => a - b);
  return { value: sorted[Math.floor(sorted.length / 2)] as number, range: [sorted[0] as number, sorted.at(-1) as number] };
};

export async function benchRenderScale(): Promise<BenchRow[]> {
  if (process.env.BENCH_RENDER_SCALE === "0") return [];
  const ref = process.env.BENCH_RENDER_BEFORE ?? RENDER_BEFORE;
  const commit = execFileSync("git", ["rev-parse", "--short", ref], { cwd: ROOT, encoding: "utf8" }).trim();
  const base = join(ROOT, "node_modules", ".cache");
  const variants = [
    { name: `before ${commit}`, dist: join(base, "bench-render-scale-before", "dist"), source: execFileSync("git", ["show", `${ref}:src/metrics.ts`], { cwd: ROOT, encoding: "utf8", maxBuffer: 1 << 24 }) },
    { name: "after", dist: join(base, "bench-render-scale-after", "dist"), source: readFileSync(join(ROOT, "src", "metrics.ts"), "utf8") },
  ];
  for (const v of variants) transpileRenderer(v.dist, v.source);
  const first = benchNode();
  const machine = machineNode();
  const nodes = first.path === machine.path ? [first] : [first, machine];
  const flags = deployedNodeFlags().join(" ") || "Node's default heap sizes";
  const rows: BenchRow[] = [{ name: `${SECRETS * 3} certificates, ${SECRETS * 2} locations; after = working tree; children under ${flags}; ${nodes.map((n, i) => `node ${i + 1}: ${n.label}`).join("; ")}`, value: NaN, unit: "" }];
  const hashes = new Set<string>();
  for (const [n, node] of nodes.entries()) {
    const results = new Map<string, ChildResult[]>(variants.map((v) => [v.name, []]));
    const failures = new Map<string, string[]>(variants.map((v) => [v.name, []]));
    for (let round = 0; round < ROUNDS; round++) {
      for (const v of variants) {
        const result = await runChild(node, v.dist);
        if ("failed" in result) failures.get(v.name)!.push(result.failed);
        else {
          results.get(v.name)!.push(result);
          hashes.add(result.sha256);
        }
      }
    }
    const where = `node ${n + 1} (${/v\d+/.exec(node.label)?.[0] ?? node.label})`;
    for (const v of variants) {
      const done = results.get(v.name)!;
      const failed = failures.get(v.name)!;
      const label = `${v.name}, ${where}`;
      if (failed.length > 0) rows.push({ name: `${label}: ${failed.length} of ${ROUNDS} children died (${failed[0]})`, value: NaN, unit: "" });
      if (done.length === 0) continue;
      const scrapes = done.flatMap((r) => r.scrapes);
      const before = v === variants[1] ? (name: string) => name.replace(variants[1]!.name, variants[0]!.name) : () => undefined;
      const row = (name: string, unit: string, values: number[]): BenchRow => {
        const full = `${name}, ${label}`;
        const baseline = before(full);
        return { name: full, unit, ...stats(values), ...(baseline ? { baseline } : {}) };
      };
      rows.push(
        row("first gzip scrape wall", "ms", done.map((r) => r.first.wallMs)),
        row("first gzip scrape CPU", "ms", done.map((r) => r.first.cpuMs)),
        row(`gzip scrape after ${CHANGES} renewals, wall (${(done[0]!.plainBytes / 2 ** 20).toFixed(0)} MiB plain, ${(scrapes[0]!.gzipBytes / 2 ** 20).toFixed(1)} MiB gzip)`, "ms", scrapes.map((s) => s.wallMs)),
        row(`gzip scrape after ${CHANGES} renewals, CPU`, "ms", scrapes.map((s) => s.cpuMs)),
        row("longest event-loop stall during those scrapes", "ms", done.map((r) => r.during.stallMs)),
        row("V8 heap, largest while scraped", "MiB", done.map((r) => r.during.heapPeakMiB)),
        row("RSS, largest while scraped", "MiB", done.map((r) => r.during.rssPeakMiB)),
        row("V8 heap after setup and a full GC", "MiB", done.map((r) => r.setup.heapMiB)),
        row("RSS after setup and a full GC", "MiB", done.map((r) => r.setup.rssMiB)),
      );
    }
  }
  if (hashes.size > 1) rows.push({ name: `series NOT byte-identical between renderers: ${hashes.size} distinct SHA-256`, value: NaN, unit: "" });
  else if (hashes.size === 1) rows.push({ name: `series byte-identical across every child (SHA-256 ${[...hashes][0]!.slice(0, 12)})`, value: 1, unit: "" });
  return rows;
}
