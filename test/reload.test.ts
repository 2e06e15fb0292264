/**
 * Configuration reload in the real process (src/cli.ts serve -c <file>): SIGHUP and POST /-/reload
 * apply a valid file, refuse a broken one while the running configuration goes on, and leave the
 * sources whose part of the file did not change alone.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import t from "tap";
import { plainNode } from "./helpers/processes.js";
import { pino } from "pino";
import { stringify as toYaml } from "yaml";
import { makeCert } from "../scripts/certgen.js";
import { Exporter } from "../src/app.js";
import { validateConfig } from "../src/config.js";
import { freePort } from "./helpers/net.js";
import { FakeApiServer } from "./k8s/apiserver.js";

type Tap = Pick<typeof t, "teardown">;

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const WAIT_MS = 30_000;
const SUCCESSFUL = "cert_expiry_exporter_config_last_reload_successful";
const SUCCESS_TIME = "cert_expiry_exporter_config_last_reload_success_timestamp_seconds";

interface ExporterProcess {
  child: ChildProcess;
  base: string;
  /** stderr so far. */
  log(): string;
  write(config: Record<string, unknown>): Promise<void>;
  metrics(): Promise<string>;
  /** Polls until `ready` holds, failing with the exporter's log after WAIT_MS or when it exits. */
  until(what: string, ready: () => Promise<boolean>): Promise<void>;
  reload(): Promise<Response>;
}

async function tempDir(t: Tap): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "cee-reload-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A folder holding one certificate with common name `cn`. */
async function certFolder(parent: string, cn: string): Promise<string> {
  const dir = join(parent, cn);
  await mkdir(dir);
  await writeFile(join(dir, "cert.pem"), (await makeCert({ cn, notAfterDays: 100 })).pem);
  return dir;
}

/** The value of an unlabelled metric in a /metrics body. */
function valueOf(body: string, metric: string): number | undefined {
  const line = body.split("\n").find((l) => l.startsWith(`${metric} `));
  return line === undefined ? undefined : Number(line.slice(metric.length + 1));
}

async function startExporter(t: Tap, config: Record<string, unknown>, flags: string[] = []): Promise<ExporterProcess> {
  const dir = await tempDir(t);
  const file = join(dir, "config.yaml");
  const port = await freePort();
  const write = (next: Record<string, unknown>) => writeFile(file, toYaml({ listen: { address: "127.0.0.1", port }, ...next }));
  await write(config);
  const child = spawn(...plainNode(["--import", "tsx", "src/cli.ts", "serve", "-c", file, ...flags]), { cwd: ROOT, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => (stderr += d));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  t.teardown(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    const killer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(killer);
  });
  const base = `http://127.0.0.1:${port}`;
  const until = async (what: string, ready: () => Promise<boolean>) => {
    const deadline = Date.now() + WAIT_MS;
    while (Date.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`${what}: the exporter exited with ${child.exitCode}:\n${stderr}`);
      if (await ready().catch(() => false)) return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`${what}: not within ${WAIT_MS} ms:\n${stderr}`);
  };
  const exporter: ExporterProcess = {
    child,
    base,
    log: () => stderr,
    write,
    metrics: () => fetch(`${base}/metrics`).then((r) => r.text()),
    until,
    reload: () => fetch(`${base}/-/reload`, { method: "POST" }),
  };
  await until("the exporter answers", async () => (await fetch(`${base}/readyz`)).ok);
  return exporter;
}

/** Waits until /metrics holds (or, with `present` false, no longer holds) `text`. */
const showing = (exporter: ExporterProcess, text: string, present = true) => exporter.until(`/metrics ${present ? "shows" : "drops"} ${text}`, async () => (await exporter.metrics()).includes(text) === present);

t.test("SIGHUP applies a valid file; a broken one is logged and refused, and the running configuration goes on", async (t) => {
  const dir = await tempDir(t);
  const [first, second] = [await certFolder(dir, "first.test"), await certFolder(dir, "second.test")];
  const config = { logLevel: "info", intervals: { files: "1h" }, sources: { files: [{ paths: [join(first, "*.pem")] }] } };
  const exporter = await startExporter(t, config);
  await showing(exporter, 'subject_cn="first.test"');
  const atStart = await exporter.metrics();
  t.equal(valueOf(atStart, SUCCESSFUL), 1, "the start counts as a successful load");
  const startTime = valueOf(atStart, SUCCESS_TIME) as number;
  t.ok(startTime > 0);

  await exporter.write({ ...config, sources: { files: [{ paths: [join(first, "*.pem"), join(second, "*.pem")] }] } });
  exporter.child.kill("SIGHUP");
  await showing(exporter, 'subject_cn="second.test"');
  const reloaded = await exporter.metrics();
  t.equal(valueOf(reloaded, SUCCESSFUL), 1);
  t.ok((valueOf(reloaded, SUCCESS_TIME) as number) > startTime, "the success timestamp moved on");
  t.match(reloaded, 'subject_cn="first.test"');

  await exporter.write({ ...config, logLevel: "verbose" });
  exporter.child.kill("SIGHUP");
  await exporter.until("the failed reload is exported", async () => valueOf(await exporter.metrics(), SUCCESSFUL) === 0);
  const refused = await exporter.metrics();
  t.match(refused, 'subject_cn="second.test"', "the running configuration is still served");
  t.equal(valueOf(refused, SUCCESS_TIME), valueOf(reloaded, SUCCESS_TIME), "no success to record");
  t.equal((await fetch(`${exporter.base}/healthz`)).status, 200, "the process lives on");
  t.match(exporter.log(), /"level":"error"[^\n]*"err":"logLevel: [^\n]*"msg":"configuration reload failed; the running configuration is kept"/);

  await exporter.write({ ...config, sources: { files: [{ paths: [join(second, "*.pem")] }] } });
  exporter.child.kill("SIGHUP");
  await showing(exporter, 'subject_cn="first.test"', false);
  const fixed = await exporter.metrics();
  t.equal(valueOf(fixed, SUCCESSFUL), 1);
  t.match(fixed, 'subject_cn="second.test"', "a rebuilt source drops only what it no longer finds");
  t.notMatch(fixed, /cert_read_errors\{/, "and no error came of the swap");
});

t.test("POST /-/reload needs --web.enable-lifecycle, then reloads as SIGHUP does", async (t) => {
  const dir = await tempDir(t);
  const [first, second] = [await certFolder(dir, "one.test"), await certFolder(dir, "two.test")];
  const config = { intervals: { files: "1h" }, sources: { files: [{ paths: [join(first, "*.pem")] }] } };

  const closed = await startExporter(t, config);
  const refused = await closed.reload();
  t.equal(refused.status, 404, "no lifecycle API without the flag");
  t.equal(valueOf(await closed.metrics(), SUCCESSFUL), 1, "and nothing was reloaded");

  const open = await startExporter(t, config, ["--web.enable-lifecycle"]);
  await showing(open, 'subject_cn="one.test"');
  await open.write({ ...config, sources: { files: [{ paths: [join(second, "*.pem")] }] } });
  const applied = await open.reload();
  t.equal(applied.status, 200);
  t.equal(await applied.text(), "configuration reloaded\n");
  await showing(open, 'subject_cn="two.test"');

  await open.write({ ...config, listn: {} });
  const broken = await open.reload();
  t.equal(broken.status, 500);
  t.equal(await broken.text(), "configuration reload failed: listn: unknown key\n");
  t.equal(valueOf(await open.metrics(), SUCCESSFUL), 0);

  const port = Number(new URL(open.base).port);
  await open.write({ ...config, listen: { address: "127.0.0.1", port: port + 1 } });
  const form = { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: "" };
  const [a, b, c] = await Promise.all([open.reload(), open.reload(), fetch(`${open.base}/-/reload`, form)]);
  t.same([a.status, b.status, c.status], [200, 200, 200], "reloads asked for at once run one after the other; a body is ignored");
  t.equal(await a.text(), "configuration reloaded; a restart is needed for: listen.port\n", "a new listen address waits for a restart");
  t.equal(valueOf(await open.metrics(), SUCCESSFUL), 1, "still served where it was");
});

t.test("the log level applies at once", async (t) => {
  const config = validateConfig({ listen: { address: "127.0.0.1", port: 0 }, logLevel: "info" });
  const exporter = await Exporter.create(config, pino({ level: config.logLevel }, new Writable({ write: (_chunk, _encoding, done) => done() })));
  t.teardown(() => exporter.close());
  await exporter.serve();
  const { updated, restartRequired } = await exporter.reconfigure(validateConfig({ listen: { address: "127.0.0.1", port: 0 }, logLevel: "warn" }));
  t.same([updated, restartRequired], [[], []], "nothing else changed");
  t.equal(exporter.log.level, "warn");
  t.equal(exporter.config.logLevel, "warn");
});

t.test("a reload rebuilds only the sources whose part of the file changed", async (t) => {
  const api = await FakeApiServer.start({ namespaces: ["default", "team-a", "team-b"], bookmarkIntervalMs: 200 });
  t.teardown(() => api.close());
  for (const team of ["team-a", "team-b"]) {
    api.putSecret(team, "web-tls", { "tls.crt": (await makeCert({ cn: `${team}.secret.test`, notAfterDays: 100 })).pem, "tls.key": "k" }, { type: "kubernetes.io/tls" });
  }
  const dir = await tempDir(t);
  const [first, second] = [await certFolder(dir, "file-one.test"), await certFolder(dir, "file-two.test")];
  const kubernetes = { kubeconfig: api.kubeconfigPath(), backoff: { initial: "20ms", max: "200ms" } };
  const config = { intervals: { files: "1h" }, kubernetes, sources: { files: [{ paths: [join(first, "*.pem")] }], secrets: { enabled: true } } };
  const exporter = await startExporter(t, config, ["--web.enable-lifecycle"]);
  for (const cn of ["team-a.secret.test", "team-b.secret.test", "file-one.test"]) await showing(exporter, `subject_cn="${cn}"`);
  const lists = () => api.countRequests({ verb: "list", resource: "secrets" });
  const listsBefore = lists();

  await exporter.write({ ...config, sources: { ...config.sources, files: [{ paths: [join(first, "*.pem"), join(second, "*.pem")] }] } });
  t.equal((await exporter.reload()).status, 200);
  await showing(exporter, 'subject_cn="file-two.test"');
  t.equal(lists(), listsBefore, "the Secrets source, unchanged, did not list again");
  t.match(await exporter.metrics(), 'subject_cn="team-b.secret.test"');

  await exporter.write({ ...config, sources: { ...config.sources, secrets: { enabled: true, namespaces: { include: ["team-a"] } } } });
  t.equal((await exporter.reload()).status, 200);
  await showing(exporter, 'subject_cn="team-b.secret.test"', false);
  t.ok(lists() > listsBefore, "the changed Secrets source listed anew");
  t.equal(api.countRequests({ verb: "list", resource: "secrets", namespace: "team-a" }), 1, "in the one namespace it now reads");
  const body = await exporter.metrics();
  t.match(body, 'subject_cn="team-a.secret.test"');
  t.match(body, 'subject_cn="file-one.test"', "the files source kept its series throughout");
});
