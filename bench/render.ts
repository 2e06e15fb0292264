/**
 * /metrics render time at 10,000 and 50,000 certificates: our renderer next to a plain prom-client
 * registry holding the same series, and the longest event-loop stall while ours renders. Then, at
 * 50,000 certificates with distinct names, serials and fingerprints, the body bytes per certificate
 * and the CPU of one scrape (render and compression), plain and gzipped. Last, 300,000 certificates
 * shaped like the 100,000-Secret bench, gzip scrapes in children under the deployed V8 flags, next
 * to an earlier commit's renderer (bench/render-scale.ts).
 */
import { createHash } from "node:crypto";
import { pipeline, type Readable } from "node:stream";
import { createGzip } from "node:zlib";
import { pathToFileURL } from "node:url";
import { Gauge, Registry } from "prom-client";
import { Health } from "../src/health.js";
import { Inventory } from "../src/inventory.js";
import { METRICS_GZIP_LEVEL, MetricsRenderer } from "../src/metrics.js";
import { record } from "../test/helpers/records.js";
import { benchRenderScale } from "./render-scale.js";
import { printTable, type BenchRow } from "./report.js";

const ROUNDS = 5;

function fill(count: number): Inventory {
  const inventory = new Inventory();
  for (let i = 0; i < count; i++) {
    inventory.replace(
      { source: "secret", namespace: `ns-${i % 200}`, name: `tls-${i}`, key: "tls.crt" },
      { certificates: [record({ serial: i.toString(16), subjectCN: `host-${i}.example.test`, daysLeft: (i % 400) - 20 })] },
    );
  }
  return inventory;
}

/** The same five per-certificate families as plain prom-client gauges. */
function promClientBaseline(inventory: Inventory): Registry {
  const registry = new Registry();
  const identity = ["source", "namespace", "name", "key", "index", "subject_cn", "issuer_cn", "serial", "ca"];
  const infoLabels = [...identity, "fingerprint_sha256", "subject", "issuer", "sans", "key_algorithm", "key_bits", "signature_algorithm"];
  const notAfter = new Gauge({ name: "cert_not_after_timestamp_seconds", help: "h", labelNames: identity, registers: [registry] });
  const notBefore = new Gauge({ name: "cert_not_before_timestamp_seconds", help: "h", labelNames: identity, registers: [registry] });
  const days = new Gauge({ name: "cert_expires_in_days", help: "h", labelNames: identity, registers: [registry] });
  const expired = new Gauge({ name: "cert_expired", help: "h", labelNames: identity, registers: [registry] });
  const info = new Gauge({ name: "cert_info", help: "h", labelNames: infoLabels, registers: [registry] });
  const now = Date.now() / 1000;
  for (const entry of inventory.entries()) {
    entry.certificates.forEach((c, index) => {
      const labels = { ...entry.location, index: String(index), subject_cn: c.subjectCN, issuer_cn: c.issuerCN, serial: c.serial, ca: String(c.isCA) };
      notAfter.set(labels, c.notAfter);
      notBefore.set(labels, c.notBefore);
      days.set(labels, (c.notAfter - now) / 86400);
      expired.set(labels, c.notAfter <= now ? 1 : 0);
      info.set({ ...labels, fingerprint_sha256: c.fingerprintSha256, subject: c.subject, issuer: c.issuer, sans: c.sans.join(","), key_algorithm: c.keyAlgorithm, key_bits: String(c.keyBits), signature_algorithm: c.signatureAlgorithm }, 1);
    });
  }
  return registry;
}

/** Certificates as a cluster holds them: every name, serial and fingerprint its own, 20 issuers, expiries to the second. */
export function fillDistinct(count: number): Inventory {
  const inventory = new Inventory();
  const hex = (seed: string, length: number) => createHash("sha256").update(seed).digest("hex").slice(0, length);
  for (let i = 0; i < count; i++) {
    const namespace = `ns-${i % 200}`;
    const host = `app-${hex(`host${i}`, 8)}.${namespace}.example.test`;
    const issuer = `Issuer ${i % 20}`;
    inventory.replace(
      { source: "secret", namespace, name: `tls-${hex(`name${i}`, 10)}`, key: "tls.crt" },
      {
        certificates: [
          record({
            subject: `CN=${host}`,
            subjectCN: host,
            sans: [`DNS:${host}`, `DNS:www.${host}`],
            issuer: `CN=${issuer},O=Example`,
            issuerCN: issuer,
            serial: hex(`serial${i}`, 32),
            fingerprintSha256: hex(`fingerprint${i}`, 64),
            daysLeft: ((i * 7919) % 40_000) / 100 - 20,
          }),
        ],
      },
    );
  }
  return inventory;
}

async function median(run: () => Promise<unknown>): Promise<number> {
  await run();
  const times: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const started = performance.now();
    await run();
    times.push(performance.now() - started);
  }
  return times.sort((a, b) => a - b)[Math.floor(ROUNDS / 2)] as number;
}

async function bodyBytes(body: Readable): Promise<number> {
  let bytes = 0;
  for await (const chunk of body) bytes += (chunk as Buffer).length;
  return bytes;
}

/** The plain body through one zlib gzip stream: how bodies were compressed before the kept pieces. */
function gzipStream(body: Readable, level: number): Readable {
  const gzip = createGzip({ level });
  pipeline(body, gzip, () => undefined);
  return gzip;
}

/**
 * One whole /metrics body per encoding: bytes per certificate, and the median CPU time of a scrape
 * (user and system, every thread: zlib compresses on the thread pool). The plain body through one
 * gzip stream is the baseline of the served gzip body, which is made of pieces kept between scrapes
 * (src/gzip-pieces.ts): measured on a new renderer (nothing kept: a first scrape, or every piece
 * changed) and on one that served the same inventory before. The encodings take turns within each
 * round, so a busy moment of the machine weighs on all alike.
 */
async function benchCompression(count: number): Promise<BenchRow[]> {
  const inventory = fillDistinct(count);
  const renderer = new MetricsRenderer(inventory, new Health(inventory));
  const plain = "plain";
  const oneStream = `plain through one gzip stream, level ${METRICS_GZIP_LEVEL}`;
  // `against`: the encoding each is measured next to; the served body's is the one gzip stream at its level.
  const encodings: { name: string; against?: string; body: () => Readable; bytes: number; cpuMs: number[] }[] = [
    { name: plain, body: () => renderer.stream(), bytes: 0, cpuMs: [] },
    { name: oneStream, against: plain, body: () => gzipStream(renderer.stream(), METRICS_GZIP_LEVEL), bytes: 0, cpuMs: [] },
    { name: "plain through one gzip stream, level 6 (for comparison)", against: plain, body: () => gzipStream(renderer.stream(), 6), bytes: 0, cpuMs: [] },
    { name: `served gzip, level ${METRICS_GZIP_LEVEL}, nothing kept (first scrape)`, against: oneStream, body: () => new MetricsRenderer(inventory, new Health(inventory)).stream("prometheus", "gzip"), bytes: 0, cpuMs: [] },
    { name: `served gzip, level ${METRICS_GZIP_LEVEL}, pieces kept (next scrapes)`, against: oneStream, body: () => renderer.stream("prometheus", "gzip"), bytes: 0, cpuMs: [] },
  ];
  // Round 0 warms up and is not counted.
  for (let round = 0; round <= ROUNDS; round++) {
    for (const encoding of encodings) {
      const before = process.cpuUsage();
      encoding.bytes = await bodyBytes(encoding.body());
      const { user, system } = process.cpuUsage(before);
      if (round > 0) encoding.cpuMs.push((user + system) / 1000);
    }
  }
  const rows: BenchRow[] = [];
  const bytesRow = (name: string) => `body bytes per certificate, ${count} distinct certs, ${name}`;
  const cpuRow = (name: string) => `CPU per scrape, ${count} distinct certs, ${name}`;
  for (const { name, against, bytes, cpuMs } of encodings) {
    const ms = cpuMs.sort((a, b) => a - b)[Math.floor(cpuMs.length / 2)] as number;
    rows.push(
      { name: bytesRow(name), value: bytes / count, unit: "B", baseline: against && bytesRow(against) },
      { name: cpuRow(name), value: ms, unit: "ms", baseline: against && cpuRow(against) },
    );
  }
  return rows;
}

/** Longest gap between event-loop turns while `work` runs. */
async function longestStall(work: () => Promise<unknown>): Promise<number> {
  let last = performance.now();
  let longest = 0;
  let running = true;
  const tick = () => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
    if (running) setImmediate(tick);
  };
  setImmediate(tick);
  await work();
  await new Promise((resolve) => setImmediate(resolve));
  running = false;
  return longest;
}

export async function benchRender(): Promise<BenchRow[]> {
  // The 300,000-certificate case alone (bench/render-scale.ts), e.g. while working on the renderer.
  if (process.env.BENCH_RENDER_SCALE_ONLY) return benchRenderScale();
  // First, on a fresh heap: the prom-client registries below leave hundreds of MiB for the collector.
  const compression = await benchCompression(50_000);
  const rows: BenchRow[] = [];
  for (const count of [10_000, 50_000]) {
    const inventory = fill(count);
    const renderer = new MetricsRenderer(inventory, new Health(inventory));
    // Both sides end with the bytes a response sends.
    const ours = await median(() => renderer.renderCertificates());
    const stall = await longestStall(() => renderer.renderCertificates());
    const registry = promClientBaseline(inventory);
    const baselineBytes = async () => Buffer.from(await registry.metrics(), "utf8");
    const baseline = await median(baselineBytes);
    const baselineStall = await longestStall(baselineBytes);
    const baselineName = `render ${count} certs, plain prom-client registry (baseline)`;
    const baselineStallName = `longest event-loop stall, ${count} certs, prom-client (baseline)`;
    rows.push(
      { name: baselineName, value: baseline, unit: "ms" },
      { name: `render ${count} certs, ours`, value: ours, unit: "ms", baseline: baselineName },
      { name: baselineStallName, value: baselineStall, unit: "ms" },
      { name: `longest event-loop stall, ${count} certs, ours`, value: stall, unit: "ms", baseline: baselineStallName },
    );
  }
  return [...rows, ...compression, ...(await benchRenderScale())];
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  printTable("metrics render", await benchRender());
}
