/**
 * The exporter under HTTP load, as deployed: the real CLI in a child process with the Deployment's
 * V8 heap flags, serving 20,000 certificates, while scrapers pile up, leave early or stop reading.
 * Only hard requirements are asserted: every client is answered, /healthz keeps answering, the
 * process lives and stays under the container's memory limit, and SIGTERM ends it in time. The peak
 * resident memory (VmHWM) is printed as a comment for each phase.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import t, { type Test } from "tap";
import { parse as parseYaml, stringify as toYaml } from "yaml";
import { peakRssBytes } from "../bench/runtime.js";
import { makeCert } from "../scripts/certgen.js";
import { ROOT } from "./helpers/build.js";
import { freePort } from "./helpers/net.js";
import { firstBytesThenStall, rawRequest, sent } from "./helpers/raw-http.js";

const FILES = 2_000;
const CERTIFICATES_PER_FILE = 10;
const CERTIFICATES = FILES * CERTIFICATES_PER_FILE;
/** The Deployment's memory limit: above it the kubelet kills the container. */
const MEMORY_LIMIT_BYTES = 384 * 2 ** 20;
/** SIGTERM must end the process within this, stalled clients or not. */
const EXIT_DEADLINE_MS = 5_000;
/** Long enough that only a stall, never a busy two-core machine, misses it. */
const HEALTH_DEADLINE_MS = 3_000;

/** NODE_OPTIONS of the Deployment, so the child runs under the heap limits it is shipped with. */
async function deployedNodeOptions(): Promise<string> {
  const deployment = parseYaml(await readFile(join(ROOT, "deploy", "base", "deployment.yaml"), "utf8")) as {
    spec: { template: { spec: { containers: { env?: { name: string; value: string }[] }[] } } };
  };
  const value = deployment.spec.template.spec.containers[0]?.env?.find((e) => e.name === "NODE_OPTIONS")?.value;
  if (!value) throw new Error("deploy/base/deployment.yaml sets no NODE_OPTIONS");
  return value;
}

/**
 * 2,000 files of 10 copies of one CA-signed certificate: 20,000 series (one per file and index), but
 * identical bytes, so the exporter parses them once and starts in seconds.
 */
async function certificateFolder(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "cee-http-load-"));
  const ca = await makeCert({ cn: "Load Test CA", ca: true, notAfterDays: 3650 });
  const leaf = await makeCert({ cn: "load.test", issuer: ca, sans: ["DNS:load.test", "DNS:www.load.test"] });
  const bundle = leaf.pem.repeat(CERTIFICATES_PER_FILE);
  for (let i = 0; i < FILES; i++) await writeFile(join(dir, `cert-${i}.pem`), bundle);
  return dir;
}

const dir = await certificateFolder();
t.teardown(() => rm(dir, { recursive: true, force: true }));
const nodeOptions = await deployedNodeOptions();

interface ExporterProcess {
  child: ChildProcess;
  port: number;
  /** Peak resident memory so far (VmHWM), in bytes. */
  peakRss(): number;
  /** The last of what it wrote to stderr, for failure messages. */
  stderrTail(): string;
}

/** Starts `cert-expiry-exporter serve` with the given `http` settings and waits until it is ready. */
async function startExporter(t: Test, http: Record<string, number> = {}): Promise<ExporterProcess> {
  const port = await freePort();
  const configFile = join(dir, `config-${port}.yaml`);
  await writeFile(configFile, toYaml({ listen: { address: "127.0.0.1", port }, logLevel: "warn", http, sources: { files: [{ paths: [join(dir, "*.pem")] }] } }));
  // tap adds its process-info loader (a hooks thread, and coverage) to the NODE_OPTIONS of every child
  // it sees spawned; env(1) sets them again after that, so the exporter runs with the Deployment's alone.
  const command = ["-u", "NODE_V8_COVERAGE", `NODE_OPTIONS=${nodeOptions}`, process.execPath, "--import", "tsx", join(ROOT, "src", "cli.ts"), "serve", "--config", configFile];
  const child = spawn("env", command, { cwd: ROOT, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });
  const exporter: ExporterProcess = {
    child,
    port,
    peakRss: () => peakRssBytes(child.pid as number),
    stderrTail: () => stderr,
  };
  const readyBy = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the exporter exited with ${child.exitCode}: ${stderr}`);
    const ready = await get(port, "/readyz", { timeoutMs: HEALTH_DEADLINE_MS }).catch(() => undefined);
    if (ready?.status === 200) return exporter;
    if (Date.now() > readyBy) throw new Error(`the exporter was not ready within a minute: ${stderr}`);
    await delay(100);
  }
}

interface Answer {
  status: number;
  retryAfter: string | undefined;
  bytes: number;
}

/** One request, read to the end; rejects when the answer does not end properly (cut off) or is too late. */
function get(port: number, path: string, { method = "GET", headers = {}, timeoutMs }: { method?: string; headers?: Record<string, string>; timeoutMs?: number } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, method, headers, agent: false, signal: timeoutMs ? AbortSignal.timeout(timeoutMs) : undefined }, (res) => {
      let bytes = 0;
      res.on("data", (chunk: Buffer) => (bytes += chunk.length));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers["retry-after"], bytes }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

/** Polls /healthz back to back until stopped, counting answers and every failure to answer in time. */
function pollHealth(port: number): { stop(): Promise<{ answered: number; failures: string[] }> } {
  let polling = true;
  let answered = 0;
  const failures: string[] = [];
  const done = (async () => {
    while (polling) {
      try {
        const { status } = await get(port, "/healthz", { timeoutMs: HEALTH_DEADLINE_MS });
        if (status === 200) answered++;
        else failures.push(`status ${status}`);
      } catch (err) {
        failures.push((err as Error).message);
      }
      await delay(50);
    }
  })();
  return {
    stop: async () => {
      polling = false;
      await done;
      return { answered, failures };
    },
  };
}

/** Sends SIGTERM and waits for the exit, up to the deadline; the exit code, or "still running". */
async function terminate(child: ChildProcess): Promise<number | null | "still running"> {
  const exited = once(child, "exit").then(([code]) => code as number | null);
  child.kill("SIGTERM");
  return Promise.race([exited, delay(EXIT_DEADLINE_MS, "still running" as const)]);
}

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;

t.test("20,000 certificates under concurrent, abandoned and stalled scrapes, with the deployed heap limits", async (t) => {
  const exporter = await startExporter(t);
  const { port } = exporter;
  t.comment(`ready: peak RSS ${mib(exporter.peakRss())}`);

  const health = pollHealth(port);
  const scrapes = await Promise.allSettled(Array.from({ length: 20 }, () => get(port, "/metrics")));
  const complete = scrapes.filter((s) => s.status === "fulfilled" && s.value.status === 200 && s.value.bytes > CERTIFICATES * 500).length;
  const refused = scrapes.filter((s) => s.status === "fulfilled" && s.value.status === 503 && s.value.retryAfter !== undefined).length;
  t.equal(complete + refused, 20, "every concurrent scrape got the whole body, or a 503 with Retry-After when the line was full");
  t.ok(complete > 0, `${complete} complete, ${refused} refused`);
  t.comment(`after 20 concurrent full scrapes: peak RSS ${mib(exporter.peakRss())}`);

  // HEADs that leave at once, then GETs that leave after the first bytes: none may leave work behind.
  await Promise.all(Array.from({ length: 50 }, () => sent(rawRequest(port, { method: "HEAD" })).then((socket) => socket.destroy())));
  await Promise.all(
    Array.from({ length: 50 }, async () => {
      const socket = rawRequest(port);
      await once(socket, "data");
      socket.destroy();
    }),
  );

  // Clients that ask and never read: they hold render slots and the line until cut off.
  const stalled = Array.from({ length: 10 }, () => rawRequest(port));
  t.teardown(() => stalled.forEach((socket) => socket.destroy()));
  await Promise.all(stalled.map((socket) => sent(socket).then(() => socket.pause())));
  t.equal((await get(port, "/metrics", { method: "HEAD", timeoutMs: HEALTH_DEADLINE_MS })).status, 200, "HEAD /metrics answers beside the stalled clients");
  // A while of /healthz polls with the stalled clients connected.
  await delay(1_000);

  const { answered, failures } = await health.stop();
  t.same(failures, [], "/healthz answered every poll within its deadline");
  t.ok(answered > 0, `/healthz answered ${answered} polls`);
  t.equal(exporter.child.exitCode, null, `the exporter is alive ${exporter.stderrTail()}`);
  const peak = exporter.peakRss();
  t.comment(`after everything: peak RSS ${mib(peak)}`);
  t.ok(peak < MEMORY_LIMIT_BYTES, `peak RSS ${mib(peak)} under the container's ${mib(MEMORY_LIMIT_BYTES)} limit`);

  t.equal(await terminate(exporter.child), 0, `SIGTERM: exit 0 within ${EXIT_DEADLINE_MS} ms, the stalled clients still connected`);
});

t.test("a full line is answered 503 with Retry-After", async (t) => {
  const exporter = await startExporter(t, { maxConcurrentScrapes: 1, maxQueuedScrapes: 1 });
  const holder = rawRequest(exporter.port);
  t.teardown(() => holder.destroy());
  t.match((await firstBytesThenStall(holder)).toString("latin1"), /^HTTP\/1\.1 200 /, "a scrape whose client stopped reading holds the only render slot");
  // As Prometheus does, they say how long they wait, so the one that finds room in line gives up in seconds.
  const headers = { "x-prometheus-scrape-timeout-seconds": "2" };
  const answers = await Promise.all(Array.from({ length: 3 }, () => get(exporter.port, "/metrics", { headers, timeoutMs: 30_000 })));
  t.same(
    answers.map((a) => [a.status, a.retryAfter !== undefined]),
    Array.from({ length: 3 }, () => [503, true]),
    "two refused at once for want of room in line, the one in line at its deadline",
  );
  t.equal(await terminate(exporter.child), 0, `SIGTERM: exit 0 within ${EXIT_DEADLINE_MS} ms, the stalled client still connected`);
});
