/**
 * The bundled alert rules: valid for promtool, every alert unit-tested firing and silent, every alert
 * documented, the expiry alerts blind to staleness and leaving superseded certificates out, every
 * expression reading only the per-certificate families that cannot be turned off, the PrometheusRule identical to what the generator makes from
 * the rules file, and the same CA copied into 500 Secrets raising one alert. Needs promtool (Debian
 * package `prometheus`): without it the test fails, it does not skip.
 */
import { spawnSync } from "node:child_process";
import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import YAML from "yaml";
import { PROMETHEUS_RULE, ROOT, RULES_SOURCE, prometheusRule } from "../scripts/gen-artifacts.js";
import { CERTIFICATE_FAMILY_NAMES, REQUIRED_FAMILIES } from "../src/series-selection.js";

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface RuleFile {
  groups: { name: string; rules: Rule[] }[];
}
interface UnitTests {
  tests: { alert_rule_test?: { alertname: string; exp_alerts?: unknown[] }[] }[];
}

const RULES = join(ROOT, RULES_SOURCE);
const TESTS_DIR = join(ROOT, "alerts/tests");

function promtool(args: string[], input?: string): { status: number | null; output: string; missing: boolean } {
  const run = spawnSync("promtool", args, { encoding: "utf8", input, timeout: 120_000 });
  const missing = (run.error as NodeJS.ErrnoException | undefined)?.code === "ENOENT";
  return { status: run.status, output: `${run.stdout ?? ""}${run.stderr ?? ""}`, missing };
}

function requirePromtool(t: { fail(message: string): void }): boolean {
  const version = promtool(["--version"]);
  if (version.missing) {
    t.fail("promtool is not installed: apt-get install prometheus (CI installs it); these tests never skip");
    return false;
  }
  return true;
}

/** The anchor GitHub gives a Markdown heading. */
export function githubAnchor(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, "")
    .replace(/\s/g, "-");
}

/** Alerts about a location rather than a certificate: they name the location, not a subject or days. */
const LOCATION_ALERTS = ["CertificateReadErrors", "CertificateLocationStale", "CertificatePrivateKeyMismatch", "CertificateChainProblem"];

/**
 * The metric names a PromQL expression reads: its identifiers once string literals and comments are
 * gone. Label names and functions come along, which is harmless for looking up family names.
 */
function metricNamesRead(expr: string): Set<string> {
  const code = expr.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""').replace(/#[^\n]*/g, "");
  return new Set(code.match(/[A-Za-z_:][A-Za-z0-9_:]*/g) ?? []);
}

const ruleFile = YAML.parse(await readFile(RULES, "utf8")) as RuleFile;
const alerts = ruleFile.groups.flatMap((group) => group.rules.filter((rule) => rule.alert !== undefined));
const alertNames = [...new Set(alerts.map((rule) => rule.alert as string))];

t.test("promtool check rules accepts the rules file, lint included", async (t) => {
  if (!requirePromtool(t)) return;
  const check = promtool(["check", "rules", RULES]);
  t.equal(check.status, 0, check.output);
  t.match(check.output, `SUCCESS: ${alerts.length} rules found`);
});

t.test("promtool test rules: every case in alerts/tests passes", async (t) => {
  if (!requirePromtool(t)) return;
  const files = (await readdir(TESTS_DIR)).filter((file) => file.endsWith(".test.yml")).sort();
  t.ok(files.length >= 5, `test files: ${files.join(", ")}`);
  const run = promtool(["test", "rules", ...files.map((file) => join(TESTS_DIR, file))]);
  t.equal(run.status, 0, run.output);
  t.equal(run.output.match(/SUCCESS/g)?.length, files.length, "one SUCCESS per file");
});

t.test("every alert is tested both firing and silent", async (t) => {
  const firing = new Set<string>();
  const silent = new Set<string>();
  for (const file of (await readdir(TESTS_DIR)).filter((name) => name.endsWith(".test.yml"))) {
    const unit = YAML.parse(await readFile(join(TESTS_DIR, file), "utf8")) as UnitTests;
    for (const group of unit.tests) {
      for (const check of group.alert_rule_test ?? []) {
        ((check.exp_alerts ?? []).length > 0 ? firing : silent).add(check.alertname);
      }
    }
  }
  for (const name of alertNames) {
    t.ok(firing.has(name), `${name} has a case where it fires`);
    t.ok(silent.has(name), `${name} has a case where it stays silent`);
  }
});

t.test("every alert has a severity, a summary, a description and a runbook entry in docs/alerts.md", async (t) => {
  const docs = await readFile(join(ROOT, "docs/alerts.md"), "utf8");
  const anchors = new Set([...docs.matchAll(/^#{1,6}\s+(.+)$/gm)].map((match) => githubAnchor(match[1] as string)));
  for (const rule of alerts) {
    const name = rule.alert as string;
    t.match(rule.labels?.severity, /^(warning|critical)$/, `${name}: severity`);
    t.ok(rule.annotations?.summary, `${name}: summary`);
    t.ok(rule.annotations?.description, `${name}: description`);
    const runbook = rule.annotations?.runbook_url ?? "";
    const match = /\/docs\/alerts\.md#([a-z0-9-]+)$/.exec(runbook);
    t.ok(match, `${name}: runbook_url points into docs/alerts.md (${runbook})`);
    t.ok(match && anchors.has(match[1] as string), `${name}: docs/alerts.md has the heading #${match?.[1]}`);
    t.ok(anchors.has(githubAnchor(name)), `${name}: documented under its own heading`);
    const text = `${rule.annotations?.summary} ${rule.annotations?.description}`;
    if (LOCATION_ALERTS.includes(name)) {
      for (const label of ["source", "namespace", "name", "key"]) t.match(text, `$labels.${label}`, `${name}: the annotations name the location's ${label}`);
    } else if (name.startsWith("Certificate") && !name.startsWith("CertificateEndpoint")) {
      for (const label of ["source", "namespace", "name", "key", "subject_cn"]) {
        t.match(text, `$labels.${label}`, `${name}: the annotations name the certificate's ${label}`);
      }
      t.match(text, "$value", `${name}: the annotations give the days`);
    }
    if (name.startsWith("CACertificate")) {
      for (const label of ["subject_cn", "issuer_cn", "serial"]) t.match(text, `$labels.${label}`, `${name}: names the CA by ${label}`);
      t.notMatch(text, "$labels.fingerprint_sha256", `${name}: the fingerprint is no label of the alert (cert_info may not be exported)`);
    }
  }
});

t.test("the expiry alerts ignore staleness: a stale location's certificates alert like any other", async (t) => {
  const expiry = alerts.filter((rule) => /^(CA)?Certificate(ExpiringSoon|RenewalOverdue|ExpiringCritical|Expired|NotYetValid)$/.test(rule.alert as string));
  t.equal(expiry.length, 9, "the nine expiry alerts");
  for (const rule of expiry) t.notMatch(rule.expr, "cert_location_stale", `${rule.alert} does not look at cert_location_stale`);
  const stale = alerts.find((rule) => rule.alert === "CertificateLocationStale");
  t.match(stale?.expr, /cert_location_stale/, "CertificateLocationStale does");
});

t.test("every expiry alert leaves superseded certificates out, matching cert_superseded on all labels", async (t) => {
  const expiry = alerts.filter((rule) => /^(CA)?Certificate(ExpiringSoon|RenewalOverdue|ExpiringCritical|Expired|NotYetValid)$/.test(rule.alert as string));
  t.equal(expiry.length, 9, "the nine expiry alerts");
  // On all labels, so that one exporter's mark cannot silence another cluster's copy of a location.
  for (const rule of expiry) t.match(rule.expr, /\bunless cert_superseded == 1\n/, `${rule.alert} ends its certificate selection with unless cert_superseded == 1`);
  for (const rule of alerts.filter((each) => !expiry.includes(each))) t.notOk(metricNamesRead(rule.expr).has("cert_superseded"), `${rule.alert} does not read cert_superseded`);
});

t.test("every rule reads only the per-certificate families that cannot be turned off", async (t) => {
  // cert_superseded, which the expiry alerts read, is sent with every choice of families: it is none of them.
  t.notOk((CERTIFICATE_FAMILY_NAMES as readonly string[]).includes("cert_superseded"), "cert_superseded is not a selectable family");
  const optional = CERTIFICATE_FAMILY_NAMES.filter((family) => !REQUIRED_FAMILIES.includes(family));
  t.same([...optional].sort(), ["cert_expired", "cert_expires_in_days", "cert_info"], "the optional families");
  t.ok(metricNamesRead('-cert_expires_in_days{ca!="true"} >= 0').has("cert_expires_in_days"), "the check sees a family read");
  t.notOk(metricNamesRead('up{name="cert_info"} # cert_info').has("cert_info"), "... and not one named in a string or comment");
  const rules = ruleFile.groups.flatMap((group) => group.rules);
  const read = new Set<string>();
  for (const rule of rules) {
    const names = metricNamesRead(rule.expr);
    const label = rule.alert ?? rule.record;
    for (const family of optional) t.notOk(names.has(family), `${label} does not read ${family}`);
    t.notMatch(rule.expr, "__name__", `${label} selects no metric by a __name__ matcher`);
    for (const family of REQUIRED_FAMILIES) if (names.has(family)) read.add(family);
  }
  t.same([...read].sort(), [...REQUIRED_FAMILIES].sort(), "the rules read both required families");
});

t.test("the PrometheusRule is generated from the rules file and is current", async (t) => {
  const shipped = await readFile(join(ROOT, PROMETHEUS_RULE), "utf8");
  t.equal(shipped, prometheusRule(), `${PROMETHEUS_RULE} is what scripts/gen-artifacts.ts makes now (run it)`);
  const manifest = YAML.parse(shipped) as { apiVersion: string; kind: string; spec: RuleFile };
  t.equal(manifest.apiVersion, "monitoring.coreos.com/v1");
  t.equal(manifest.kind, "PrometheusRule");
  t.same(manifest.spec.groups, ruleFile.groups, "the same groups, rules, labels and annotations");
  if (!requirePromtool(t)) return;
  const dir = await mkdtemp(join(tmpdir(), "cee-prometheusrule-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, "spec.yml"), YAML.stringify({ groups: manifest.spec.groups }));
  const check = promtool(["check", "rules", join(dir, "spec.yml")]);
  t.equal(check.status, 0, check.output);
});

t.test("one CA copied into 500 Secrets raises one alert, and its leaves none", async (t) => {
  if (!requirePromtool(t)) return;
  const copies = 500;
  const day = 86_400;
  const at = 7200; // evaluation time (2h)
  const target = 'job="cert-expiry-exporter",instance="10.0.0.1:9798"';
  const series: { series: string; values: string }[] = [];
  const flat = (value: number): string => `${value}+0x30`; // constant, sampled every 5m up to 2h30m
  // The smallest family set (metrics.certificateFamilies): the two timestamps only.
  const certificate = (labels: string, notBefore: number, notAfter: number): void => {
    series.push({ series: `cert_not_before_timestamp_seconds{${labels}}`, values: flat(notBefore) });
    series.push({ series: `cert_not_after_timestamp_seconds{${labels}}`, values: flat(notAfter) });
  };
  for (let i = 0; i < copies; i++) {
    const location = `${target},source="secret",namespace="ns-${i % 50}",name="app-${i}"`;
    // The issuing intermediate, 3 days left of 5 years, in every Secret's ca.crt ...
    certificate(`${location},key="ca.crt",index="0",subject_cn="Example Intermediate CA",issuer_cn="Example Root CA",serial="1c01",ca="true"`, at - 1822 * day, at + 3 * day);
    // ... beside each Secret's own healthy 90-day leaf.
    const serial = (0x10000 + i).toString(16);
    certificate(`${location},key="tls.crt",index="0",subject_cn="app-${i}.example.com",issuer_cn="Example Intermediate CA",serial="${serial}",ca="false"`, at - 10 * day, at + 80 * day);
  }
  const silent = alertNames.filter((name) => name !== "CACertificateExpiringCritical");
  const unit = {
    rule_files: [RULES],
    evaluation_interval: "5m",
    tests: [
      {
        interval: "5m",
        input_series: [...series, { series: `up{${target}}`, values: flat(1) }],
        alert_rule_test: [
          {
            eval_time: "2h",
            alertname: "CACertificateExpiringCritical",
            exp_alerts: [
              {
                exp_labels: { subject_cn: "Example Intermediate CA", issuer_cn: "Example Root CA", serial: "1c01", ca: "true", severity: "critical" },
                exp_annotations: {
                  summary: "CA certificate Example Intermediate CA expires in 3.0 days",
                  description: `The CA certificate CN=Example Intermediate CA (issuer CN=Example Root CA, serial 1c01) expires in 3.0 days. It is held in ${copies} location(s); this one alert stands for all of them.`,
                  runbook_url: "https://github.com/cert-expiry-exporter/cert-expiry-exporter/blob/main/docs/alerts.md#cacertificateexpiringcritical",
                },
              },
            ],
          },
          ...silent.map((alertname) => ({ eval_time: "2h", alertname, exp_alerts: [] })),
        ],
      },
    ],
  };
  const dir = await mkdtemp(join(tmpdir(), "cee-ca500-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, "ca500.test.yml"), YAML.stringify(unit, { lineWidth: 0 }));
  const run = promtool(["test", "rules", join(dir, "ca500.test.yml")]);
  t.equal(run.status, 0, run.output.slice(0, 4000));
});
