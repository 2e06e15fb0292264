/**
 * Hostile input: what it costs the event loop, next to honest input of the same kind, in one run.
 *
 * 1. Inline decoding (our PEM, DER and PKCS#7 reader) of each hostile shape in scripts/hostile.ts,
 *    near the 4 MiB file-size cap, next to an honest bundle of 1,000 certificates (the
 *    per-location cap). These run on the event loop, so their worst case is its longest pause.
 * 2. The decode pool, which the choice "decode off the event loop or not" rests on: a small
 *    kubeconfig and an openssl-made PKCS#12 decoded inline (blocking) and in the pool (not
 *    blocking, plus a hand-over to a worker thread).
 * 3. The exporter process, compiled, on this machine's Node: /healthz latency while a folder of
 *    hostile files and a hostile kubeconfig are rewritten with a new trailing byte (and so decoded
 *    again) every 300 ms, next to the same with honest files of comparable sizes.
 *
 *   npm run bench -- hostile
 */
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import YAML from "yaml";
import { ParseCache } from "../src/certs/cache.js";
import { parseKubeconfig } from "../src/certs/kubeconfig.js";
import { openPkcs12 } from "../src/certs/pkcs12.js";
import { DecodePool } from "../src/decode-pool.js";
import { makeCert } from "../scripts/certgen.js";
import * as hostile from "../scripts/hostile.js";
import { freePort } from "../test/helpers/net.js";
import type { BenchRow } from "./report.js";
import { compileExporter } from "./runtime.js";

const REPEAT = 5;
const HEALTHZ_SECONDS = 10;

/** Median of `REPEAT` runs of `fn`, in ms. */
function medianMs(fn: () => unknown): number {
  const times: number[] = [];
  for (let i = 0; i < REPEAT; i++) {
    const started = performance.now();
    try {
      fn();
    } catch {
      // hostile input fails by design: the time to fail is what is measured
    }
    times.push(performance.now() - started);
  }
  return times.sort((a, b) => a - b)[Math.floor(REPEAT / 2)] as number;
}

async function medianAsyncMs(fn: () => Promise<unknown>): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < REPEAT; i++) {
    const started = performance.now();
    await fn();
    times.push(performance.now() - started);
  }
  return times.sort((a, b) => a - b)[Math.floor(REPEAT / 2)] as number;
}

async function inlineDecoding(): Promise<BenchRow[]> {
  const honest = await hostile.manyCertificates(1000);
  const inputs: [string, Buffer][] = [
    ["OID with a 2 MiB arc", hostile.oidBomb(2 * 1024 * 1024)],
    ["4 MiB of BEGIN lines, no END", hostile.pemBeginFlood(4 * 1024 * 1024 - 64)],
    ["60,000 distinct non-certificate PEM blocks", hostile.pemLabelFlood()],
    ["BER indefinite lengths nested 1,000,000 deep", hostile.berNesting(1_000_000)],
    ["one certificate with 200,000 SANs", hostile.sanFlood(200_000)],
    ["5,000-certificate bundle (over the cap)", await hostile.manyCertificates(5000)],
  ];
  const decode = (bytes: Buffer) => () => new ParseCache(0, { maxCertificates: 1000, maxLabelValueLength: 1024 }).parse(bytes);
  const rows: BenchRow[] = [{ name: `honest: 1,000-certificate PEM bundle (${(honest.length / 1024).toFixed(0)} KiB)`, value: medianMs(decode(honest)), unit: "ms" }];
  const baseline = rows[0]?.name;
  for (const [name, bytes] of inputs) rows.push({ name: `${name} (${(bytes.length / 1024).toFixed(0)} KiB)`, value: medianMs(decode(bytes)), unit: "ms", baseline });
  return rows;
}

async function decodePool(): Promise<BenchRow[]> {
  const ca = await makeCert({ cn: "bench-ca", ca: true });
  const kubeconfig = Buffer.from(
    YAML.stringify({ apiVersion: "v1", kind: "Config", clusters: [{ name: "c", cluster: { server: "https://x", "certificate-authority-data": Buffer.from(ca.pem).toString("base64") } }] }),
  );
  const p12 = await hostile.opensslPkcs12("pw");
  const pool = new DecodePool({ timeoutMs: 10_000 });
  await pool.kubeconfig(kubeconfig, null); // the worker starts once, then stays
  const rows: BenchRow[] = [
    { name: "kubeconfig (2 KiB) inline: event loop blocked", value: medianMs(() => parseKubeconfig(kubeconfig, null)), unit: "ms" },
    { name: "kubeconfig (2 KiB) in the pool: wall time, loop free", value: await medianAsyncMs(() => pool.kubeconfig(kubeconfig, null)), unit: "ms", baseline: "kubeconfig (2 KiB) inline: event loop blocked" },
    { name: "PKCS#12, 3 x 2,048 iterations, inline: event loop blocked", value: medianMs(() => openPkcs12(p12, ["pw"])), unit: "ms" },
    {
      name: "PKCS#12, 3 x 2,048 iterations, in the pool: wall time, loop free",
      value: await medianAsyncMs(() => pool.pkcs12(p12, ["pw"], Infinity)),
      unit: "ms",
      baseline: "PKCS#12, 3 x 2,048 iterations, inline: event loop blocked",
    },
    { name: "kubeconfig, 3 MiB mapping, inline: event loop blocked", value: medianMs(() => parseKubeconfig(hostile.kubeconfigBigMapping(), null)), unit: "ms" },
  ];
  await pool.close();
  return rows;
}

/** /healthz latencies (ms, sorted) over HEALTHZ_SECONDS while `files` are rewritten every 300 ms. */
async function healthzWhileReading(dist: string, files: Record<string, Buffer>, kubeconfig: Buffer): Promise<number[]> {
  const dir = await mkdtemp(join(tmpdir(), "cee-bench-hostile-"));
  try {
    await mkdir(join(dir, "files"));
    for (const [name, bytes] of Object.entries(files)) await writeFile(join(dir, "files", name), bytes);
    await writeFile(join(dir, "kubeconfig.conf"), kubeconfig);
    const port = await freePort();
    const config = join(dir, "config.yaml");
    await writeFile(
      config,
      YAML.stringify({
        listen: { address: "127.0.0.1", port },
        logLevel: "error",
        intervals: { files: "1s", kubeconfigs: "1s" },
        sources: { files: [{ paths: [join(dir, "files", "*")] }], kubeconfigs: [{ paths: [join(dir, "kubeconfig.conf")] }] },
      }),
    );
    const child = spawn(process.execPath, [join(dist, "cli.js"), "serve", "-c", config], { stdio: "ignore" });
    try {
      const base = `http://127.0.0.1:${port}`;
      for (let i = 0; i < 200; i++) {
        if (await fetch(`${base}/readyz`).then((r) => r.ok, () => false)) break;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const latencies: number[] = [];
      const end = Date.now() + HEALTHZ_SECONDS * 1000;
      let round = 0;
      let touched = 0;
      while (Date.now() < end) {
        if (Date.now() - touched > 300) {
          // A new trailing byte, which every reader ignores: neither change detection nor the parse cache spares a decode.
          touched = Date.now();
          const tail = Buffer.from([0x0a + (++round % 2)]);
          for (const [name, bytes] of Object.entries(files)) await writeFile(join(dir, "files", name), Buffer.concat([bytes, tail]));
          await writeFile(join(dir, "kubeconfig.conf"), Buffer.concat([kubeconfig, tail]));
        }
        const started = performance.now();
        await (await fetch(`${base}/healthz`)).text();
        latencies.push(performance.now() - started);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      return latencies.sort((a, b) => a - b);
    } finally {
      child.kill("SIGKILL");
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function healthz(): Promise<BenchRow[]> {
  const dist = compileExporter("bench-hostile");
  const hostileFiles: Record<string, Buffer> = {
    "oid-bomb.der": hostile.oidBomb(2 * 1024 * 1024),
    "begin-flood.pem": hostile.pemBeginFlood(4 * 1024 * 1024 - 64),
    "label-flood.pem": hostile.pemLabelFlood(),
    "san-flood.der": hostile.sanFlood(200_000),
    "many.pem": await hostile.manyCertificates(5000),
  };
  // Honest files of the same sizes: each a bundle of real certificates up to the per-location cap.
  const bundle = await hostile.manyCertificates(1000);
  const honestFiles = Object.fromEntries(Object.keys(hostileFiles).map((name, i) => [`honest-${i}.pem`, bundle]));
  const ca = await makeCert({ cn: "bench-ca", ca: true });
  const honestKubeconfig = Buffer.from(
    YAML.stringify({ apiVersion: "v1", kind: "Config", clusters: [{ name: "c", cluster: { server: "https://x", "certificate-authority-data": Buffer.from(ca.pem).toString("base64") } }] }),
  );
  const honest = await healthzWhileReading(dist, honestFiles, honestKubeconfig);
  const bad = await healthzWhileReading(dist, hostileFiles, hostile.kubeconfigBigMapping());
  const at = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
  const rows: BenchRow[] = [];
  for (const [label, q] of [["median", 0.5], ["p99", 0.99], ["max", 1]] as const) {
    const honestName = `/healthz ${label}, honest files and kubeconfig re-read`;
    rows.push({ name: honestName, value: at(honest, q), unit: "ms" });
    rows.push({ name: `/healthz ${label}, hostile files and kubeconfig re-read`, value: at(bad, q), unit: "ms", baseline: honestName });
  }
  return rows;
}

export async function benchHostile(): Promise<BenchRow[]> {
  return [...(await inlineDecoding()), ...(await decodePool()), ...(await healthz())];
}
