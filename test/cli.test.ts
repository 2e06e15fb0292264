import { spawn } from "node:child_process";
import { mkdtemp, writeFile } from "node:fs/promises";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { makeCert } from "../scripts/certgen.js";
import { compileApp } from "./helpers/build.js";
import { FakeApiServer } from "./k8s/apiserver.js";
import { freePort } from "./helpers/net.js";
import { plainNode } from "./helpers/processes.js";

// The compiled CLI, started with plain node as users start it.
const app = await compileApp();
t.teardown(() => app.remove());
const CLI = app.cli;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(...plainNode([CLI, ...args]), { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
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
  t.match(result.stdout, "\n2 certificates, 0 expired or expiring within 28 days, 0 not yet valid, 0 errors, 0 with a mismatched key or a broken chain.\n");
});

t.test("check exits 1 when a certificate expires within --warn-days or has expired", async (t) => {
  const soon = await folderWith({ soon: 5, fine: 200 });
  const expired = await folderWith({ gone: -1 });
  const [due, notDue, result] = await Promise.all([
    run(["check", "--file", join(soon, "*.pem")]),
    run(["check", "--file", join(soon, "*.pem"), "--warn-days", "4"]),
    run(["check", "--file", join(expired, "*.pem"), "--warn-days", "0"]),
  ]);
  t.equal(due.code, 1);
  t.equal(notDue.code, 0);
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
  const [table, future] = await Promise.all([run(["check", "--file", join(dir, "*.pem")]), run(["check", "--file", join(dir, "future.pem"), "--output", "json"])]);
  t.equal(table.code, 1, "a certificate that fails today fails the check");
  t.match(table.stdout, /^100\.0\s+ok\s+file\s+\S+valid\.pem/m);
  t.match(table.stdout, /^200\.0\s+not_yet_valid\s+file\s+\S+future\.pem\s+0\s+future\.test/m);
  t.match(table.stdout, "\n2 certificates, 0 expired or expiring within 28 days, 1 not yet valid, 0 errors, 0 with a mismatched key or a broken chain.\n");
  const json = JSON.parse(future.stdout) as Record<string, unknown>[];
  t.match(json, [{ type: "certificate", subjectCN: "future.test", state: "not_yet_valid" }]);
  t.ok(Date.parse(json[0]?.notBefore as string) > Date.now(), "notBefore is ahead");
});

t.test("read errors fail check unless --ignore-read-errors; --fail-on-error is still accepted", async (t) => {
  const dir = await folderWith({ fine: 100 });
  await writeFile(join(dir, "garbage.pem"), "hello");
  const files = ["check", "--file", join(dir, "*.pem")];
  const [plain, oneDay, ignoring, failOnError, both] = await Promise.all([
    run(files),
    run([...files, "--warn-days", "1"]),
    run([...files, "--ignore-read-errors"]),
    run([...files, "--fail-on-error"]),
    run([...files, "--fail-on-error", "--ignore-read-errors"]),
  ]);
  t.equal(plain.code, 1, "an unreadable file fails the check");
  t.match(plain.stdout, /file\s+\S+garbage\.pem\s+not_pem_or_der/);
  t.match(plain.stdout, "\n1 certificate, 0 expired or expiring within 28 days, 0 not yet valid, 1 error, 0 with a mismatched key or a broken chain.\n", "counts in the singular");
  t.match(oneDay.stdout, "expiring within 1 day,");
  t.equal(ignoring.code, 0, "the old behaviour, on request");
  t.match(ignoring.stdout, /garbage\.pem\s+not_pem_or_der/, "still listed");
  t.equal(failOnError.code, 1, "the old flag names the default");
  t.equal(both.code, 2);
  t.equal(both.stderr, "cert-expiry-exporter: option '--fail-on-error' cannot be used with option '--ignore-read-errors'\n");
});

t.test("check never passes having read nothing", async (t) => {
  const dir = await folderWith({ fine: 100 });
  const unmatched = [join(dir, "*.crt"), join(dir, "absent", "**", "*.pem"), join(dir, "missing.pem")];
  const files = ["check", "--file", join(dir, "*.pem"), ...unmatched.flatMap((path) => ["--file", path]), "--kubeconfig-file", join(dir, "*.conf")];
  const [none, found, ignoring] = await Promise.all([run(["check"]), run([...files, "--output", "json"]), run([...files, "--ignore-read-errors"])]);
  t.equal(none.code, 2, "no source at all is a usage error");
  t.equal(none.stderr, "cert-expiry-exporter: nothing to check: no source is configured; give --file, --kubeconfig-file or a configuration file with sources\n");
  t.equal(none.stdout, "");
  t.equal(found.code, 1, "a pattern or a literal path that matches nothing is a read error, beside one that matches");
  const errors = (JSON.parse(found.stdout) as { type: string; source: string; name: string; reason: string }[]).filter((item) => item.type === "error");
  const byText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  t.same(errors.map(({ source, name, reason }) => [source, name, reason]), [
    ...[...unmatched].sort(byText).map((name) => ["file", name, "not_found"]),
    ["kubeconfig", join(dir, "*.conf"), "not_found"],
  ]);
  t.equal(ignoring.code, 0, "--ignore-read-errors lets them pass");
});

t.test("usage errors are one line and exit 2: a mistyped command, a config check and serve disagree on", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "cee-cli-"));
  const config = join(dir, "config.yaml");
  await writeFile(config, `logLevel: verbose\nsources:\n  files:\n    - paths: ["${join(dir, "*.pem")}"]\n`);
  const [typo, extra, checked, served, overridden] = await Promise.all([
    run(["chek", "--file", "/x"]),
    run(["serve", "extra"]),
    run(["check", "-c", config]),
    run(["serve", "-c", config]),
    run(["check", "-c", config, "--log-level", "warn"]),
  ]);
  t.equal(typo.code, 2);
  t.equal(typo.stderr, "cert-expiry-exporter: unknown command 'chek' (did you mean check?)\n");
  t.equal(extra.code, 2);
  t.equal(checked.code, 2, "check validates the file as serve does");
  t.match(checked.stderr, /^cert-expiry-exporter: logLevel: [^\n]*\n$/);
  t.equal(served.code, 2);
  t.equal(overridden.code, 1, "a flag still overrides the file (and the pattern matches nothing)");
});

t.test("check --help lists only what check uses; serve --help has the listen and lifecycle flags", async (t) => {
  const [check, serve] = await Promise.all([run(["check", "--help"]), run(["serve", "--help"])]);
  t.equal(check.code, 0);
  for (const flag of ["--port", "--listen-address", "--web.listen-address", "--web.enable-lifecycle", "--fail-on-error"]) t.notMatch(check.stdout, flag);
  for (const flag of ["--ignore-read-errors", "--warn-days", "--log-format", "--file"]) t.match(check.stdout, flag);
  for (const flag of ["--web.listen-address", "--listen-address", "--port", "--web.enable-lifecycle", "--log-format"]) t.match(serve.stdout, flag);
  t.notMatch(serve.stdout, "--warn-days");
});

/**
 * Kubernetes sets `<SERVICE>_SERVICE_HOST`, `<SERVICE>_SERVICE_PORT`, `<SERVICE>_SERVICE_PORT_<NAME>`,
 * `<SERVICE>_PORT` and `<SERVICE>_PORT_<n>_<PROTO>[_PROTO|_PORT|_ADDR]` for every Service in the
 * namespace; a variable of ours that could be one of them is set by whoever names a Service so.
 */
const SERVICE_LINK = /_SERVICE_HOST$|_SERVICE_PORT($|_)|_PORT$|_PORT_\d+_/;

t.test("no environment variable of ours can be a Kubernetes service link", async (t) => {
  const { LEGACY_PORT_VARIABLE, buildProgram } = await import("../src/commands.js");
  const names = buildProgram().commands.flatMap((command) => command.options.flatMap((option) => (option.envVar ? [option.envVar] : [])));
  t.ok(names.length >= 5, `found ${names.join(", ")}`);
  for (const name of new Set(names)) t.notMatch(name, SERVICE_LINK, name);
  for (const name of new Set(names)) t.match(name, /^(CERT_EXPIRY_EXPORTER_|KUBECONFIG$)/, name);
  t.match(LEGACY_PORT_VARIABLE, SERVICE_LINK, "the rule catches the old name, which is read only when it is a plain number");
});

t.test("where serve listens: flags over variables, --port over half of --web.listen-address, a service link ignored with one warning", async (t) => {
  const dir = await folderWith({ served: 50 });
  const [port, busyPort] = [await freePort(), await freePort()];
  const child = spawn(...plainNode([CLI, "--file", join(dir, "*.pem"), "--log-level", "warn", "--web.listen-address", `127.0.0.1:${busyPort}`, "--port", String(port)]), {
    env: { ...process.env, CERT_EXPIRY_EXPORTER_PORT: "tcp://10.96.0.12:9798", CERT_EXPIRY_EXPORTER_WEB_LISTEN_ADDRESS: "192.0.2.1:1" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
  t.ok(await served(port, "served.test"), stderr);
  child.kill("SIGTERM");
  t.equal(await exited, 0);
  const lines = stderr.trim().split("\n").map((line) => JSON.parse(line) as Record<string, unknown>);
  t.same(lines.map((line) => [line.level, line.variable, line.value]), [["warn", "CERT_EXPIRY_EXPORTER_PORT", "tcp://10.96.0.12:9798"]]);

  const { parseListenAddress } = await import("../src/listen-address.js");
  t.same(parseListenAddress(":9798"), { address: "0.0.0.0", port: 9798 }, ":port is every interface");
  t.same(parseListenAddress("[::1]:9798"), { address: "::1", port: 9798 });
  t.same(parseListenAddress("exporter.local:80"), { address: "exporter.local", port: 80 });
  for (const bad of ["9798", "host:", "::1:9798", "a b:1", "host:123456"]) t.equal(parseListenAddress(bad), null, bad);
});

t.test("a port in use, a missing kubeconfig, an unreachable or refusing API server: one line each, never a stack", async (t) => {
  const dir = await folderWith({ fine: 100 });
  const busy = createServer();
  await new Promise<void>((resolve) => busy.listen(0, "127.0.0.1", resolve));
  t.teardown(() => new Promise<void>((resolve) => busy.close(() => resolve())));
  const busyPort = (busy.address() as AddressInfo).port;
  const config = join(dir, "secrets.yaml");
  await writeFile(config, "sources:\n  secrets:\n    enabled: true\nkubernetes:\n  backoff: { initial: 10ms, max: 100ms }\n");
  const [refusing, gone] = [await FakeApiServer.start(), await FakeApiServer.start()];
  t.teardown(() => Promise.all([refusing.close(), gone.close()]));
  refusing.forbid({ resource: "secrets" });
  await gone.stop();
  const [inUse, noKubeconfig, refused, unreachable] = await Promise.all([
    run(["serve", "--web.listen-address", `127.0.0.1:${busyPort}`, "--file", join(dir, "*.pem")]),
    run(["check", "-c", config, "--kubeconfig", join(dir, "missing-kubeconfig")]),
    run(["check", "-c", config, "--kubeconfig", refusing.kubeconfigPath(), "--file", join(dir, "*.pem")]),
    run(["check", "-c", config, "--kubeconfig", gone.kubeconfigPath()]),
  ]);
  t.equal(inUse.code, 2);
  t.equal(inUse.stderr, `cert-expiry-exporter: cannot listen on 127.0.0.1:${busyPort}: the address is already in use\n`);
  t.equal(noKubeconfig.code, 2);
  t.match(noKubeconfig.stderr, /^cert-expiry-exporter: cannot load the Kubernetes client configuration from \S+missing-kubeconfig: [^\n]*no such file[^\n]*\n$/);
  t.equal(refused.code, 3, "refused everywhere: the source could not be scanned at all, whatever else was read");
  t.match(refused.stderr, /^cert-expiry-exporter: the secret source could not be scanned: every request was refused: missing permission: cannot list secrets at the cluster scope[^\n]*\n$/);
  t.match(refused.stdout, /fine\.test/, "the report still shows what could be read");
  t.equal(unreachable.code, 3);
  t.match(unreachable.stderr, /^cert-expiry-exporter: the secret source could not be scanned: [^\n]*ECONNREFUSED[^\n]*\n$/);
});

t.test("configuration and usage errors exit 2 and name what is wrong", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "cee-cli-"));
  const config = join(dir, "config.yaml");
  await writeFile(config, "sources:\n  files:\n    - paths: /etc/ssl/*.pem\n");
  const [bad, viaEnv, ...others] = await Promise.all([
    run(["check", "--config", config]),
    run(["check"], { CERT_EXPIRY_EXPORTER_CONFIG: config }),
    run(["check", "--no-such-flag"]),
    run(["serve", "--port", "http"]),
    run(["check", "--output", "xml"]),
    run(["check", "--config", join(dir, "missing.yaml")]),
    run(["--version"]),
  ]);
  t.equal(bad.code, 2);
  t.equal(bad.stderr, "cert-expiry-exporter: sources.files[0].paths: expected array\n");
  t.equal(viaEnv.code, 2, "the config path can come from the environment");
  t.same(
    others.map((result) => result.code),
    [2, 2, 2, 2, 0],
  );
});

/** Polls /metrics (at most 20 s) until it holds `subjectCN`. */
async function served(port: number, subjectCN: string): Promise<boolean> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const body = await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text(), () => "");
    if (body.includes(subjectCN)) return true;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return false;
}

t.test("serve listens where the environment says and stops cleanly on SIGTERM", async (t) => {
  const dir = await folderWith({ served: 50 });
  const port = await freePort();
  const child = spawn(...plainNode([CLI, "--file", join(dir, "*.pem")]), {
    env: { ...process.env, CERT_EXPIRY_EXPORTER_PORT: String(port), CERT_EXPIRY_EXPORTER_LISTEN_ADDRESS: "127.0.0.1", CERT_EXPIRY_EXPORTER_LOG_LEVEL: "warn" },
    stdio: "ignore",
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
  let body = "";
  for (let attempt = 0; attempt < 100 && !body.includes("served.test"); attempt++) {
    body = await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text(), () => "");
    if (!body.includes("served.test")) await new Promise((resolve) => setTimeout(resolve, 200));
  }
  t.match(body, /cert_not_after_timestamp_seconds\{source="file"[^}]*subject_cn="served.test"/, "serve is the default command");
  child.kill("SIGTERM");
  t.equal(await exited, 0);
});
