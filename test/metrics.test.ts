import { collectDefaultMetrics, Registry } from "prom-client";
import t from "tap";
import { Health } from "../src/health.js";
import { Inventory } from "../src/inventory.js";
import { MetricsRenderer, escapeLabelValue, negotiateFormat } from "../src/metrics.js";
import { EVENT_LOOP_SAMPLING_MS } from "../src/process-metrics.js";
import { FULL_SELECTION } from "../src/series-selection.js";
import { record } from "./helpers/records.js";

/** A rendered body as text. */
const text = async (chunks: Promise<Buffer[]>): Promise<string> => Buffer.concat(await chunks).toString("utf8");

function setup() {
  const inventory = new Inventory();
  const health = new Health(inventory);
  // Every family and label: this file is the spec of each one; test/series-selection.test.ts of the choice.
  return { inventory, health, renderer: new MetricsRenderer(inventory, health, { selection: () => FULL_SELECTION }) };
}

/** The value of the one sample of `metric` whose label text contains every fragment. */
function sample(body: string, metric: string, ...fragments: string[]): number | undefined {
  const line = body.split("\n").find((l) => l.startsWith(`${metric}{`) && fragments.every((f) => l.includes(f)));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1));
}

t.test("label values escape backslash, double quote and line feed", async (t) => {
  t.equal(escapeLabelValue('a"b\\c\nd'), 'a\\"b\\\\c\\nd');
  t.equal(escapeLabelValue("plain Zürich 東京"), "plain Zürich 東京");
  const { inventory, renderer } = setup();
  inventory.replace({ source: "file", namespace: "", name: '/tmp/we"ird\\name', key: "" }, { certificates: [record({ subjectCN: 'evil"\\\nCN' })] });
  const body = await text(renderer.renderCertificates());
  t.match(body, 'name="/tmp/we\\"ird\\\\name"');
  t.match(body, 'subject_cn="evil\\"\\\\\\nCN"');
  t.notMatch(body, /CN"\s*\n/, "no raw line feed inside a label value");
});

t.test("every per-certificate series carries the contract's labels", async (t) => {
  const { inventory, renderer } = setup();
  const now = Math.floor(Date.now() / 1000);
  inventory.replace({ source: "secret", namespace: "prod", name: "web-tls", key: "tls.crt" }, {
    certificates: [record({ notAfter: now + 10 * 86400, serial: "00ff", isCA: false }), record({ subjectCN: "Example CA", isCA: true, serial: "01" })],
  });
  const body = await text(renderer.renderCertificates(now));
  const leaf = 'source="secret",namespace="prod",name="web-tls",key="tls.crt",index="0",subject_cn="example.test",issuer_cn="Example CA",serial="00ff",ca="false"';
  t.equal(sample(body, "cert_not_after_timestamp_seconds", leaf), now + 10 * 86400);
  t.equal(sample(body, "cert_expires_in_days", leaf), 10);
  t.equal(sample(body, "cert_expired", leaf), 0);
  t.equal(sample(body, "cert_expired", 'index="1"', 'subject_cn="Example CA"', 'serial="01"', 'ca="true"'), 0, "the second certificate of the bundle is index 1");
  t.equal(sample(body, "cert_info", leaf, `fingerprint_sha256="${"ab".repeat(32)}"`, 'sans="DNS:example.test"', 'key_algorithm="ECDSA"', 'key_bits="256"', 'signature_algorithm="ecdsa-with-SHA256"', 'subject="CN=example.test"', 'issuer="CN=Example CA"'), 1);
});

t.test("days left and expired are computed at render time", async (t) => {
  const { inventory, renderer } = setup();
  const notAfter = 1_800_000_000;
  inventory.replace({ source: "file", namespace: "", name: "/a.pem", key: "" }, { certificates: [record({ notAfter })] });
  const before = await text(renderer.renderCertificates(notAfter - 86400 * 1.5));
  t.equal(sample(before, "cert_expires_in_days", 'name="/a.pem"'), 1.5);
  t.equal(sample(before, "cert_expired", 'name="/a.pem"'), 0);
  const after = await text(renderer.renderCertificates(notAfter + 86400 * 2));
  t.equal(sample(after, "cert_expires_in_days", 'name="/a.pem"'), -2);
  t.equal(sample(after, "cert_expired", 'name="/a.pem"'), 1);
});

t.test("the same certificate at two locations, or twice in one bundle, gives distinct series", async (t) => {
  const { inventory, renderer } = setup();
  const cert = record();
  inventory.replace({ source: "file", namespace: "", name: "/a.pem", key: "" }, { certificates: [cert, cert] });
  inventory.replace({ source: "file", namespace: "", name: "/b.pem", key: "" }, { certificates: [cert] });
  const body = await text(renderer.renderCertificates());
  const series = body.split("\n").filter((l) => l.startsWith("cert_info{")).map((l) => l.slice(0, l.lastIndexOf(" ")));
  t.equal(series.length, 3);
  t.equal(new Set(series).size, 3, "no duplicate label sets");
});

t.test("errors, thresholds, cert-manager links and probes render per location", async (t) => {
  const { inventory, renderer } = setup();
  inventory.replace({ source: "file", namespace: "", name: "/bad.pem", key: "" }, { certificates: [], error: { reason: "corrupt_certificate", message: "m" } });
  inventory.replace({ source: "secret", namespace: "ns", name: "s", key: "tls.crt" }, {
    certificates: [record()],
    thresholds: { warningDays: 40, criticalDays: 10 },
    certManager: { certificateName: "web", issuerName: "letsencrypt", issuerKind: "ClusterIssuer" },
  });
  inventory.replace({ source: "endpoint", namespace: "", name: "[::1]:8443", key: "" }, {
    certificates: [record()],
    probe: { success: true, chainVerified: false, verifyError: "CERT_HAS_EXPIRED", hostnameMatch: true, tlsVersion: "TLSv1.3", cipher: "TLS_AES_256_GCM_SHA384", durationSeconds: 0.25 },
  });
  const body = await text(renderer.renderCertificates());
  t.equal(sample(body, "cert_read_errors", 'name="/bad.pem"', 'reason="corrupt_certificate"'), 1);
  t.equal(sample(body, "cert_threshold_warning_seconds", 'name="s"'), 40 * 86400);
  t.equal(sample(body, "cert_threshold_critical_seconds", 'name="s"'), 10 * 86400);
  t.equal(sample(body, "cert_certmanager_certificate_info", 'certificate="web"', 'issuer="letsencrypt"', 'issuer_kind="ClusterIssuer"'), 1);
  t.equal(sample(body, "cert_endpoint_probe_success", 'name="[::1]:8443"'), 1);
  t.equal(sample(body, "cert_endpoint_chain_verified", 'name="[::1]:8443"'), 0);
  t.equal(sample(body, "cert_endpoint_verify_error", 'reason="CERT_HAS_EXPIRED"'), 1);
  t.equal(sample(body, "cert_endpoint_hostname_match", 'name="[::1]:8443"'), 1);
  t.equal(sample(body, "cert_endpoint_tls_info", 'tls_version="TLSv1.3"', 'cipher="TLS_AES_256_GCM_SHA384"'), 1);
  t.equal(sample(body, "cert_endpoint_probe_duration_seconds", 'name="[::1]:8443"'), 0.25);
  t.notMatch(body, "cert_read_errors{source=\"secret\"", "a readable location has no error series");
  t.notMatch(body, "cert_read_errors{source=\"endpoint\"", "a successful probe is no error, even when the chain does not verify");
});

t.test("a probe that failed after certificates arrived exports both the certificates and the failure", async (t) => {
  const { inventory, renderer } = setup();
  inventory.replace({ source: "endpoint", namespace: "", name: "127.0.0.1:8443", key: "" }, {
    certificates: [record({ subjectCN: "mtls.test" })],
    probe: { success: false, reason: "client_cert_required", chainVerified: false, verifyError: "", hostnameMatch: true, tlsVersion: "TLSv1.3", cipher: "TLS_AES_128_GCM_SHA256", durationSeconds: 0.01 },
  });
  const body = await text(renderer.renderCertificates());
  t.equal(sample(body, "cert_expires_in_days", 'subject_cn="mtls.test"') !== undefined, true);
  t.equal(sample(body, "cert_read_errors", 'name="127.0.0.1:8443"', 'reason="client_cert_required"'), 1);
  t.equal(sample(body, "cert_endpoint_probe_success", 'name="127.0.0.1:8443"'), 0);
});

t.test("each family is declared once, with its samples grouped under it", async (t) => {
  const { inventory, renderer } = setup();
  for (let i = 0; i < 5; i++) inventory.replace({ source: "file", namespace: "", name: `/c${i}.pem`, key: "" }, { certificates: [record()] });
  const body = await text(renderer.render("prometheus"));
  const types = body.split("\n").filter((l) => l.startsWith("# TYPE "));
  t.equal(new Set(types).size, types.length, "no family declared twice");
  let current = "";
  const seen = new Set<string>();
  for (const line of body.split("\n")) {
    if (line.startsWith("# TYPE ")) current = line.split(" ")[2] as string;
    else if (line && !line.startsWith("#")) {
      const name = line.split(/[{ ]/)[0] as string;
      if (!name.startsWith(current)) t.fail(`sample ${name} outside its family ${current}`);
      seen.add(name);
    }
  }
  t.ok(seen.has("cert_expires_in_days"));
  t.ok(seen.has("process_cpu_seconds_total"), "standard process metrics are there");
  t.ok(seen.has("cert_expiry_exporter_build_info"));
  t.equal(sample(body, "cert_expiry_exporter_certificates", 'source="file"'), 5);
});

t.test("process metrics are prom-client's defaults but its *_total gauges; the event loop is sampled from the first scrape on", async (t) => {
  const { renderer } = setup();
  const defaults = new Registry();
  collectDefaultMetrics({ register: defaults });
  const lintFailing = ["nodejs_active_handles_total", "nodejs_active_requests_total", "nodejs_active_resources_total"];
  const expected = (await defaults.getMetricsAsJSON()).map((m) => m.name).filter((name) => !lintFailing.includes(name));
  const first = await text(renderer.render("prometheus"));
  for (const name of expected) t.match(first, `\n# TYPE ${name} `, name);
  for (const name of lintFailing) t.notMatch(first, `# TYPE ${name} `, `${name}: left out`);
  t.match(first, /^nodejs_eventloop_lag_max_seconds NaN$/im, "not sampled before anyone scraped");
  // The process CPU counters are ours (src/prom.ts says why): prom-client's names, help and values.
  const theirs = await defaults.metrics();
  const cpu = ["process_cpu_user_seconds_total", "process_cpu_system_seconds_total", "process_cpu_seconds_total"];
  for (const name of cpu) t.equal(/^# HELP .*$/m.exec(first.slice(first.indexOf(`# HELP ${name} `)))?.[0], /^# HELP .*$/m.exec(theirs.slice(theirs.indexOf(`# HELP ${name} `)))?.[0], `${name}: prom-client's help`);
  const seconds = (body: string, name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(body)?.[1]);
  // 50 ms of this process's CPU, however long a loaded machine takes to give them.
  const burnFrom = process.cpuUsage();
  while (process.cpuUsage(burnFrom).user < 50_000);
  const burnt = await text(renderer.render("prometheus"));
  const [user, system, total] = cpu.map((name) => seconds(burnt, name));
  t.ok((user ?? 0) > 0 && (system ?? 0) >= 0, `user ${user} s, system ${system} s`);
  t.ok(Math.abs((total ?? 0) - (user ?? 0) - (system ?? 0)) < 1e-6, "the total is user + system");
  t.ok((total ?? 0) - seconds(first, "process_cpu_seconds_total") >= 0.04, "the 50 ms spent between two scrapes are counted");
  await new Promise((resolve) => setTimeout(resolve, 2.5 * EVENT_LOOP_SAMPLING_MS));
  const second = await text(renderer.render("prometheus"));
  const lagMin = Number(/^nodejs_eventloop_lag_min_seconds (\S+)$/m.exec(second)?.[1]);
  // The histogram keeps about three significant digits: a sample of the interval may read a hair under it.
  t.ok(lagMin * 1000 > EVENT_LOOP_SAMPLING_MS * 0.99, `sampled since the first scrape, each sample spanning the interval: min ${lagMin} s`);
});

t.test("OpenMetrics is served when asked for, and ends with # EOF", async (t) => {
  t.equal(negotiateFormat("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"), "openmetrics");
  t.equal(negotiateFormat("text/plain"), "prometheus");
  t.equal(negotiateFormat(undefined), "prometheus");
  const { inventory, renderer } = setup();
  inventory.replace({ source: "file", namespace: "", name: "/a.pem", key: "" }, { certificates: [record()] });
  const om = await text(renderer.render("openmetrics"));
  t.ok(om.endsWith("# EOF\n"));
  t.equal(om.match(/# EOF/g)?.length, 1);
  const plain = await text(renderer.render("prometheus"));
  t.notMatch(plain, "# EOF");
});

t.test("a scrape streams one snapshot of the inventory, whatever changes while it is sent", async (t) => {
  const { inventory, renderer } = setup();
  const at = (i: number) => ({ source: "file" as const, namespace: "", name: `/c${i}.pem`, key: "" });
  for (let i = 0; i < 5000; i++) inventory.replace(at(i), { certificates: [record({ subjectCN: `old-${i}` })] });
  const chunks: Buffer[] = [];
  for await (const chunk of renderer.stream("prometheus")) {
    if (chunks.length === 0) {
      inventory.remove(at(0));
      inventory.replace(at(1), { certificates: [record({ subjectCN: "new-1" })] });
      inventory.replace(at(5000), { certificates: [record({ subjectCN: "added" })] });
    }
    chunks.push(chunk as Buffer);
  }
  t.ok(chunks.length > 10, "the body arrives in many chunks");
  const body = Buffer.concat(chunks).toString("utf8");
  const lines = (cn: string) => body.split("\n").filter((l) => l.includes(`subject_cn="${cn}"`)).length;
  t.equal(lines("old-0"), 5, "a location removed during the scrape is in every family");
  t.equal(lines("old-1"), 5, "a location replaced during the scrape is in every family as it was");
  t.equal(lines("new-1"), 0);
  t.equal(lines("added"), 0, "a location added during the scrape waits for the next one");
  t.equal(lines("old-4999"), 5);
  t.match(body, /cert_expiry_exporter_build_info/, "the exporter's own metrics follow");
  const next = await renderer.render("prometheus");
  t.equal(Buffer.concat(next).toString("utf8").split("\n").filter((l) => l.includes('subject_cn="new-1"')).length, 5, "the next scrape has the change");
});

t.test("a large inventory is rendered in slices that let other work run", async (t) => {
  const { inventory, renderer } = setup();
  for (let i = 0; i < 10_000; i++) inventory.replace({ source: "file", namespace: "", name: `/c${i}.pem`, key: "" }, { certificates: [record()] });
  let rendered = false;
  let ranDuringRender = false;
  setImmediate(() => {
    ranDuringRender = !rendered;
  });
  const body = await text(renderer.renderCertificates());
  rendered = true;
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(ranDuringRender, true, "a callback queued before the render ran before it finished");
  t.equal(body.split("\n").filter((l) => l.startsWith("cert_info{")).length, 10_000);
});
