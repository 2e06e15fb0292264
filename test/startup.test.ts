/**
 * Start-up loads only what the configuration needs: the compiled CLI, started with plain node, records
 * every module it loads (helpers/record-loads.mjs), and each case names the packages it must and must
 * not have loaded. How long start-up takes is a benchmark's business (bench/startup.ts), not a test's.
 */
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import t from "tap";
import { makeCert } from "../scripts/certgen.js";
import { compileApp } from "./helpers/build.js";
import { FakeApiServer } from "./k8s/apiserver.js";
import { freePort } from "./helpers/net.js";
import { plainNode, start, stop, waitFor } from "./helpers/processes.js";
import { packagesOf } from "./helpers/recorded-run.js";

const app = await compileApp();
t.teardown(() => app.remove());
const RECORDER = fileURLToPath(new URL("./helpers/record-loads.mjs", import.meta.url));
const dir = await mkdtemp(join(tmpdir(), "cee-startup-"));
t.teardown(() => rm(dir, { recursive: true, force: true }));
const cert = join(dir, "one.crt");
await writeFile(cert, (await makeCert({ cn: "one.startup.test", notAfterDays: 90 })).pem);

/** Packages whose cost start-up avoids unless the configuration needs them. */
const OPTIONAL = ["@kubernetes/client-node", "fastify", "node-forge", "p-limit", "yaml"];
/** The configuration schema's: without a configuration file, the defaults and the command line make the configuration (src/config-overrides.ts). */
const SCHEMA = ["zod"];

let runs = 0;
/** The record of a run: the file, and the packages its lines name (by their node_modules folder). */
function recording(): { file: string; packages: () => Promise<Set<string>> } {
  const file = join(dir, `loads-${++runs}.txt`);
  const packages = async () => packagesOf((await readFile(file, "utf8")).split("\n"));
  return { file, packages };
}

function check(args: string[], record: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(...plainNode(["--import", RECORDER, app.cli, "check", ...args]), { env: { ...process.env, RECORD_LOADS: record }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d));
    child.stderr.on("data", (d: Buffer) => (stderr += d));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

t.test("check --file loads neither the Kubernetes client, the HTTP server, the prober, node-forge, yaml, the schema nor prom-client", async (t) => {
  const { file, packages } = recording();
  const result = await check(["--file", cert], file);
  t.equal(result.code, 0, result.stderr);
  t.match(result.stdout, "one.startup.test");
  const loaded = await packages();
  // The record sees packages loaded both ways: imported (pino), and required by CommonJS (pino's pino-std-serializers).
  for (const name of ["commander", "picomatch", "pino", "pino-std-serializers"]) t.ok(loaded.has(name), `${name} is loaded`);
  // A one-off scan has no metrics to serve (Exporter.forScan).
  for (const name of [...OPTIONAL, ...SCHEMA, "prom-client"]) t.notOk(loaded.has(name), `${name} is not loaded`);
  const record = await readFile(file, "utf8");
  for (const module of ["server.js", "web-config.js", "sources/endpoints.js", "config.js", "health.js"]) t.notOk(record.includes(`/dist/${module}`), `${module} is not loaded`);
});

t.test("check with a configuration file and a Kubernetes source loads yaml and the Kubernetes client, still no HTTP server", async (t) => {
  const api = await FakeApiServer.start();
  t.teardown(() => api.close());
  api.putSecret("team-a", "web-tls", { "tls.crt": (await makeCert({ cn: "secret.startup.test", notAfterDays: 90 })).pem }, { type: "kubernetes.io/tls" });
  const config = join(dir, "secrets.yaml");
  await writeFile(config, `sources:\n  files:\n    - paths: ['${cert}']\n  secrets:\n    enabled: true\n`);
  const { file, packages } = recording();
  const result = await check(["-c", config, "--kubeconfig", api.kubeconfigPath()], file);
  t.equal(result.code, 0, result.stderr);
  t.match(result.stdout, "one.startup.test");
  t.match(result.stdout, "secret.startup.test");
  const loaded = await packages();
  for (const name of ["yaml", "@kubernetes/client-node", ...SCHEMA]) t.ok(loaded.has(name), `${name} is loaded`);
  for (const name of ["fastify", "node-forge", "p-limit", "prom-client"]) t.notOk(loaded.has(name), `${name} is not loaded`);
});

t.test("serve with a certificate file and no configuration file loads the HTTP server and prom-client, and nothing a file does not need", async (t) => {
  const port = await freePort();
  const { file, packages } = recording();
  const [command, args] = plainNode(["--import", RECORDER, app.cli, "serve", "--listen-address", "127.0.0.1", "--port", String(port), "--log-level", "warn", "--file", cert]);
  const child = start("exporter", "env", [`RECORD_LOADS=${file}`, command, ...args]);
  t.teardown(() => stop(child));
  await waitFor("exporter", 60_000, async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).ok, child);
  const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  t.match(metrics, 'subject_cn="one.startup.test"');
  await stop(child);
  t.equal(child.process.exitCode, 0, child.output());
  const loaded = await packages();
  for (const name of ["fastify", "prom-client"]) t.ok(loaded.has(name), `${name} is loaded`);
  for (const name of [...OPTIONAL.filter((name) => name !== "fastify"), ...SCHEMA]) t.notOk(loaded.has(name), `${name} is not loaded`);
  // No route takes a schema, so Fastify's schema compilers stay unloaded (server.ts NO_SCHEMA_COMPILERS).
  t.notOk(loaded.has("ajv"), "ajv is not loaded");
  // prom-client's classes come from their own files, not its index and default metrics (src/prom.ts).
  t.notOk(loaded.has("@opentelemetry/api"), "@opentelemetry/api is not loaded");
});
