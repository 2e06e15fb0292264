/**
 * Choosing the per-certificate series (`metrics:` in the configuration, src/series-selection.ts):
 * which families, which heavy cert_info labels, leaf certificates only (not CAs, or the first of each
 * location). Checked on a real exporter's
 * /metrics over files made at test time, and across a reload. test/alerts-e2e.test.ts proves the
 * bundled alerts and dashboards with the default and the smallest set against a real Prometheus.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t, { type Test } from "tap";
import { makeChain } from "../scripts/certgen.js";
import { Exporter } from "../src/app.js";
import { ConfigError, validateConfig } from "../src/config.js";
import { createLogger } from "../src/log.js";
import { CERTIFICATE_FAMILY_NAMES, DEFAULT_FAMILIES, OPTIONAL_INFO_LABELS, REQUIRED_FAMILIES } from "../src/series-selection.js";

/** A directory with a leaf-intermediate-root chain in one file (root first when asked) and a file that is no certificate. */
async function fixture(t: Test, order: "leaf-first" | "root-first" = "leaf-first"): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "cee-selection-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const chain = await makeChain("selected.test");
  const pems = [chain.leaf.pem, chain.intermediate.pem, chain.root.pem];
  await writeFile(join(dir, "chain.pem"), (order === "leaf-first" ? pems : pems.reverse()).join(""));
  await writeFile(join(dir, "broken.pem"), "not a certificate\n");
  return dir;
}

function configFor(dir: string, metrics: unknown) {
  return validateConfig({ listen: { address: "127.0.0.1", port: 0 }, logLevel: "silent", metrics, sources: { files: [{ paths: [join(dir, "*.pem")] }] } });
}

/** A served exporter over the fixture, after its first scan, and a function that scrapes it. */
async function served(t: Test, dir: string, metrics: unknown): Promise<{ exporter: Exporter; scrape: () => Promise<string[]> }> {
  const exporter = await Exporter.create(configFor(dir, metrics), createLogger("silent"));
  const address = await exporter.serve();
  t.teardown(() => exporter.close());
  await exporter.scanOnce();
  const scrape = async () => (await (await fetch(`${address}/metrics`)).text()).split("\n").filter((line) => line.startsWith("cert_"));
  return { exporter, scrape };
}

/** The names of the families with samples. */
const familiesOf = (lines: string[]): string[] => [...new Set(lines.map((line) => line.slice(0, line.indexOf("{"))))];
const perCertificate = (lines: string[]): string[] => familiesOf(lines).filter((name) => (CERTIFICATE_FAMILY_NAMES as readonly string[]).includes(name));

t.test("the configuration: defaults, and the two dates cannot be left out", async (t) => {
  const defaults = validateConfig({}).metrics;
  t.same(defaults, { certificateFamilies: [...DEFAULT_FAMILIES], infoLabels: [], leafOnly: false, markSuperseded: true }, "three families, light cert_info, every certificate, superseded ones marked");
  t.same(DEFAULT_FAMILIES, ["cert_not_after_timestamp_seconds", "cert_not_before_timestamp_seconds", "cert_info"]);
  t.same(validateConfig({ metrics: { certificateFamilies: [...REQUIRED_FAMILIES] } }).metrics.certificateFamilies, [...REQUIRED_FAMILIES], "the smallest set is allowed");
  for (const left of REQUIRED_FAMILIES) {
    const families = CERTIFICATE_FAMILY_NAMES.filter((name) => name !== left);
    t.throws(() => validateConfig({ metrics: { certificateFamilies: families } }), new ConfigError(`metrics.certificateFamilies: must include ${REQUIRED_FAMILIES.join(" and ")}: every bundled alert and dashboard reads them`), `without ${left}: refused`);
  }
  t.throws(() => validateConfig({ metrics: { certificateFamilies: [...REQUIRED_FAMILIES, "cert_days"] } }), /metrics\.certificateFamilies\[2\]/, "an unknown family is named by its place");
  t.throws(() => validateConfig({ metrics: { infoLabels: ["subject", "fingerprint_sha256"] } }), /metrics\.infoLabels\[1\]/, "only the heavy labels are optional");
  t.throws(() => validateConfig({ metrics: { certificateFamilies: Array(20).fill("cert_info") } }), /metrics\.certificateFamilies/, "a list is bounded");
  t.equal(validateConfig({ metrics: { leafOnly: "first" } }).metrics.leafOnly, "first");
  for (const wrong of ["yes", "last", 0]) t.throws(() => validateConfig({ metrics: { leafOnly: wrong } }), new ConfigError('metrics.leafOnly: expected true, false or "first"'), `leafOnly ${JSON.stringify(wrong)} is refused`);
  t.throws(() => validateConfig({ metrics: { markSuperseded: "no" } }), /metrics\.markSuperseded: expected boolean/);
});

t.test("the default set: three series per certificate, cert_info without subject, issuer and SANs", async (t) => {
  const { scrape } = await served(t, await fixture(t), undefined);
  const lines = await scrape();
  t.same(perCertificate(lines), [...DEFAULT_FAMILIES], "the default families, in the contract's order");
  t.equal(lines.filter((line) => line.startsWith("cert_not_after_timestamp_seconds{")).length, 3, "every certificate of the chain");
  const info = lines.filter((line) => line.startsWith("cert_info{"));
  t.equal(info.length, 3);
  for (const line of info) {
    t.match(line, /fingerprint_sha256="[0-9a-f]{64}",key_algorithm="[^"]+",key_bits="\d+",signature_algorithm="[^"]+"\} 1$/, "the light labels");
    t.notMatch(line, /\b(subject|issuer|sans)=/, "no heavy label");
  }
  t.ok(lines.some((line) => line.startsWith("cert_read_errors{") && line.includes("broken.pem")), "read errors are not per-certificate: always sent");
});

t.test("the smallest set: the two dates only", async (t) => {
  const { scrape } = await served(t, await fixture(t), { certificateFamilies: [...REQUIRED_FAMILIES] });
  const lines = await scrape();
  t.same(perCertificate(lines), [...REQUIRED_FAMILIES]);
  t.equal(lines.filter((line) => line.startsWith("cert_not_before_timestamp_seconds{")).length, 3);
  t.ok(lines.some((line) => line.startsWith("cert_read_errors{")), "read errors still sent");
});

t.test("every family and heavy label, when chosen", async (t) => {
  const { scrape } = await served(t, await fixture(t), { certificateFamilies: [...CERTIFICATE_FAMILY_NAMES].reverse(), infoLabels: [...OPTIONAL_INFO_LABELS] });
  const lines = await scrape();
  t.same(perCertificate(lines), [...CERTIFICATE_FAMILY_NAMES], "the contract's order, whatever the order configured");
  const leafInfo = lines.find((line) => line.startsWith("cert_info{") && line.includes('index="0"'));
  t.match(leafInfo, /fingerprint_sha256="[0-9a-f]{64}",subject="CN=selected\.test",issuer="CN=[^"]+",sans="[^"]*",key_algorithm=/, "subject, issuer and sans between the fingerprint and the key");
});

t.test("leafOnly: CA certificates are not sent, and a leaf keeps its index", async (t) => {
  const { scrape } = await served(t, await fixture(t), { leafOnly: true });
  const lines = await scrape();
  const certificateLines = lines.filter((line) => perCertificate([line]).length > 0);
  t.equal(certificateLines.length, DEFAULT_FAMILIES.length, "one series per family: the leaf's");
  for (const line of certificateLines) t.match(line, /index="0",subject_cn="selected\.test",issuer_cn="[^"]+",serial="[0-9a-f]+",ca="false"/);
  t.ok(lines.some((line) => line.startsWith("cert_read_errors{")), "a location's read errors are still sent");
});

t.test('leafOnly "first": only index 0 of each location, whatever it is', async (t) => {
  const { scrape } = await served(t, await fixture(t), { leafOnly: "first" });
  const lines = await scrape();
  const certificateLines = lines.filter((line) => perCertificate([line]).length > 0);
  t.equal(certificateLines.length, DEFAULT_FAMILIES.length, "one series per family: the first certificate's");
  for (const line of certificateLines) t.match(line, /index="0",subject_cn="selected\.test",/);
  t.ok(lines.some((line) => line.startsWith("cert_read_errors{")), "a location's read errors are still sent");
  const { scrape: rootFirst } = await served(t, await fixture(t, "root-first"), { leafOnly: "first" });
  const rootLines = (await rootFirst()).filter((line) => perCertificate([line]).length > 0);
  t.equal(rootLines.length, DEFAULT_FAMILIES.length);
  for (const line of rootLines) t.match(line, /index="0",subject_cn="Test Root CA",[^}]*ca="true"/, "a CA at index 0 is sent: the place decides, not the kind");
});

t.test("a reload changes the series of the next scrape", async (t) => {
  const dir = await fixture(t);
  const { exporter, scrape } = await served(t, dir, undefined);
  t.same(perCertificate(await scrape()), [...DEFAULT_FAMILIES]);
  const { restartRequired } = await exporter.reconfigure(configFor(dir, { certificateFamilies: [...REQUIRED_FAMILIES, "cert_expires_in_days"], infoLabels: ["sans"] }));
  t.same(restartRequired, [], "metrics is reloadable");
  const after = await scrape();
  t.same(perCertificate(after), [...REQUIRED_FAMILIES, "cert_expires_in_days"]);
  t.equal(after.filter((line) => line.startsWith("cert_expires_in_days{")).length, 3);
});
