/**
 * /probe?target=host:port&module=NAME through the real server, against TLS servers made here on
 * loopback: what it answers, what it refuses (400, 403, 503), how long a slow target can hold it,
 * and that it sits behind the same basic auth as /metrics. Real Prometheus scraping it through the
 * shipped scrape config is test/probe-prometheus.test.ts.
 */
import { once } from "node:events";
import { writeFile, mkdtemp, rm } from "node:fs/promises";
import { createServer as createNetServer, type AddressInfo, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import bcrypt from "bcryptjs";
import t, { type Test } from "tap";
import YAML from "yaml";
import { makeCert, makeChain, privateKeyPem } from "../scripts/certgen.js";
import { Exporter } from "../src/app.js";
import { ParseCache } from "../src/certs/cache.js";
import { validateConfig, type Config } from "../src/config.js";
import { Health } from "../src/health.js";
import { Inventory } from "../src/inventory.js";
import { createLogger } from "../src/log.js";
import { AllowList, NotAllowedError } from "../src/probe/allow-list.js";
import { parseProbeTarget, probeDeadlineSeconds } from "../src/probe-endpoint.js";
import { buildServer } from "../src/server.js";
import { loadWebConfig } from "../src/web-config.js";
import { silentServer, tlsServer, type LoopbackHost, type TlsTestServer } from "./helpers/tls-servers.js";

const dir = await mkdtemp(join(tmpdir(), "cee-probe-"));
t.teardown(() => rm(dir, { recursive: true, force: true }));

const chain = await makeChain("localhost", 60);
const chainPem = chain.leaf.pem + chain.intermediate.pem;
const caFile = join(dir, "root.pem");
await writeFile(caFile, chain.root.pem);
const chainKey = await privateKeyPem(chain.leaf);

/** A TLS server presenting a self-signed certificate for `cn`. */
async function selfSigned(t: Test, cn: string, host: LoopbackHost = "127.0.0.1"): Promise<TlsTestServer> {
  const cert = await makeCert({ cn, sans: [cn, "localhost", "IP:127.0.0.1", "IP:::1"] });
  const server = await tlsServer({ cert: cert.pem, key: await privateKeyPem(cert), host });
  t.teardown(() => server.close());
  return server;
}

/** A TLS server presenting the leaf (CN localhost) and intermediate of `chain`. */
async function chained(t: Test): Promise<TlsTestServer> {
  const server = await tlsServer({ cert: chainPem, key: chainKey });
  t.teardown(() => server.close());
  return server;
}

/** A real exporter (Exporter.serve) on loopback with this configuration; returns its base URL. */
async function exporter(t: Test, raw: Record<string, unknown>, web?: string): Promise<{ base: string; exporter: Exporter }> {
  const config = validateConfig({ ...raw, listen: { address: "127.0.0.1", port: 0 } });
  const exp = await Exporter.create(config, createLogger("silent"), web ? loadWebConfig(web) : undefined);
  await exp.serve();
  t.teardown(() => exp.close());
  return { base: `http://127.0.0.1:${exp.port}`, exporter: exp };
}

const probeUrl = (base: string, target: string, module?: string): string =>
  `${base}/probe?target=${encodeURIComponent(target)}${module === undefined ? "" : `&module=${encodeURIComponent(module)}`}`;

async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; ms: number; headers: Headers }> {
  const started = performance.now();
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(30_000) });
  const body = await res.text();
  return { status: res.status, body, ms: performance.now() - started, headers: res.headers };
}

/** The value of the one sample of `family` in an exposition, or undefined. */
function value(body: string, family: string): number | undefined {
  const line = body.split("\n").find((l) => l.startsWith(`${family}{`) || l.startsWith(`${family} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1));
}

const LOOPBACK = { cidrs: ["127.0.0.0/8", "::1/128"] };

t.test("a probe answers the certificate and endpoint families of its target alone, labelled as the endpoint source labels them", async (t) => {
  const one = await selfSigned(t, "one.probe.test");
  const { base, exporter: exp } = await exporter(t, { modules: { default: { allow: LOOPBACK } } });
  const res = await get(probeUrl(base, one.address));
  t.equal(res.status, 200, res.body);
  t.equal(res.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  const at = `source="endpoint",namespace="",name="${one.address}",key=""`;
  t.match(res.body, `cert_not_after_timestamp_seconds{${at},index="0",subject_cn="one.probe.test"`);
  t.match(res.body, `cert_not_before_timestamp_seconds{${at},index="0",subject_cn="one.probe.test"`);
  t.match(res.body, `cert_info{${at},index="0",subject_cn="one.probe.test"`);
  t.match(res.body, `cert_endpoint_probe_success{${at}} 1`);
  t.match(res.body, `cert_endpoint_chain_verified{${at}} 0`, "self-signed: does not verify");
  t.match(res.body, `cert_endpoint_verify_error{${at},reason="DEPTH_ZERO_SELF_SIGNED_CERT"} 1`);
  t.match(res.body, `cert_endpoint_hostname_match{${at}} 1`);
  t.match(res.body, new RegExp(`cert_endpoint_tls_info\\{${at},tls_version="TLSv1.3",cipher="[^"]+"\\} 1`));
  t.ok((value(res.body, "cert_endpoint_probe_duration_seconds") ?? -1) > 0, "duration");
  t.notMatch(res.body, "cert_read_errors");
  t.notMatch(res.body, /cert_expiry_exporter_|process_|nodejs_/, "none of the exporter's own metrics");
  t.equal(exp.inventory.size, 0, "nothing is kept: /metrics does not show the target");
  t.notMatch((await get(`${base}/metrics`)).body, "one.probe.test");
});

t.test("a module's server name and CA: the chain verifies and the key is the server name, as for a static endpoint", async (t) => {
  const server = await chained(t);
  const { base } = await exporter(t, { modules: { private: { serverName: "localhost", caFile, allow: { cidrs: ["127.0.0.1"] } } } });
  const res = await get(probeUrl(base, server.address, "private"));
  const at = `source="endpoint",namespace="",name="${server.address}",key="localhost"`;
  t.match(res.body, `cert_endpoint_chain_verified{${at}} 1`);
  t.match(res.body, `cert_endpoint_hostname_match{${at}} 1`);
  t.match(res.body, `cert_not_after_timestamp_seconds{${at},index="0",subject_cn="localhost"`);
  t.match(res.body, `cert_not_after_timestamp_seconds{${at},index="1",subject_cn="Test Intermediate CA"`);
  t.same(server.serverNames, ["localhost"], "SNI is the module's server name");
});

t.test("the answer follows the series selection of metrics:", async (t) => {
  const server = await chained(t);
  const { base } = await exporter(t, {
    metrics: { certificateFamilies: ["cert_not_after_timestamp_seconds", "cert_not_before_timestamp_seconds", "cert_expired"], leafOnly: true },
    modules: { default: { allow: { any: true } } },
  });
  const res = await get(probeUrl(base, server.address));
  t.match(res.body, /cert_expired\{[^}]*index="0"[^}]*\} 0/);
  t.notMatch(res.body, "cert_info", "cert_info not chosen");
  t.notMatch(res.body, 'index="1"', "leafOnly: the intermediate is not sent");
});

t.test("a failed probe is a 200 with probe success 0 and its reason, as the endpoint source reports it", async (t) => {
  const closed = createNetServer();
  closed.listen(0, "127.0.0.1");
  await once(closed, "listening");
  const port = (closed.address() as AddressInfo).port;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  const { base } = await exporter(t, { modules: { default: { allow: LOOPBACK }, missingCa: { caFile: join(dir, "absent.pem"), allow: LOOPBACK } } });
  const refused = await get(probeUrl(base, `127.0.0.1:${port}`));
  t.equal(refused.status, 200);
  t.match(refused.body, `cert_read_errors{source="endpoint",namespace="",name="127.0.0.1:${port}",key="",reason="connection_refused"} 1`);
  t.equal(value(refused.body, "cert_endpoint_probe_success"), 0);
  const noCa = await get(probeUrl(base, `127.0.0.1:${port}`, "missingCa"));
  t.match(noCa.body, 'reason="not_found"', "an unreadable CA file is the probe's read error");
  t.equal(value(noCa.body, "cert_endpoint_probe_success"), 0);
});

t.test("400: no target, a malformed one, an unknown module, no module and no default", async (t) => {
  const { base } = await exporter(t, { modules: { loopback: { allow: LOOPBACK } } });
  const noTarget = await get(`${base}/probe?module=loopback`);
  t.equal(noTarget.status, 400);
  t.match(noTarget.body, "target is required");
  for (const bad of ["localhost", "[::1]", "::1:443", "a b:443", "host:0", "host:65536", "host:-1", "[fe80::1%eth0]:443", "[not-v6]:443", "a..b:443", `${"a".repeat(300)}:443`, "http://host:443", "host:443/path"]) {
    const res = await get(probeUrl(base, bad, "loopback"));
    t.equal(res.status, 400, `${JSON.stringify(bad.slice(0, 40))}: ${res.body.trim()}`);
  }
  t.equal((await get(`${base}/probe?target=127.0.0.1:1&target=127.0.0.1:2&module=loopback`)).status, 400, "target given twice");
  const unknown = await get(probeUrl(base, "127.0.0.1:443", "nope"));
  t.equal(unknown.status, 400);
  t.match(unknown.body, 'unknown module "nope"');
  const none = await get(probeUrl(base, "127.0.0.1:443"));
  t.equal(none.status, 400);
  t.match(none.body, "no module is named default");
  const noModules = await exporter(t, {});
  t.equal((await get(probeUrl(noModules.base, "127.0.0.1:443"))).status, 400, "no modules configured");
  t.same(
    [parseProbeTarget("LocalHost:443"), parseProbeTarget("[::1]:8443"), parseProbeTarget("10.0.0.1:1")],
    [
      { host: "localhost", port: 443, address: "localhost:443" },
      { host: "::1", port: 8443, address: "[::1]:8443" },
      { host: "10.0.0.1", port: 1, address: "10.0.0.1:1" },
    ],
  );
});

t.test("403: a target outside the module's allow-list is never dialled", async (t) => {
  const one = await selfSigned(t, "one.probe.test");
  const { base } = await exporter(t, {
    modules: {
      names: { allow: { hosts: ["*.example.test", "localhost"] } },
      tenNet: { allow: { cidrs: ["10.0.0.0/8"] } },
      v6only: { allow: { cidrs: ["::1/128"] } },
      both: { allow: { hosts: ["localhost"], cidrs: ["10.0.0.0/8"] } },
      loopback: { allow: LOOPBACK },
    },
  });
  const refusals: [string, string, RegExp][] = [
    ["names", one.address, /127\.0\.0\.1 matches none of the module's allowed hosts/],
    ["names", `sub.a.example.test:${one.port}`, /matches none/],
    ["tenNet", one.address, /127\.0\.0\.1 is outside the module's allowed address blocks/],
    ["v6only", one.address, /outside/],
    ["v6only", `[::ffff:127.0.0.1]:${one.port}`, /outside/],
    // localhost resolves (/etc/hosts) to 127.0.0.1: a name that passes the globs but not the blocks.
    ["tenNet", `localhost:${one.port}`, /localhost resolves to 127\.0\.0\.1, outside the module's allowed address blocks/],
    ["both", `localhost:${one.port}`, /localhost resolves to 127\.0\.0\.1, outside/],
  ];
  for (const [module, target, why] of refusals) {
    const res = await get(probeUrl(base, target, module));
    t.equal(res.status, 403, `${module} ${target}`);
    t.match(res.body, why);
  }
  t.equal(one.accepted, 0, "no refused target was connected to");
  const byName = await get(probeUrl(base, `localhost:${one.port}`, "loopback"));
  t.equal(value(byName.body, "cert_endpoint_probe_success"), 1, "localhost inside the blocks: probed");
  t.match(byName.body, `name="localhost:${one.port}"`);
  const byGlob = await get(probeUrl(base, `LOCALHOST:${one.port}`, "names"));
  t.equal(value(byGlob.body, "cert_endpoint_probe_success"), 1, "a host glob match, case-insensitive");
  t.equal(one.accepted, 2);
});

t.test("an IPv6 target in brackets, allowed by its block", async (t) => {
  const six = await selfSigned(t, "six.probe.test", "::1");
  const { base } = await exporter(t, { modules: { default: { allow: { cidrs: ["::1/128"] } } } });
  const res = await get(probeUrl(base, six.address));
  t.match(res.body, `cert_endpoint_probe_success{source="endpoint",namespace="",name="[::1]:${six.port}",key=""} 1`);
  t.match(res.body, 'subject_cn="six.probe.test"');
});

t.test("the address checked is the address dialled: a resolver that changes its answer cannot move the probe", async (t) => {
  const one = await selfSigned(t, "one.probe.test");
  let lookups = 0;
  // First answer inside the block, every later one outside it: a DNS rebinding attack in miniature.
  const lookup = async (host: string): Promise<string[]> => (host === "rebind.test" ? [lookups++ === 0 ? "127.0.0.1" : "10.255.255.1"] : []);
  const config = validateConfig({ modules: { default: { allow: { cidrs: ["127.0.0.0/8"] } } } });
  const inventory = new Inventory();
  const server = buildServer({ inventory, health: new Health(inventory), log: createLogger("silent"), http: config.http, probes: { cache: new ParseCache(100), config: () => config, lookup } });
  const base = await server.listen({ host: "127.0.0.1", port: 0 });
  t.teardown(() => server.close());
  const res = await get(probeUrl(base, `rebind.test:${one.port}`));
  t.equal(res.status, 200, res.body);
  t.equal(value(res.body, "cert_endpoint_probe_success"), 1, "probed at the checked address (the name itself resolves nowhere)");
  t.match(res.body, `name="rebind.test:${one.port}"`, "named by the target as asked");
  t.equal(lookups, 1, "resolved once");
  t.equal(one.accepted, 1);
  const unresolved = await get(probeUrl(base, `nowhere.test:${one.port}`));
  t.equal(unresolved.status, 200);
  t.match(unresolved.body, 'reason="dns_error"', "a name without addresses is a failed probe");

  // The allow-list alone: every address must be inside, the first is dialled.
  const list = new AllowList({ cidrs: ["127.0.0.0/8"] });
  const signal = new AbortController().signal;
  t.equal(await list.admit("multi.test", async () => ["127.0.0.2", "127.0.0.3"], signal), "127.0.0.2");
  await t.rejects(list.admit("split.test", async () => ["127.0.0.2", "192.168.1.1"], signal), NotAllowedError, "one address outside refuses the name");
  await t.rejects(list.admit("mapped.test", async () => ["::ffff:10.0.0.1"], signal), NotAllowedError, "an IPv4-mapped address is checked as IPv4");
  t.equal(await list.admit("mapped.test", async () => ["::ffff:127.0.0.1"], signal), "::ffff:127.0.0.1");
  t.equal(await new AllowList({ hosts: ["**.example.test"] }).admit("a.b.example.test", async () => t.fail("no lookup without cidrs") as never, signal), undefined);
  t.throws(() => new AllowList({ hosts: ["*.example.test"] }).screen("a.b.example.test"), NotAllowedError, "* stays within one label");
  t.throws(() => new AllowList({ hosts: ["*.example.test"] }).screen("example.test"), NotAllowedError);
});

t.test("a slow target holds /probe for its timeout, not more; the scraper's timeout caps it", async (t) => {
  const silent = await silentServer();
  t.teardown(() => silent.close());
  const { base } = await exporter(t, { modules: { slow: { timeout: "1s", allow: LOOPBACK }, patient: { timeout: "30s", allow: LOOPBACK } } });
  const slow = await get(probeUrl(base, silent.address, "slow"));
  t.equal(slow.status, 200);
  t.match(slow.body, 'reason="handshake_timeout"');
  t.ok(slow.ms >= 900 && slow.ms < 2500, `answered after ${Math.round(slow.ms)} ms (timeout 1 s)`);
  const capped = await get(probeUrl(base, silent.address, "patient"), { "X-Prometheus-Scrape-Timeout-Seconds": "2" });
  t.match(capped.body, 'reason="handshake_timeout"');
  t.ok(capped.ms >= 1400 && capped.ms < 2000, `answered after ${Math.round(capped.ms)} ms: the scraper's 2 s less the margin, before the scraper gives up`);
  t.equal(probeDeadlineSeconds(30, 60, "2"), 1.5);
  t.equal(probeDeadlineSeconds(30, 60, "0.6"), 0.3, "under a second: half of it");
  t.equal(probeDeadlineSeconds(5, 60, "10"), 5, "the module's own timeout when shorter");
  t.equal(probeDeadlineSeconds(300, 60, undefined), 60, "never beyond http.scrapeTimeout");
  t.equal(probeDeadlineSeconds(5, 60, "garbage"), 5);
});

t.test("concurrency is bounded: probes beyond the limit wait in a bounded line, then 503", async (t) => {
  const silent = await silentServer();
  t.teardown(() => silent.close());
  const fast = await selfSigned(t, "fast.probe.test");
  const { base } = await exporter(t, {
    http: { maxConcurrentProbes: 2, maxQueuedProbes: 1 },
    modules: { slow: { timeout: "1500ms", allow: LOOPBACK }, patient: { timeout: "10s", allow: LOOPBACK } },
  });
  const first = [get(probeUrl(base, silent.address, "slow")), get(probeUrl(base, silent.address, "slow"))];
  await new Promise((resolve) => setTimeout(resolve, 300));
  const queued = get(probeUrl(base, fast.address, "patient"));
  await new Promise((resolve) => setTimeout(resolve, 300));
  const refused = await get(probeUrl(base, fast.address, "patient"));
  t.equal(refused.status, 503, "the line is full");
  t.equal(refused.headers.get("retry-after"), "5");
  t.match(refused.body, "too many probes at once: 2 probing, 1 waiting");
  t.ok(refused.ms < 500, `refused at once (${Math.round(refused.ms)} ms)`);
  t.equal(fast.accepted, 0, "the queued probe has not started");
  const slow = await Promise.all(first);
  t.same(slow.map((r) => r.status), [200, 200]);
  const served = await queued;
  t.equal(served.status, 200);
  t.equal(value(served.body, "cert_endpoint_probe_success"), 1, "the queued probe ran once a slot was free");
  t.ok(served.ms >= 900, `it waited (${Math.round(served.ms)} ms)`);
  t.equal(silent.maxConcurrent, 2, "never more than two probes at once");
});

t.test("a probe waiting in line gets 503 when its deadline passes there", async (t) => {
  const silent = await silentServer();
  t.teardown(() => silent.close());
  const { base } = await exporter(t, { http: { maxConcurrentProbes: 1, maxQueuedProbes: 4 }, modules: { slow: { timeout: "2s", allow: LOOPBACK }, quick: { timeout: "500ms", allow: LOOPBACK } } });
  const holder = get(probeUrl(base, silent.address, "slow"));
  await new Promise((resolve) => setTimeout(resolve, 200));
  const waiter = await get(probeUrl(base, silent.address, "quick"));
  t.equal(waiter.status, 503);
  t.match(waiter.body, "no probe slot within the 0.5 s deadline");
  t.ok(waiter.ms < 1500, `after ${Math.round(waiter.ms)} ms`);
  t.equal((await holder).status, 200);
});

t.test("a client that goes away aborts its probe", async (t) => {
  const sockets = new Set<Socket>();
  let closedAt = 0;
  const silent = createNetServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => undefined);
    // Read (and ignore) the ClientHello, so the probe's close is seen.
    socket.resume();
    socket.once("close", () => (closedAt = performance.now()));
  });
  silent.listen(0, "127.0.0.1");
  await once(silent, "listening");
  t.teardown(() => {
    for (const socket of sockets) socket.destroy();
    silent.close();
  });
  const port = (silent.address() as AddressInfo).port;
  const { base } = await exporter(t, { modules: { default: { timeout: "20s", allow: LOOPBACK } } });
  const controller = new AbortController();
  const request = fetch(probeUrl(base, `127.0.0.1:${port}`), { signal: controller.signal }).catch(() => undefined);
  const connected = Date.now() + 5000;
  while (sockets.size === 0 && Date.now() < connected) await new Promise((resolve) => setTimeout(resolve, 20));
  t.equal(sockets.size, 1, "the probe connected");
  const abortedAt = performance.now();
  controller.abort();
  await request;
  const deadline = Date.now() + 3000;
  while (closedAt === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  t.ok(closedAt > 0, "the probe's connection closed");
  t.ok(closedAt - abortedAt < 1000, `${Math.round(closedAt - abortedAt)} ms after the client left, not at the 20 s timeout`);
});

t.test("/probe asks for the same basic auth as /metrics", async (t) => {
  const one = await selfSigned(t, "one.probe.test");
  const web = join(dir, "web.yml");
  await writeFile(web, YAML.stringify({ basic_auth_users: { prometheus: bcrypt.hashSync("s3cret", 4) } }));
  const { base } = await exporter(t, { modules: { default: { allow: LOOPBACK } } }, web);
  const anonymous = await get(probeUrl(base, one.address));
  t.equal(anonymous.status, 401);
  t.equal(anonymous.headers.get("www-authenticate"), 'Basic realm="cert-expiry-exporter", charset="UTF-8"');
  t.equal((await get(`${base}/metrics`)).status, 401, "as /metrics");
  const wrong = await get(probeUrl(base, one.address), { authorization: `Basic ${Buffer.from("prometheus:guess").toString("base64")}` });
  t.equal(wrong.status, 401);
  t.equal(one.accepted, 0, "nothing probed without credentials");
  const authorized = await get(probeUrl(base, one.address), { authorization: `Basic ${Buffer.from("prometheus:s3cret").toString("base64")}` });
  t.equal(authorized.status, 200);
  t.equal(value(authorized.body, "cert_endpoint_probe_success"), 1);
});

t.test("modules reload: the next request uses the new set", async (t) => {
  const one = await selfSigned(t, "one.probe.test");
  const raw = { modules: { default: { allow: { cidrs: ["10.0.0.0/8"] } } } };
  const { base, exporter: exp } = await exporter(t, raw);
  t.equal((await get(probeUrl(base, one.address))).status, 403);
  const next: Config = validateConfig({ listen: { address: "127.0.0.1", port: 0 }, modules: { default: { allow: LOOPBACK }, added: { allow: LOOPBACK } } });
  const result = await exp.reconfigure(next);
  t.same(result.restartRequired, [], "modules need no restart");
  t.equal((await get(probeUrl(base, one.address))).status, 200, "the changed default applies");
  t.equal((await get(probeUrl(base, one.address, "added"))).status, 200, "an added module is there");
});

t.test("configuration: a module must say what it accepts", async (t) => {
  const invalid: [unknown, RegExp][] = [
    [{ x: {} }, /modules\.x\.allow/],
    [{ x: { allow: {} } }, /modules\.x\.allow: state the targets the module may probe/],
    [{ x: { allow: { any: true, cidrs: ["10.0.0.0/8"] } } }, /any: true leaves nothing/],
    [{ x: { allow: { cidrs: [] } } }, /modules\.x\.allow\.cidrs/],
    [{ x: { allow: { cidrs: ["10.0.0.0/33"] } } }, /modules\.x\.allow\.cidrs\[0\]: prefix \/33/],
    [{ x: { allow: { cidrs: ["example.com/8"] } } }, /not an address block/],
    [{ x: { allow: { hosts: ["a b"] } } }, /modules\.x\.allow\.hosts\[0\]/],
    [{ x: { allow: { any: true }, protocol: "gopher" } }, /modules\.x\.protocol/],
    [{ x: { allow: { any: true }, proxyUrl: "https://proxy:3128" } }, /modules\.x\.proxyUrl: only http:\/\//],
    [{ x: { allow: { any: true }, timeout: "0s" } }, /modules\.x\.timeout: must be between/],
    [{ "a/b": { allow: { any: true } } }, /modules/],
  ];
  for (const [modules, message] of invalid) t.throws(() => validateConfig({ modules }), { message }, JSON.stringify(modules));
  const ok = validateConfig({ modules: { smtp: { protocol: "smtp", proxyUrl: "http://proxy.internal:3128", timeout: "5s", allow: { hosts: ["mail.example.test"], cidrs: ["192.0.2.0/24"] } } } });
  t.match(ok.modules.smtp, { protocol: "smtp", timeout: 5, allow: { hosts: ["mail.example.test"], cidrs: ["192.0.2.0/24"] } });
});
