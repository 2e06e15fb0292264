import { spawn } from "node:child_process";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { makeCert } from "../scripts/certgen.js";
import { compileApp } from "./helpers/build.js";
import { freePort } from "./helpers/net.js";

// The compiled CLI, started with plain node as users start it.
const app = await compileApp();
t.teardown(() => app.remove());
const CLI = app.cli;
// Without tap's coverage hooks, which would make every child dump V8 coverage of all it loaded.
const plainEnv = { ...process.env };
delete plainEnv.NODE_OPTIONS;
delete plainEnv.NODE_V8_COVERAGE;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...plainEnv, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d));
    child.stderr.on("data", (d: Buffer) => (stderr += d));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

async function folderWith(certs: Record<string, number>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "cee-cli-"));
  for (const [name, days] of Object.entries(certs)) {
    await writeFile(join(dir, `${name}.pem`), (await makeCert({ cn: `${name}.test`, notAfterDays: days })).pem);
  }
  return dir;
}

t.test("check exits 0 when nothing is due and prints a table soonest first", async (t) => {
  const dir = await folderWith({ later: 300, sooner: 100 });
  const result = await run(["check", "--file", join(dir, "*.pem")]);
  t.equal(result.code, 0, result.stderr);
  const lines = result.stdout.split("\n");
  t.match(lines[0], /^DAYS LEFT\s+STATE\s+SOURCE\s+LOCATION\s+INDEX\s+SUBJECT CN\s+NOT AFTER$/);
  t.match(lines[1], /^100\.0\s+ok\s+file\s+\S+sooner\.pem\s+0\s+sooner\.test\s+\d{4}-/);
  t.match(lines[2], /^300\.0\s+ok\s+file\s+\S+later\.pem/);
  t.match(result.stdout, "\n2 certificates, 0 expired or expiring within 28 days, 0 not yet valid, 0 errors.\n");
});

t.test("check exits 1 when a certificate expires within --warn-days or has expired", async (t) => {
  const soon = await folderWith({ soon: 5, fine: 200 });
  t.equal((await run(["check", "--file", join(soon, "*.pem")])).code, 1);
  t.equal((await run(["check", "--file", join(soon, "*.pem"), "--warn-days", "4"])).code, 0);
  const expired = await folderWith({ gone: -1 });
  const result = await run(["check", "--file", join(expired, "*.pem"), "--warn-days", "0"]);
  t.equal(result.code, 1);
  t.match(result.stdout, /^-1\.0\s+expired/m);
});

t.test("check --output json gives one object per certificate and per error", async (t) => {
  const dir = await folderWith({ a: 10 });
  await writeFile(join(dir, "broken.pem"), "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n");
  const result = await run(["check", "--file", join(dir, "*.pem"), "--output", "json"]);
  t.equal(result.code, 1, "10 days is within the default 28");
  const items = JSON.parse(result.stdout) as Record<string, unknown>[];
  t.equal(items.length, 2);
  const [cert, error] = items;
  t.match(cert, { type: "certificate", source: "file", namespace: "", name: join(dir, "a.pem"), key: "", index: 0, subjectCN: "a.test", state: "warning" });
  t.match(cert?.notAfter, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  t.match(cert?.notBefore, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  t.ok(Date.parse(cert?.notBefore as string) < Date.now(), "issued a day ago");
  t.ok(Math.abs((cert?.daysLeft as number) - 10) < 0.01);
  t.same(error, { type: "error", source: "file", namespace: "", name: join(dir, "broken.pem"), key: "", reason: "bad_base64" });
});

t.test("a certificate not valid yet has its own state and is due, whatever its days left", async (t) => {
  const dir = await folderWith({ valid: 100 });
  await writeFile(join(dir, "future.pem"), (await makeCert({ cn: "future.test", notBeforeDays: 2, notAfterDays: 200 })).pem);
  const table = await run(["check", "--file", join(dir, "*.pem")]);
  t.equal(table.code, 1, "a certificate that fails today fails the check");
  t.match(table.stdout, /^100\.0\s+ok\s+file\s+\S+valid\.pem/m);
  t.match(table.stdout, /^200\.0\s+not_yet_valid\s+file\s+\S+future\.pem\s+0\s+future\.test/m);
  t.match(table.stdout, "\n2 certificates, 0 expired or expiring within 28 days, 1 not yet valid, 0 errors.\n");
  const json = JSON.parse((await run(["check", "--file", join(dir, "future.pem"), "--output", "json"])).stdout) as Record<string, unknown>[];
  t.match(json, [{ type: "certificate", subjectCN: "future.test", state: "not_yet_valid" }]);
  t.ok(Date.parse(json[0]?.notBefore as string) > Date.now(), "notBefore is ahead");
});

t.test("read errors fail check only with --fail-on-error", async (t) => {
  const dir = await folderWith({ fine: 100 });
  await writeFile(join(dir, "garbage.pem"), "hello");
  const plain = await run(["check", "--file", join(dir, "*.pem")]);
  t.equal(plain.code, 0);
  t.match(plain.stdout, /file\s+\S+garbage\.pem\s+not_pem_or_der/);
  t.match(plain.stdout, "\n1 certificate, 0 expired or expiring within 28 days, 0 not yet valid, 1 error.\n", "counts in the singular");
  t.match((await run(["check", "--file", join(dir, "*.pem"), "--warn-days", "1"])).stdout, "expiring within 1 day,");
  t.equal((await run(["check", "--file", join(dir, "*.pem"), "--fail-on-error"])).code, 1);
});

t.test("configuration and usage errors exit 2 and name what is wrong", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "cee-cli-"));
  const config = join(dir, "config.yaml");
  await writeFile(config, "sources:\n  files:\n    - paths: /etc/ssl/*.pem\n");
  const bad = await run(["check", "--config", config]);
  t.equal(bad.code, 2);
  t.match(bad.stderr, "sources.files[0].paths: expected array");
  const viaEnv = await run(["check"], { CERT_EXPIRY_EXPORTER_CONFIG: config });
  t.equal(viaEnv.code, 2, "the config path can come from the environment");
  t.equal((await run(["check", "--no-such-flag"])).code, 2);
  t.equal((await run(["serve", "--port", "http"])).code, 2);
  t.equal((await run(["check", "--output", "xml"])).code, 2);
  t.equal((await run(["check", "--config", join(dir, "missing.yaml")])).code, 2);
  t.equal((await run(["--version"])).code, 0);
});

t.test("serve listens where the environment says and stops cleanly on SIGTERM", async (t) => {
  const dir = await folderWith({ served: 50 });
  const port = await freePort();
  const child = spawn(process.execPath, [CLI, "--file", join(dir, "*.pem")], {
    env: { ...plainEnv, CERT_EXPIRY_EXPORTER_PORT: String(port), CERT_EXPIRY_EXPORTER_LISTEN_ADDRESS: "127.0.0.1", CERT_EXPIRY_EXPORTER_LOG_LEVEL: "warn" },
    stdio: "ignore",
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
  let body = "";
  for (let attempt = 0; attempt < 100 && !body.includes("served.test"); attempt++) {
    body = await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text(), () => "");
    if (!body.includes("served.test")) await new Promise((resolve) => setTimeout(resolve, 200));
  }
  t.match(body, /cert_expires_in_days\{source="file"[^}]*subject_cn="served.test"/, "serve is the default command");
  child.kill("SIGTERM");
  t.equal(await exited, 0);
});
