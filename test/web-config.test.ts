/**
 * `--web.config.file`: the exporter-toolkit web configuration, driven with real clients.
 *
 * The exporter runs as the real CLI (`src/cli.ts serve --web.config.file …`) where the flag, start-up
 * checks, rotation without restart or Prometheus are the point, and in-process through buildServer
 * for the finer TLS policies. Clients are real: curl, openssl s_client and Prometheus itself.
 * Certificates are made here, at test time. The serving certificate lives in a folder laid out as
 * kubelet lays out a Secret volume (`tls.crt -> ..data/tls.crt`, `..data -> ..<version>`), and is
 * renewed as kubelet does it: a new version folder, then `..data` swapped in one rename.
 */
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readFile, rename, rm, symlink, writeFile } from "node:fs/promises";
import { request as httpsRequest } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import bcrypt from "bcryptjs";
import t, { type Test } from "tap";
import YAML from "yaml";
import { makeCert, makeChain, privateKeyPem, type Issued } from "../scripts/certgen.js";
import { BasicAuth } from "../src/basic-auth.js";
import { parseCertificates } from "../src/certs/parse.js";
import { ConfigError, validateConfig } from "../src/config.js";
import { Health } from "../src/health.js";
import { Inventory } from "../src/inventory.js";
import { createLogger } from "../src/log.js";
import { buildServer } from "../src/server.js";
import { loadWebConfig } from "../src/web-config.js";
import { ROOT } from "./helpers/build.js";
import { freePort } from "./helpers/net.js";
import { getJson, missing, plainNode, PROMETHEUS, start, startPrometheus, stop, waitFor, type Started } from "./helpers/processes.js";
import { record } from "./helpers/records.js";

const CLI = join(ROOT, "src", "cli.ts");
/** Every wait below has this deadline: met in well under a second normally, in seconds on a loaded machine. */
const DEADLINE_MS = 60_000;
const PASSWORD = "correct horse battery staple";
/** The exporter-toolkit's own example: htpasswd's `$2y$` hash of "fakepassword". */
const TOOLKIT_HASH = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";

const dir = await mkdtemp(join(tmpdir(), "cee-web-config-"));
t.teardown(() => rm(dir, { recursive: true, force: true }));

const serving = await makeChain("localhost");
const clientCa = await makeCert({ cn: "Scraper Client CA", ca: true, notAfterDays: 3650 });
const client = await makeCert({ cn: "prometheus", issuer: clientCa, sans: ["DNS:prometheus.monitoring.svc"] });
const otherClient = await makeCert({ cn: "someone-else", issuer: clientCa, sans: ["DNS:someone-else.test"] });
const strangerCa = await makeCert({ cn: "Stranger CA", ca: true, key: "ec-p384" });
const stranger = await makeCert({ cn: "prometheus", issuer: strangerCa, sans: ["DNS:prometheus.monitoring.svc"], key: "ec-p384" });
const passwordHash = bcrypt.hashSync(PASSWORD, 10);

/** Writes `content` under the test folder and returns its path. */
async function file(name: string, content: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, content);
  return path;
}

const rootCaFile = await file("root-ca.pem", serving.root.pem);
const chainPem = serving.leaf.pem + serving.intermediate.pem;
const chainFile = await file("serving.crt", chainPem);
const keyFile = await file("serving.key", await privateKeyPem(serving.leaf));
const clientCaFile = await file("client-ca.pem", clientCa.pem);
const clientFiles = { cert: await file("client.crt", client.pem), key: await file("client.key", await privateKeyPem(client)) };
const otherClientFiles = { cert: await file("other-client.crt", otherClient.pem), key: await file("other-client.key", await privateKeyPem(otherClient)) };
const strangerFiles = { cert: await file("stranger.crt", stranger.pem), key: await file("stranger.key", await privateKeyPem(stranger)) };

const serialOf = (issued: Issued): string => (parseCertificates(issued.der)[0] as { serial: string }).serial;

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command with stdin closed, to its end or until `timeoutMs`, when it is killed. */
function run(command: string, args: string[], timeoutMs = 30_000): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("error", reject);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

interface CurlResult {
  /** curl's exit code: 0 once an HTTP answer came, whatever its status. */
  code: number | null;
  /** 0 when no HTTP answer came. */
  status: number;
  headers: string;
  body: string;
}

/** curl against the exporter on 127.0.0.1, verifying it with the test root CA. */
async function curl(port: number, path: string, args: string[] = []): Promise<CurlResult> {
  const headers = join(dir, `headers-${port}-${Math.random().toString(36).slice(2)}`);
  const ran = await run("curl", ["-sS", "--max-time", "20", "--cacert", rootCaFile, "-D", headers, "-o", "-", "-w", "\n%{http_code}", ...args, `https://127.0.0.1:${port}${path}`]);
  const cut = ran.stdout.lastIndexOf("\n");
  const written = await readFile(headers, "utf8").catch(() => "");
  return { code: ran.code, status: Number(ran.stdout.slice(cut + 1)), headers: written.toLowerCase(), body: ran.stdout.slice(0, cut) };
}

/** The leaf certificate openssl s_client is served, or the reason its handshake failed. */
async function sClient(port: number, args: string[] = []): Promise<{ ok: boolean; serial?: string; output: string }> {
  const ran = await run("openssl", ["s_client", "-connect", `127.0.0.1:${port}`, "-servername", "localhost", "-CAfile", rootCaFile, "-verify_return_error", ...args]);
  const output = ran.stdout + ran.stderr;
  if (ran.code !== 0) return { ok: false, output };
  return { ok: true, serial: parseCertificates(Buffer.from(ran.stdout))[0]?.serial, output };
}

/** A GET over HTTPS with Node, trusting the test root CA. */
function get(port: number, path: string, options: { auth?: string; headers?: Record<string, string> } = {}): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const request = httpsRequest({ host: "127.0.0.1", port, path, ca: serving.root.pem, servername: "localhost", agent: false, timeout: 20_000, ...options }, (response) => {
      let body = "";
      response.on("data", (chunk: Buffer) => (body += chunk.toString()));
      response.on("end", () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body }));
      response.on("error", reject);
    });
    request.on("timeout", () => request.destroy(new Error("no answer within 20 s")));
    request.on("error", reject);
    request.end();
  });
}

/** A web config file with the serving chain and key above, plus `extra`. */
async function webConfig(name: string, tls: Record<string, unknown>, extra: Record<string, unknown> = {}): Promise<string> {
  return file(name, YAML.stringify({ tls_server_config: { cert_file: chainFile, key_file: keyFile, ...tls }, ...extra }));
}

/** buildServer in this process with the web config `path`, listening on a free loopback port. */
async function inProcess(t: Test, path: string): Promise<number> {
  const inventory = new Inventory();
  inventory.replace({ source: "file", namespace: "", name: "/in-process.pem", key: "" }, { certificates: [record({ subjectCN: "in-process.test" })] });
  const server = buildServer({ inventory, health: new Health(inventory), log: createLogger("silent"), http: validateConfig({}).http, web: loadWebConfig(path) });
  await server.listen({ host: "127.0.0.1", port: 0 });
  t.teardown(() => {
    server.server.closeAllConnections();
    return server.close();
  });
  return (server.server.address() as AddressInfo).port;
}

/** The CLI serving with `args`, once /healthz answers over TLS. */
async function cli(t: Test, name: string, args: string[]): Promise<{ port: number; exporter: Started }> {
  const port = await freePort();
  const exporter = start(name, ...plainNode(["--import", "tsx", CLI, "serve", "--web.listen-address", `127.0.0.1:${port}`, ...args]), ROOT);
  t.teardown(() => stop(exporter));
  await waitFor(`${name} /healthz over TLS`, DEADLINE_MS, async () => (await get(port, "/healthz")).status === 200, exporter);
  return { port, exporter };
}

/** Lays out a Secret volume version the way kubelet does, and points `..data` at it in one rename. */
async function secretVolume(volume: string, version: string, files: Record<string, string>): Promise<void> {
  await mkdir(join(volume, version), { recursive: true });
  for (const [name, content] of Object.entries(files)) await writeFile(join(volume, version, name), content);
  await symlink(version, join(volume, "..data_tmp"));
  await rename(join(volume, "..data_tmp"), join(volume, "..data"));
}

t.test("the real exporter: TLS, basic auth, open probes, its own certificate exported, renewal without restart, Prometheus scraping", async (t) => {
  const volume = join(dir, "volume");
  await secretVolume(volume, "..v1", { "tls.crt": chainPem, "tls.key": await privateKeyPem(serving.leaf) });
  for (const name of ["tls.crt", "tls.key"]) await symlink(join("..data", name), join(volume, name));
  const servingCertPath = join(volume, "tls.crt");
  const web = await file(
    "web-main.yml",
    YAML.stringify({
      // Relative to the web config file, as in the exporter-toolkit.
      tls_server_config: { cert_file: "volume/tls.crt", key_file: "volume/tls.key" },
      basic_auth_users: { prometheus: passwordHash, legacy: TOOLKIT_HASH },
      http_server_config: { headers: { "X-Frame-Options": "deny" } },
    }),
  );
  const config = await file("config-main.yml", YAML.stringify({ intervals: { files: "1s" } }));
  const { port, exporter } = await cli(t, "exporter", ["--config", config, "--web.config.file", web]);
  const pid = exporter.process.pid;

  t.test("TLS is served with the configured chain, verified by openssl", async (t) => {
    const served = await sClient(port);
    t.ok(served.ok, "the handshake completes", { output: served.output });
    t.equal(served.serial, serialOf(serving.leaf));
    t.match(served.output, /Verification: OK|Verify return code: 0 \(ok\)/);
  });

  t.test("/healthz and /readyz answer without credentials; everything else asks for them", async (t) => {
    t.equal((await curl(port, "/healthz")).status, 200);
    await waitFor("/readyz", DEADLINE_MS, async () => (await curl(port, "/readyz")).status === 200, exporter);
    for (const path of ["/metrics", "/", "/nope"]) {
      const refused = await curl(port, path);
      t.equal(refused.status, 401, `${path} without credentials`);
      t.match(refused.headers, /www-authenticate: basic realm="cert-expiry-exporter"/);
      t.notMatch(refused.body, "cert_not_after", "nothing of the answer leaks");
    }
    t.equal((await curl(port, "/metrics", ["-u", "prometheus:wrong"])).status, 401, "a wrong password");
    t.equal((await curl(port, "/metrics", ["-u", `nobody:${PASSWORD}`])).status, 401, "an unknown user");
    t.equal((await curl(port, "/metrics", ["-H", "Authorization: Bearer abc"])).status, 401, "another scheme");
    const ok = await curl(port, "/metrics", ["-u", `prometheus:${PASSWORD}`]);
    t.equal(ok.status, 200);
    t.match(ok.headers, "x-frame-options: deny", "the web config's headers are on the answer");
    t.equal((await curl(port, "/metrics", ["-u", `prometheus:${PASSWORD}`])).status, 200, "again, from the cache");
    t.equal((await curl(port, "/", ["-u", "legacy:fakepassword"])).status, 200, "an htpasswd $2y$ hash works unchanged");
    t.notMatch(exporter.output(), PASSWORD, "no password is ever logged");
    t.notMatch(exporter.output(), passwordHash, "nor a hash");
  });

  t.test("the serving certificate is exported like any other", async (t) => {
    await waitFor("the serving certificate on /metrics", DEADLINE_MS, async () => (await curl(port, "/metrics", ["-u", `prometheus:${PASSWORD}`])).body.includes(servingCertPath), exporter);
    const body = (await curl(port, "/metrics", ["-u", `prometheus:${PASSWORD}`])).body;
    t.match(body, new RegExp(`cert_not_after_timestamp_seconds\\{source="file",namespace="",name="${servingCertPath}",key="",index="0",subject_cn="localhost",[^}]*serial="${serialOf(serving.leaf)}"`));
    t.match(body, new RegExp(`cert_not_after_timestamp_seconds\\{[^}]*name="${servingCertPath}",key="",index="1",subject_cn="Test Intermediate CA"`), "with its chain");
  });

  t.test("Prometheus scrapes it over TLS with basic auth", async (t) => {
    if (missing(PROMETHEUS)) {
      t.fail(`${PROMETHEUS} is not installed: apt-get install prometheus (CI installs it); this test never skips`);
      return;
    }
    const prometheusPort = await freePort();
    const prometheusConfig = await file(
      "prometheus.yml",
      YAML.stringify({
        global: { scrape_interval: "2s", scrape_timeout: "2s" },
        scrape_configs: [
          {
            job_name: "cert-expiry-exporter",
            scheme: "https",
            basic_auth: { username: "prometheus", password: PASSWORD },
            tls_config: { ca_file: rootCaFile, server_name: "localhost" },
            static_configs: [{ targets: [`127.0.0.1:${port}`] }],
          },
        ],
      }),
    );
    const prometheus = startPrometheus(prometheusConfig, join(dir, "prometheus"), prometheusPort);
    t.teardown(() => stop(prometheus));
    const api = `http://127.0.0.1:${prometheusPort}/api/v1`;
    const query = async (expr: string) => (await getJson<{ data?: { result: unknown[] } }>(`${api}/query?query=${encodeURIComponent(expr)}`)).data?.result ?? [];
    await waitFor("up == 1 for the exporter in Prometheus", DEADLINE_MS, async () => (await query('up{job="cert-expiry-exporter"} == 1')).length > 0, prometheus);
    const series = await query(`cert_not_after_timestamp_seconds{name="${servingCertPath}",index="0"}`);
    t.equal(series.length, 1, "Prometheus holds the serving certificate's expiry");
    const targets = await getJson<{ data: { activeTargets: { health: string; lastError: string; scrapeUrl: string }[] } }>(`${api}/targets`);
    t.match(targets.data.activeTargets, [{ health: "up", lastError: "", scrapeUrl: `https://127.0.0.1:${port}/metrics` }]);
  });

  t.test("a renewed certificate is served without a restart; a broken renewal keeps the one in use", async (t) => {
    const renewed = await makeCert({ cn: "localhost", issuer: serving.intermediate, sans: ["localhost", "IP:127.0.0.1"], key: "ec-p384" });
    await secretVolume(volume, "..v2", { "tls.crt": renewed.pem + serving.intermediate.pem, "tls.key": await privateKeyPem(renewed) });
    await waitFor("the renewed certificate served", DEADLINE_MS, async () => (await sClient(port)).serial === serialOf(renewed), exporter);
    t.pass("openssl is served the renewed certificate");
    t.match(exporter.output(), `"serial":"${serialOf(renewed)}","notAfter"`, "and the reload is logged");
    await waitFor("the renewed certificate exported", DEADLINE_MS, async () => (await curl(port, "/metrics", ["-u", `prometheus:${PASSWORD}`])).body.includes(`serial="${serialOf(renewed)}"`), exporter);

    // A certificate whose key is not the one beside it.
    const mismatched = await makeCert({ cn: "localhost", issuer: serving.intermediate, sans: ["localhost", "IP:127.0.0.1"], key: "rsa-2048" });
    await secretVolume(volume, "..v3", { "tls.crt": mismatched.pem, "tls.key": await privateKeyPem(renewed) });
    await waitFor("the broken renewal noticed", DEADLINE_MS, async () => exporter.output().includes("still serving the previous one"), exporter);
    const served = await sClient(port);
    t.equal(served.serial, serialOf(renewed), "the previous certificate is still served");
    t.equal((await curl(port, "/metrics", ["-u", `prometheus:${PASSWORD}`])).status, 200, "and requests are answered");
    t.equal(exporter.output().split("still serving the previous one").length - 1, 1, "logged once");
    t.equal(exporter.process.pid, pid, "the same process throughout");
    t.equal(exporter.process.exitCode, null);
  });
});

t.test("the real exporter with RequireAndVerifyClientCert: refuses clients without a certificate from the client CA", async (t) => {
  const web = await webConfig("web-mtls.yml", { client_auth_type: "RequireAndVerifyClientCert", client_ca_file: clientCaFile });
  const port = await freePort();
  const exporter = start("exporter-mtls", ...plainNode(["--import", "tsx", CLI, "serve", "--web.listen-address", `127.0.0.1:${port}`, "--web.config.file", web]), ROOT);
  t.teardown(() => stop(exporter));
  const withClient = ["--cert", clientFiles.cert, "--key", clientFiles.key];
  await waitFor("exporter /healthz with a client certificate", DEADLINE_MS, async () => (await curl(port, "/healthz", withClient)).status === 200, exporter);
  const bare = await curl(port, "/metrics");
  t.equal(bare.status, 0, "no certificate: no HTTP answer at all");
  t.not(bare.code, 0);
  const foreign = await curl(port, "/metrics", ["--cert", strangerFiles.cert, "--key", strangerFiles.key]);
  t.equal(foreign.status, 0, "a certificate from another CA: no HTTP answer");
  const accepted = await curl(port, "/metrics", withClient);
  t.equal(accepted.status, 200, "a certificate from the client CA");
  t.match(accepted.body, "cert_not_after_timestamp_seconds");
  t.notOk(await sClient(port, ["-tls1_2"]).then((served) => served.ok), "openssl without a certificate fails the handshake");
});

t.test("in-process policies, with openssl and curl", async (t) => {
  t.test("min_version TLS13 refuses a client that speaks TLS 1.2 at most", async (t) => {
    const port = await inProcess(t, await webConfig("web-tls13.yml", { min_version: "TLS13" }));
    const old = await sClient(port, ["-tls1_2"]);
    t.notOk(old.ok, "TLS 1.2 refused");
    t.match(old.output, /protocol version|unsupported protocol|no protocols available/i);
    const current = await sClient(port, ["-tls1_3"]);
    t.ok(current.ok, "TLS 1.3 accepted", { output: current.output });
    t.match(current.output, "TLSv1.3");
  });

  t.test("max_version, cipher_suites and curve_preferences are applied as Go names them", async (t) => {
    const port = await inProcess(
      t,
      await webConfig("web-ciphers.yml", { max_version: "TLS12", cipher_suites: ["TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"], curve_preferences: ["CurveP384"] }),
    );
    const chosen = await sClient(port, ["-tls1_2"]);
    t.ok(chosen.ok, "TLS 1.2 with the listed suite", { output: chosen.output });
    t.match(chosen.output, "ECDHE-ECDSA-AES256-GCM-SHA384");
    t.notOk((await sClient(port, ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"])).ok, "a suite not listed is refused");
    t.notOk((await sClient(port, ["-tls1_2", "-curves", "prime256v1"])).ok, "a curve not listed is refused");
    t.notOk((await sClient(port, ["-tls1_3"])).ok, "TLS 1.3 is above max_version");
  });

  t.test("VerifyClientCertIfGiven: no certificate is let in, a certificate must verify", async (t) => {
    const port = await inProcess(t, await webConfig("web-verify-if-given.yml", { client_auth_type: "VerifyClientCertIfGiven", client_ca_file: clientCaFile }));
    t.equal((await curl(port, "/metrics")).status, 200, "no certificate");
    t.equal((await curl(port, "/metrics", ["--cert", clientFiles.cert, "--key", clientFiles.key])).status, 200, "one from the client CA");
    t.equal((await curl(port, "/metrics", ["--cert", strangerFiles.cert, "--key", strangerFiles.key])).status, 0, "one from another CA");
  });

  t.test("RequireAnyClientCert: any certificate, but one", async (t) => {
    const port = await inProcess(t, await webConfig("web-require-any.yml", { client_auth_type: "RequireAnyClientCert" }));
    t.equal((await curl(port, "/metrics")).status, 0, "no certificate");
    t.equal((await curl(port, "/metrics", ["--cert", strangerFiles.cert, "--key", strangerFiles.key])).status, 200, "an unverified one");
  });

  t.test("client_allowed_sans: the client certificate must carry one of them", async (t) => {
    const port = await inProcess(
      t,
      await webConfig("web-sans.yml", { client_auth_type: "RequireAndVerifyClientCert", client_ca_file: clientCaFile, client_allowed_sans: ["prometheus.monitoring.svc"] }),
    );
    t.equal((await curl(port, "/metrics", ["--cert", clientFiles.cert, "--key", clientFiles.key])).status, 200, "an allowed SAN");
    t.equal((await curl(port, "/metrics", ["--cert", otherClientFiles.cert, "--key", otherClientFiles.key])).status, 0, "same CA, another SAN");
  });

  t.test("rate_limit: a token bucket over everything but the probes", async (t) => {
    const port = await inProcess(t, await webConfig("web-rate.yml", {}, { rate_limit: { interval: "1h", burst: 2 } }));
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await get(port, "/metrics")).status);
    t.same(statuses, [200, 200, 429]);
    t.equal((await get(port, "/healthz")).status, 200, "probes are never limited");
  });

  t.test("a file without tls_server_config serves plain HTTP, with basic auth", async (t) => {
    const port = await inProcess(t, await file("web-plain.yml", YAML.stringify({ basic_auth_users: { prometheus: passwordHash } })));
    const base = `http://127.0.0.1:${port}`;
    t.equal((await fetch(`${base}/metrics`)).status, 401);
    const auth = `Basic ${Buffer.from(`prometheus:${PASSWORD}`).toString("base64")}`;
    t.equal((await fetch(`${base}/metrics`, { headers: { authorization: auth } })).status, 200);
    t.equal((await fetch(`${base}/healthz`)).status, 200);
  });
});

t.test("BasicAuth remembers a success, never a failure", async (t) => {
  const users = new Map([["prometheus", bcrypt.hashSync(PASSWORD, 4)]]);
  const auth = new BasicAuth(users);
  t.teardown(() => auth.close());
  const header = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
  t.equal(await auth.verify(header("prometheus", PASSWORD)), true);
  // Were bcrypt asked again, this hash (of another password) would refuse it.
  users.set("prometheus", bcrypt.hashSync("another password", 4));
  t.equal(await auth.verify(header("prometheus", PASSWORD)), true, "the success was remembered");
  t.equal(await auth.verify(header("prometheus", "guess")), false);
  users.set("prometheus", bcrypt.hashSync("guess", 4));
  t.equal(await auth.verify(header("prometheus", "guess")), true, "the failure was not: bcrypt ran again");
  for (const bad of [undefined, "", "Basic", "Basic !!!", `Basic ${Buffer.from("no-colon").toString("base64")}`, header("stranger", PASSWORD)]) {
    t.equal(await auth.verify(bad), false, JSON.stringify(bad));
  }
  t.equal(await auth.verify(`basic   ${Buffer.from(`prometheus:guess`).toString("base64")}`), true, "the scheme is case-insensitive");
});

t.test("loadWebConfig: good files as the exporter-toolkit writes them", async (t) => {
  const empty = loadWebConfig(await file("web-empty.yml", ""));
  t.same({ tls: empty.tls, users: empty.users.size, headers: empty.headers, rateLimit: empty.rateLimit }, { tls: undefined, users: 0, headers: {}, rateLimit: undefined });
  const full = loadWebConfig(
    await webConfig(
      "web-full.yml",
      {
        client_auth_type: "RequireClientCert",
        min_version: "TLS12",
        max_version: "TLS13",
        cipher_suites: ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256"],
        prefer_server_cipher_suites: false,
        curve_preferences: ["X25519", "CurveP256"],
      },
      { http_server_config: { http2: false, headers: { "Strict-Transport-Security": "max-age=31536000", "X-XSS-Protection": "" } }, rate_limit: { interval: 0, burst: 0 } },
    ),
  );
  t.match(full.tls, {
    certFile: chainFile,
    clientAuth: "RequireAnyClientCert",
    minVersion: "TLSv1.2",
    maxVersion: "TLSv1.3",
    ciphers: "ECDHE-RSA-AES128-GCM-SHA256:TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256",
    ecdhCurve: "X25519:P-256",
    honorCipherOrder: false,
  });
  t.same(full.headers, { "Strict-Transport-Security": "max-age=31536000" }, "a blank header is unset");
  t.equal(full.rateLimit, undefined, "interval 0 turns the limiter off");
  const inline = loadWebConfig(await file("web-inline.yml", YAML.stringify({ tls_server_config: { cert: chainPem, key: await privateKeyPem(serving.leaf) }, rate_limit: { interval: "1m30s", burst: 5 } })));
  t.match(inline.tls, { cert: chainPem, certFile: undefined });
  t.same(inline.rateLimit, { intervalMs: 90_000, burst: 5 });
});

t.test("loadWebConfig: a bad file is a ConfigError naming the key, never a secret", async (t) => {
  const key = await privateKeyPem(serving.leaf);
  const cases: [string, unknown, RegExp][] = [
    ["unknown key", { tls_server_config: { cert_filse: chainFile } }, /tls_server_config\.cert_filse: unknown key/],
    ["unknown top-level key", { basic_auth_user: {} }, /basic_auth_user: unknown key/],
    ["missing key file", { tls_server_config: { cert_file: chainFile, key_file: join(dir, "absent.key") } }, /tls_server_config\.key_file: .*absent\.key: no such file/],
    ["no key at all", { tls_server_config: { cert_file: chainFile } }, /missing one of key or key_file/],
    ["a key that is not the certificate's", { tls_server_config: { cert_file: chainFile, key: await privateKeyPem(await makeCert({ key: "ec-p384" })) } }, /the key is not the private key of the cert_file certificate/],
    ["a key of another type than the certificate's", { tls_server_config: { cert_file: await file("rsa.crt", (await makeCert({ key: "rsa-2048" })).pem), key_file: keyFile } }, /the key_file is not the private key of the cert_file certificate/],
    ["a certificate file holding no certificate", { tls_server_config: { cert_file: keyFile, key_file: keyFile } }, /tls_server_config\.cert_file: /],
    ["bad hash", { basic_auth_users: { alice: "plain-text-password" } }, /^[^\n]*basic_auth_users\.alice: not a bcrypt hash$/],
    ["unknown client auth type", { tls_server_config: { cert_file: chainFile, key_file: keyFile, client_auth_type: "Sometimes" } }, /client_auth_type/],
    ["client CA without a policy", { tls_server_config: { cert_file: chainFile, key_file: keyFile, client_ca_file: clientCaFile } }, /a client CA needs a client_auth_type/],
    ["verification without a client CA", { tls_server_config: { cert_file: chainFile, key_file: keyFile, client_auth_type: "RequireAndVerifyClientCert" } }, /needs client_ca_file/],
    ["allowed SANs without verification", { tls_server_config: { cert_file: chainFile, key_file: keyFile, client_allowed_sans: ["a"] } }, /client_allowed_sans: needs a client_auth_type that verifies/],
    ["unknown TLS version", { tls_server_config: { cert_file: chainFile, key_file: keyFile, min_version: "TLS111" } }, /min_version/],
    ["min above max", { tls_server_config: { cert_file: chainFile, key_file: keyFile, min_version: "TLS13", max_version: "TLS12" } }, /min_version: is above max_version/],
    ["invented cipher", { tls_server_config: { cert_file: chainFile, key_file: keyFile, cipher_suites: ["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA2048"] } }, /cipher_suites\[0\]/],
    ["invented curve", { tls_server_config: { cert_file: chainFile, key_file: keyFile, curve_preferences: ["CurveP257"] } }, /curve_preferences\[0\]/],
    ["header that cannot be set", { http_server_config: { headers: { "Content-Type": "foo" } } }, /headers\.Content-Type: cannot be configured/],
    ["header value not allowed", { http_server_config: { headers: { "X-Frame-Options": "foo" } } }, /headers\.X-Frame-Options: expected one of deny, sameorigin/],
    ["bad rate limit", { rate_limit: { interval: "soon", burst: 1 } }, /rate_limit\.interval: expected a duration/],
    ["both cert and cert_file", { tls_server_config: { cert: chainPem, cert_file: chainFile, key } }, /set cert or cert_file, not both/],
  ];
  for (const [name, content, expected] of cases) {
    const path = await file(`web-bad-${name.replace(/\W+/g, "-")}.yml`, YAML.stringify(content));
    try {
      loadWebConfig(path);
      t.fail(`${name}: accepted`);
    } catch (err) {
      t.type(err, ConfigError, name);
      const message = (err as Error).message;
      t.match(message, expected, name);
      t.ok(message.startsWith(`--web.config.file ${path}: `), `${name}: names the file`);
      t.notMatch(message, "-----BEGIN", `${name}: no key material`);
      t.notMatch(message, "plain-text-password", `${name}: no password`);
    }
  }
  t.throws(() => loadWebConfig(join(dir, "absent-web.yml")), { message: /absent-web\.yml: no such file/ });
  t.throws(() => loadWebConfig(dir), ConfigError, "a folder");
});

t.test("a bad web config stops the real exporter at start: exit 2, one line naming the key", async (t) => {
  const cases: [string, string, RegExp][] = [
    ["unknown key", YAML.stringify({ tls_server_config: { cert_file: chainFile, key_file: keyFile, min_versoin: "TLS13" } }), /tls_server_config\.min_versoin: unknown key/],
    ["missing key file", YAML.stringify({ tls_server_config: { cert_file: chainFile, key_file: join(dir, "gone.key") } }), /tls_server_config\.key_file: \S*gone\.key: no such file/],
    ["bad hash", YAML.stringify({ basic_auth_users: { prometheus: "$2y$10$tooShort" } }), /basic_auth_users\.prometheus: not a bcrypt hash/],
  ];
  await Promise.all(
    cases.map(async ([name, content, expected]) => {
      const path = await file(`web-exit-${name.replace(/\W+/g, "-")}.yml`, content);
      const ran = await run(...plainNode(["--import", "tsx", CLI, "serve", "--web.listen-address", "127.0.0.1:0", "--web.config.file", path]), DEADLINE_MS);
      t.equal(ran.code, 2, `${name}: exit code`);
      const lines = ran.stderr.trimEnd().split("\n");
      t.equal(lines.length, 1, `${name}: one line: ${ran.stderr}`);
      t.match(lines[0], expected, name);
      t.notMatch(ran.stderr, "$2y$10$tooShort", `${name}: the hash is not repeated`);
    }),
  );
});
