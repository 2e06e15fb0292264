/**
 * End to end with real components, all started here on loopback with free ports:
 *
 *   the exporter (src/cli.ts serve --file '<dir>/*.pem') on generated certificates
 *   → Prometheus (/usr/bin/prometheus, 1 s scrape and rule evaluation, the bundled rules)
 *   → Alertmanager (/usr/bin/prometheus-alertmanager, 1 s group_wait)
 *   → a webhook receiver in this test.
 *
 * It asserts the exact set of alerts that reaches the receiver (names and key labels), that no
 * healthy certificate raises any, and then runs every dashboard panel's query against that
 * Prometheus: each must parse, and return data unless the fixture cannot have any (listed below).
 * The whole run is made twice: with the default per-certificate families and with the smallest set
 * (metrics.certificateFamilies), which must give the same alerts and the same dashboards.
 *
 * The rules are the shipped file with one change: every `for:` is shortened to 5 s, so a run takes
 * seconds instead of hours. The production durations are covered by the promtool cases in
 * alerts/tests/.
 *
 * Determinism: Prometheus starts without rules, and they are loaded (POST /-/reload) only once its
 * first scrape of the exporter has stored `up` and the certificate series. Its scrape manager applies
 * discovered targets on a 5 s tick, so rules evaluated from start-up would see no `up` at all for
 * several seconds on a busy machine, and CertExpiryExporterAbsent would fire for a moment that a
 * production `for: 15m` never would. Scrapes get 2 s (interval and timeout) so that a slow moment of
 * the machine does not fail a scrape, mark every series stale and make alerts flap.
 */
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t, { type Test } from "tap";
import YAML from "yaml";
import { makeCert, makeChain, privateKeyPem } from "../scripts/certgen.js";
import { ROOT, RULES_SOURCE } from "../scripts/gen-artifacts.js";
import { CERTIFICATE_FAMILY_NAMES, DEFAULT_SELECTION, REQUIRED_FAMILIES, type SeriesSelection } from "../src/series-selection.js";
import { allPanels, readDashboards, substituteVariables } from "./helpers/grafana.js";
import { freePort } from "./helpers/net.js";
import { getJson, missing, plainNode, PROMETHEUS, sleep, start, startPrometheus, stop, waitFor, type Started } from "./helpers/processes.js";

const ALERTMANAGER = "/usr/bin/prometheus-alertmanager";
const CLI = join(ROOT, "src/cli.ts");
const E2E_FOR = "5s";
const RECEIVE_TIMEOUT_MS = 90_000;
/** After the expected set is complete, how long to keep listening for anything unexpected. */
const SETTLE_MS = 8_000;

interface WebhookAlert {
  status: "firing" | "resolved";
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

/**
 * Panels whose data cannot exist in a file-only fixture; their queries must still parse and run.
 * Endpoint series need the endpoint source, relists and watch restarts a Kubernetes source, the
 * ConfigMap, caBundle and CSR tables those sources, stale locations a refused Kubernetes scope.
 */
const NO_DATA_IN_FIXTURE: Record<string, "all" | string[]> = {
  "cert-expiry-endpoints.json": "all",
  "cert-expiry-overview.json": ["ConfigMaps", "caBundles, by kind and webhook", "CSRs, by signer", "Issued certificates, by signer", "Stale locations: last-known certificates"],
  "cert-expiry-exporter-health.json": ["Relists and watch restarts"],
};

/** The family choices the alerts and dashboards must work with: the default and the smallest. */
const SELECTIONS: { name: string; metrics: SeriesSelection }[] = [
  { name: "default families", metrics: DEFAULT_SELECTION },
  { name: "smallest families", metrics: { certificateFamilies: REQUIRED_FAMILIES, infoLabels: [], leafOnly: false, markSuperseded: true } },
];

for (const selection of SELECTIONS) {
  t.test(`${selection.name}: alerts reach Alertmanager's receiver exactly, and every dashboard query runs`, (t) => endToEnd(t, selection.metrics));
}

async function endToEnd(t: Test, metrics: SeriesSelection): Promise<void> {
  for (const binary of [PROMETHEUS, ALERTMANAGER]) {
    if (missing(binary)) {
      t.fail(`${binary} is not installed: apt-get install prometheus prometheus-alertmanager (CI installs them); this test never skips`);
      return;
    }
  }
  const began = Date.now();
  const dir = await mkdtemp(join(tmpdir(), "cee-e2e-"));
  const certs = join(dir, "certs");
  await mkdir(certs);
  const started: Started[] = [];
  // --- webhook receiver ----------------------------------------------------------------------
  const received: WebhookAlert[] = [];
  const receiver = createHttpServer((request: IncomingMessage, response: ServerResponse) => {
    let body = "";
    request.on("data", (chunk: Buffer) => (body += chunk.toString()));
    request.on("end", () => {
      try {
        received.push(...((JSON.parse(body) as { alerts: WebhookAlert[] }).alerts ?? []));
      } catch {
        // counted below as a missing alert
      }
      response.writeHead(200).end("ok");
    });
  });
  t.teardown(async () => {
    for (const child of started.reverse()) await stop(child);
    await new Promise<void>((resolve) => (receiver.listening ? receiver.close(() => resolve()) : resolve()));
    await rm(dir, { recursive: true, force: true });
  });

  // --- certificates --------------------------------------------------------------------------
  const write = async (file: string, pem: string): Promise<string> => {
    const path = join(certs, file);
    await writeFile(path, pem);
    return path;
  };
  const expired = await write("expired.pem", (await makeCert({ cn: "expired.e2e.test", notBeforeDays: -100, notAfterDays: -2 })).pem);
  const critical = await write("critical-3d.pem", (await makeCert({ cn: "critical.e2e.test", notBeforeDays: -87, notAfterDays: 3 })).pem);
  const warning = await write("warning-20d.pem", (await makeCert({ cn: "warning.e2e.test", notBeforeDays: -345, notAfterDays: 20 })).pem);
  const overdue = await write("overdue-90d.pem", (await makeCert({ cn: "overdue.e2e.test", notBeforeDays: -65, notAfterDays: 25 })).pem);
  const future = await write("future.pem", (await makeCert({ cn: "future.e2e.test", notBeforeDays: 2, notAfterDays: 92 })).pem);
  const broken = await write("broken.pem", "this is not a certificate\n");
  // One intermediate CA with 20 days left, copied into three files: one alert, not three.
  const copiedCa = await makeCert({ cn: "Copied Intermediate CA", ca: true, notBeforeDays: -1800, notAfterDays: 20 });
  for (const n of [1, 2, 3]) await write(`ca-copy-${n}.pem`, copiedCa.pem);
  const copiedFingerprint = createHash("sha256").update(copiedCa.der).digest("hex");
  // Healthy certificates of every lifetime: none may raise anything.
  const chain = await makeChain("healthy-chain.e2e.test", 60);
  const healthy = [
    await write("healthy-1y.pem", (await makeCert({ cn: "healthy-1y.e2e.test", notBeforeDays: -100, notAfterDays: 265 })).pem),
    await write("healthy-90d.pem", (await makeCert({ cn: "healthy-90d.e2e.test", notBeforeDays: -1, notAfterDays: 89 })).pem),
    await write("healthy-90d-renewed-soon.pem", (await makeCert({ cn: "healthy-90d-b.e2e.test", notBeforeDays: -59, notAfterDays: 31 })).pem),
    await write("healthy-47d.pem", (await makeCert({ cn: "healthy-47d.e2e.test", notBeforeDays: -27, notAfterDays: 20 })).pem),
    await write("healthy-24h.pem", (await makeCert({ cn: "healthy-24h.e2e.test", notBeforeDays: -4 / 24, notAfterDays: 20 / 24 })).pem),
    await write("healthy-chain.pem", chain.leaf.pem + chain.intermediate.pem + chain.root.pem),
  ];

  // Presented certificates (a group with a private key path): one whose key is another's, one whose
  // bundle is out of order, one healthy and one self-signed; the last two raise nothing.
  const presented = join(dir, "presented");
  await mkdir(presented);
  const put = async (stem: string, pem: string, key: string): Promise<string> => {
    await writeFile(join(presented, `${stem}.key`), key);
    await writeFile(join(presented, `${stem}.crt`), pem);
    return join(presented, `${stem}.crt`);
  };
  const presentedChain = await makeChain("presented.e2e.test", 80);
  const stranger = await makeCert({ cn: "stranger.e2e.test", key: "rsa-2048" });
  const mismatched = await put("mismatched", presentedChain.leaf.pem + presentedChain.intermediate.pem, await privateKeyPem(stranger));
  const reversed = await put("reversed", presentedChain.intermediate.pem + presentedChain.leaf.pem, await privateKeyPem(presentedChain.leaf));
  await put("healthy", presentedChain.leaf.pem + presentedChain.intermediate.pem, await privateKeyPem(presentedChain.leaf));
  const selfSigned = await makeCert({ cn: "self-signed.e2e.test", notBeforeDays: -1, notAfterDays: 89 });
  await put("self-signed", selfSigned.pem, await privateKeyPem(selfSigned));
  const trustBundle = join(dir, "trust.pem");
  await writeFile(trustBundle, presentedChain.root.pem);

  await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
  const receiverPort = (receiver.address() as AddressInfo).port;

  // --- exporter ------------------------------------------------------------------------------
  const exporterPort = await freePort();
  const exporterConfig = join(dir, "exporter.yml");
  await writeFile(
    exporterConfig,
    YAML.stringify({ metrics, checks: { publicRoots: false, trustBundles: [trustBundle] }, sources: { files: [{ paths: [join(presented, "*.crt")], privateKey: "{dir}/{stem}.key" }] } }),
  );
  const exporter = start("exporter", ...plainNode([
    "--import",
    "tsx",
    CLI,
    "serve",
    "--listen-address",
    "127.0.0.1",
    "--port",
    String(exporterPort),
    "--log-level",
    "warn",
    "--config",
    exporterConfig,
    "--file",
    join(certs, "*.pem"),
  ]));
  started.push(exporter);
  await waitFor("exporter /metrics", 60_000, async () => (await fetch(`http://127.0.0.1:${exporterPort}/metrics`)).ok, exporter);

  // --- Alertmanager --------------------------------------------------------------------------
  const alertmanagerPort = await freePort();
  await mkdir(join(dir, "alertmanager"));
  await writeFile(
    join(dir, "alertmanager.yml"),
    YAML.stringify({
      route: { receiver: "test", group_by: ["..."], group_wait: "1s", group_interval: "1s", repeat_interval: "1h" },
      receivers: [{ name: "test", webhook_configs: [{ url: `http://127.0.0.1:${receiverPort}/alerts`, send_resolved: true }] }],
    }),
  );
  const alertmanager = start("alertmanager", ALERTMANAGER, [
    `--config.file=${join(dir, "alertmanager.yml")}`,
    `--storage.path=${join(dir, "alertmanager")}`,
    `--web.listen-address=127.0.0.1:${alertmanagerPort}`,
    "--cluster.listen-address=",
    "--log.level=warn",
  ]);
  started.push(alertmanager);
  await waitFor("alertmanager", 30_000, async () => (await fetch(`http://127.0.0.1:${alertmanagerPort}/-/ready`)).ok, alertmanager);

  // --- Prometheus ----------------------------------------------------------------------------
  const rules = YAML.parse(await readFile(join(ROOT, RULES_SOURCE), "utf8")) as { groups: { rules: { for?: string }[] }[] };
  for (const group of rules.groups) for (const rule of group.rules) if (rule.for !== undefined) rule.for = E2E_FOR;
  await writeFile(join(dir, "rules.yml"), YAML.stringify(rules));
  const prometheusPort = await freePort();
  const prometheusConfig = (ruleFiles: string[]): string =>
    YAML.stringify({
      global: { scrape_interval: "2s", evaluation_interval: "1s", scrape_timeout: "2s" },
      rule_files: ruleFiles,
      alerting: { alertmanagers: [{ static_configs: [{ targets: [`127.0.0.1:${alertmanagerPort}`] }] }] },
      scrape_configs: [{ job_name: "cert-expiry-exporter", honor_labels: true, static_configs: [{ targets: [`127.0.0.1:${exporterPort}`] }] }],
    });
  await writeFile(join(dir, "prometheus.yml"), prometheusConfig([]));
  const prometheus = startPrometheus(join(dir, "prometheus.yml"), join(dir, "prometheus"), prometheusPort, [
    "--web.enable-lifecycle",
    // A firing alert is sent at once and then every resend delay (1 m by default); after the rules'
    // reload the Alertmanager target may not be ready for the first send.
    "--rules.alert.resend-delay=1s",
  ]);
  started.push(prometheus);
  const api = `http://127.0.0.1:${prometheusPort}/api/v1`;
  await waitFor("prometheus", 30_000, async () => (await fetch(`http://127.0.0.1:${prometheusPort}/-/ready`)).ok, prometheus);
  const instant = async (expr: string): Promise<unknown[]> =>
    (await getJson<{ data?: { result: unknown[] } }>(`${api}/query?query=${encodeURIComponent(expr)}`)).data?.result ?? [];
  await waitFor(
    "the first successful scrape of the exporter",
    60_000,
    async () => (await instant('up{job="cert-expiry-exporter"} == 1')).length > 0 && (await instant("cert_not_after_timestamp_seconds")).length > 0,
    prometheus,
  );
  await writeFile(join(dir, "prometheus.yml"), prometheusConfig([join(dir, "rules.yml")]));
  const reload = await fetch(`http://127.0.0.1:${prometheusPort}/-/reload`, { method: "POST", signal: AbortSignal.timeout(10_000) });
  t.equal(reload.status, 200, `Prometheus loaded the rules: ${await reload.text()}`);
  t.comment(`components up after ${Date.now() - began} ms`);

  // --- the alerts that must reach the receiver ------------------------------------------------
  const key = (alert: { labels: Record<string, string> }): string =>
    [alert.labels.alertname, alert.labels.name ?? (alert.labels.ca === "true" ? alert.labels.subject_cn : alert.labels.instance) ?? "", alert.labels.severity].join(" | ");
  const expected = new Map<string, Record<string, string>>([
    [`CertificateExpired | ${expired} | critical`, { subject_cn: "expired.e2e.test", source: "file" }],
    [`CertificateExpiringCritical | ${critical} | critical`, { subject_cn: "critical.e2e.test", source: "file" }],
    [`CertificateExpiringSoon | ${warning} | warning`, { subject_cn: "warning.e2e.test", source: "file" }],
    [`CertificateRenewalOverdue | ${overdue} | warning`, { subject_cn: "overdue.e2e.test", source: "file" }],
    [`CertificateNotYetValid | ${future} | warning`, { subject_cn: "future.e2e.test", source: "file" }],
    [`CertificateReadErrors | ${broken} | warning`, { reason: "not_pem_or_der", source: "file" }],
    [`CACertificateExpiringSoon | Copied Intermediate CA | warning`, { subject_cn: "Copied Intermediate CA", ca: "true" }],
    [`CertificatePrivateKeyMismatch | ${mismatched} | critical`, { status: "mismatch", source: "file" }],
    [`CertificateChainProblem | ${reversed} | warning`, { problem: "wrong_order", source: "file" }],
  ]);
  const firing = (): Map<string, WebhookAlert> => new Map(received.filter((alert) => alert.status === "firing").map((alert) => [key(alert), alert]));
  const receivedAll = async (): Promise<boolean> => [...expected.keys()].every((k) => firing().has(k));
  const waitStart = Date.now();
  try {
    await waitFor("the expected alerts at the receiver", RECEIVE_TIMEOUT_MS, receivedAll);
  } catch {
    // reported by the assertions below, with what did arrive
  }
  const allAfter = Date.now() - waitStart;
  t.comment(`every expected alert received ${allAfter} ms after Prometheus was ready (${Date.now() - began} ms from the start)`);
  await sleep(SETTLE_MS);

  const got = firing();
  t.same([...got.keys()].sort(), [...expected.keys()].sort(), "exactly the expected alerts reached the receiver");
  for (const [k, labels] of expected) {
    const alert = got.get(k);
    if (!alert) continue;
    t.match(alert.labels, labels, `${k}: key labels`);
    t.ok(alert.annotations.summary && alert.annotations.description && alert.annotations.runbook_url, `${k}: annotations`);
  }
  t.notOk(
    received.some((alert) => healthy.includes(alert.labels.name ?? "") || /healthy/.test(alert.labels.subject_cn ?? "")),
    "no healthy certificate raised an alert",
  );
  t.same(
    received.filter((alert) => alert.status === "resolved").map(key),
    [],
    "nothing fired and resolved (no flapping)",
  );
  const copies = got.get(`CACertificateExpiringSoon | Copied Intermediate CA | warning`);
  t.match(copies?.annotations.description, "held in 3 location(s)", "the CA alert counts its three copies");
  if (metrics.certificateFamilies.includes("cert_info")) t.match(copies?.annotations.description, `SHA-256 ${copiedFingerprint}`, "and names its fingerprint from cert_info");
  else t.notMatch(copies?.annotations.description, "SHA-256", "without cert_info, no fingerprint");

  // Prometheus agrees: the same alerts are firing there, nothing else pending or firing.
  const active = await getJson<{ data: { alerts: { labels: Record<string, string>; state: string }[] } }>(`${api}/alerts`);
  t.same(
    active.data.alerts.map((alert) => `${key(alert)} | ${alert.state}`).sort(),
    [...expected.keys()].map((k) => `${k} | firing`).sort(),
    "Prometheus's active alerts are the same set",
  );

  // --- every dashboard panel's query against this Prometheus ----------------------------------
  let queries = 0;
  for (const { file, dashboard } of await readDashboards()) {
    const noData = NO_DATA_IN_FIXTURE[file];
    for (const panel of allPanels(dashboard.panels)) {
      for (const target of panel.targets ?? []) {
        const expr = substituteVariables(target.expr ?? "");
        const body = await getJson<{ status: string; error?: string; data?: { result: unknown[] } }>(`${api}/query?query=${encodeURIComponent(expr)}`);
        queries++;
        const what = `${file} "${panel.title ?? ""}" ${target.refId ?? ""}`;
        t.equal(body.status, "success", `${what} runs${body.error ? `: ${body.error}` : ""}`);
        const mayBeEmpty = noData === "all" || (Array.isArray(noData) && noData.includes(panel.title ?? ""));
        if (!mayBeEmpty) t.ok((body.data?.result.length ?? 0) > 0, `${what} returns data`);
      }
    }
    // The variables' label_values() queries, as Grafana runs them: through the series API.
    const templating = dashboard.templating;
    for (const variable of templating.list.filter((v) => v.type === "query")) {
      const match = /^label_values\((?:(.+),\s*)?(\w+)\)$/.exec(variable.definition ?? "");
      t.ok(match, `${file}: variable ${variable.definition} is label_values()`);
      if (!match) continue;
      const selector = match[1] ? `&match[]=${encodeURIComponent(substituteVariables(match[1]))}` : "";
      const body = await getJson<{ status: string }>(`${api}/label/${match[2]}/values?${selector.slice(1)}`);
      t.equal(body.status, "success", `${file}: variable ${variable.definition} runs`);
    }
  }
  t.ok(queries > 40, `${queries} panel queries ran`);

  // --- Prometheus stored the selected families and nothing else ---------------------------------
  for (const family of CERTIFICATE_FAMILY_NAMES) {
    const stored = (await instant(`count(${family})`)).length > 0;
    t.equal(stored, metrics.certificateFamilies.includes(family), `${family} ${stored ? "is" : "is not"} stored`);
  }
  t.comment(`end to end: ${Date.now() - began} ms`);
}
