/**
 * Superseded certificates (src/superseded.ts): at one location, every certificate but the newest of
 * those with the same subject, key usage, extended key usage and CA flag is marked with
 * cert_superseded, which the bundled expiry alerts leave out (alerts/tests/superseded.test.yml).
 * Worked out once per location update (locationUpdate, which every source and /probe pass through),
 * sent with every choice of families unless metrics.markSuperseded is false, never for a certificate
 * metrics.leafOnly leaves out; a reload turns it on and off. `check` and the status page say which
 * certificates are superseded. Certificates are made at test time.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t, { type Test } from "tap";
import { makeCert, x509, type CertSpec } from "../scripts/certgen.js";
import { Exporter } from "../src/app.js";
import { parseCertificates } from "../src/certs/parse.js";
import type { CertRecord } from "../src/certs/record.js";
import { validateConfig } from "../src/config.js";
import { CertReadError } from "../src/errors.js";
import { Health } from "../src/health.js";
import { Inventory } from "../src/inventory.js";
import { checkReport } from "../src/check.js";
import { createLogger } from "../src/log.js";
import { MetricsRenderer } from "../src/metrics.js";
import type { Location } from "../src/model.js";
import { renderStatusPage } from "../src/status-page.js";
import { DEFAULT_SELECTION, REQUIRED_FAMILIES, type SeriesSelection } from "../src/series-selection.js";
import { locationUpdate, NO_READ_LIMITS } from "../src/sources/source.js";
import { supersededIndexes } from "../src/superseded.js";

const SERVER_AUTH = "1.3.6.1.5.5.7.3.1";
const CLIENT_AUTH = "1.3.6.1.5.5.7.3.2";
const SIGNING = x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment;
const CA_SIGNING = x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign;

/** One certificate made and read back as the exporter reads it; a TLS server certificate unless the spec says otherwise. */
async function certificate(spec: CertSpec): Promise<{ pem: string; record: CertRecord }> {
  const issued = await makeCert({ keyUsage: SIGNING, extendedKeyUsage: [SERVER_AUTH], ...spec });
  return { pem: issued.pem, record: parseCertificates(issued.der)[0] as CertRecord };
}

const records = (made: { record: CertRecord }[]): CertRecord[] => made.map((each) => each.record);

t.test("grouping: by subject, key usage, extended key usage and CA flag, within one location", async (t) => {
  const old = await certificate({ cn: "web.example.test", notBeforeDays: -80, notAfterDays: 3 });
  const renewed = await certificate({ cn: "web.example.test", notBeforeDays: -1, notAfterDays: 89 });
  t.same(supersededIndexes(records([old, renewed])), [0], "the renewed certificate after the old one: the old one");
  t.same(supersededIndexes(records([renewed, old])), [1], "the order in the bundle does not matter");
  t.equal(supersededIndexes(records([renewed])), undefined, "one certificate: none");
  t.equal(supersededIndexes([]), undefined);

  const clientAuth = await certificate({ cn: "web.example.test", extendedKeyUsage: [CLIENT_AUTH], notBeforeDays: -1 });
  t.equal(supersededIndexes(records([old, clientAuth])), undefined, "same subject, another extended key usage: both kept");
  const bothPurposes = await certificate({ cn: "web.example.test", extendedKeyUsage: [CLIENT_AUTH, SERVER_AUTH] });
  const bothReversed = await certificate({ cn: "web.example.test", extendedKeyUsage: [SERVER_AUTH, CLIENT_AUTH, SERVER_AUTH], notBeforeDays: -3 });
  t.same(supersededIndexes(records([bothPurposes, bothReversed])), [1], "the purposes are a set: order and repeats do not matter");
  const signingOnly = await certificate({ cn: "web.example.test", keyUsage: x509.KeyUsageFlags.digitalSignature, notBeforeDays: -1 });
  t.equal(supersededIndexes(records([old, signingOnly])), undefined, "same subject, another key usage: both kept");
  const other = await certificate({ cn: "api.example.test", notBeforeDays: -1 });
  t.equal(supersededIndexes(records([old, other])), undefined, "another subject: both kept");

  const oldCA = await certificate({ cn: "Example CA", ca: true, keyUsage: CA_SIGNING, extendedKeyUsage: undefined, notBeforeDays: -3650, notAfterDays: 5 });
  const leafNamedLikeCA = await certificate({ cn: "Example CA", keyUsage: CA_SIGNING, extendedKeyUsage: undefined, notBeforeDays: -1 });
  t.equal(supersededIndexes(records([oldCA, leafNamedLikeCA])), undefined, "a CA and a leaf of the same subject and usages: both kept");
  const newCA = await certificate({ cn: "Example CA", ca: true, keyUsage: CA_SIGNING, extendedKeyUsage: undefined, notBeforeDays: -1, notAfterDays: 3650 });
  t.same(supersededIndexes(records([leafNamedLikeCA, oldCA, newCA])), [1], "CAs group with CAs: a root rollover marks the old root");
  t.same(supersededIndexes(records([old, oldCA, renewed, newCA, other])), [0, 1], "two groups at one location, each resolved on its own");

  const noSubject = { ...old.record, subject: "", subjectCN: "" };
  t.equal(supersededIndexes([noSubject, { ...renewed.record, subject: "", subjectCN: "" }]), undefined, "an empty subject names nothing: never grouped");
});

t.test("newest: latest notBefore, then latest notAfter, then the later index", async (t) => {
  const first = await certificate({ cn: "gen.example.test", notBeforeDays: -200, notAfterDays: -110 });
  const second = await certificate({ cn: "gen.example.test", notBeforeDays: -120, notAfterDays: 10 });
  const third = await certificate({ cn: "gen.example.test", notBeforeDays: -2, notAfterDays: 88 });
  t.same(supersededIndexes(records([second, third, first])), [0, 2], "three generations: the two older ones, in index order");
  t.same(supersededIndexes(records([third, first, second])), [1, 2]);

  const notBefore = new Date(Date.now() - 86_400_000);
  const shorter = await certificate({ cn: "tie.example.test", notBefore, notAfterDays: 30 });
  const longer = await certificate({ cn: "tie.example.test", notBefore, notAfterDays: 60 });
  t.same(supersededIndexes(records([longer, shorter])), [1], "the same notBefore: the later notAfter is the newer");
  t.same(supersededIndexes(records([shorter, longer])), [0]);
  const notAfter = new Date(Date.now() + 30 * 86_400_000);
  const twinA = await certificate({ cn: "twin.example.test", notBefore, notAfter });
  const twinB = await certificate({ cn: "twin.example.test", notBefore, notAfter });
  t.same(supersededIndexes(records([twinA, twinB])), [0], "identical dates: the later index is the newer");
  t.same(supersededIndexes(records([twinB, twinA, twinB])), [0, 1], "... also when a copy repeats");
});

t.test("locationUpdate marks them once, as every source and /probe build their updates", async (t) => {
  const old = await certificate({ cn: "web.example.test", notBeforeDays: -80, notAfterDays: 3 });
  const renewed = await certificate({ cn: "web.example.test", notBeforeDays: -1, notAfterDays: 89 });
  const update = locationUpdate(parseCertificates(Buffer.from(renewed.pem + old.pem)), NO_READ_LIMITS, { thresholds: { warningDays: 40 } });
  t.same(update.superseded, [1]);
  t.same(update.thresholds, { warningDays: 40 }, "beside the source's own facts");
  t.notOk("superseded" in locationUpdate(parseCertificates(Buffer.from(renewed.pem)), NO_READ_LIMITS), "absent when none");
  t.notOk("superseded" in locationUpdate(new CertReadError("corrupt_certificate", "broken"), NO_READ_LIMITS), "absent on a read error");
});

/** A bundle in which a renewed leaf (index 0) replaced an old one (index 2), and a new CA (index 3) an old one (index 1). */
async function renewedBundle(): Promise<{ pem: string; certificates: CertRecord[] }> {
  const made = [
    await certificate({ cn: "web.example.test", notBeforeDays: -1, notAfterDays: 89 }),
    await certificate({ cn: "Bundle CA", ca: true, keyUsage: CA_SIGNING, extendedKeyUsage: undefined, notBeforeDays: -3650, notAfterDays: 5 }),
    await certificate({ cn: "web.example.test", notBeforeDays: -80, notAfterDays: 3 }),
    await certificate({ cn: "Bundle CA", ca: true, keyUsage: CA_SIGNING, extendedKeyUsage: undefined, notBeforeDays: -1, notAfterDays: 3650 }),
  ];
  return { pem: made.map((each) => each.pem).join(""), certificates: records(made) };
}

const LOCATION: Location = { source: "secret", namespace: "apps", name: "web-tls", key: "tls.crt" };

/** The inventory's exposition under a selection, as lines. */
async function exposition(certificates: CertRecord[], selection: SeriesSelection): Promise<string[]> {
  const inventory = new Inventory();
  inventory.replace(LOCATION, locationUpdate(certificates, NO_READ_LIMITS));
  const renderer = new MetricsRenderer(inventory, new Health(inventory), { selection: () => selection });
  return Buffer.concat(await renderer.renderCertificates()).toString("utf8").split("\n");
}

/** The identity labels of each sample of `family`, by index. */
function identities(lines: string[], family: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of lines) {
    if (!line.startsWith(`${family}{`)) continue;
    const labels = line.slice(family.length + 1, line.lastIndexOf("}"));
    out.set(/index="(\d+)"/.exec(labels)?.[1] as string, labels);
  }
  return out;
}

t.test("cert_superseded: value 1 with the expiry series' identity labels, one per superseded certificate", async (t) => {
  const { certificates } = await renewedBundle();
  for (const [name, certificateFamilies] of [
    ["the default families", DEFAULT_SELECTION.certificateFamilies],
    ["the smallest families", REQUIRED_FAMILIES],
  ] as const) {
    const lines = await exposition(certificates, { ...DEFAULT_SELECTION, certificateFamilies });
    const superseded = identities(lines, "cert_superseded");
    const notAfter = identities(lines, "cert_not_after_timestamp_seconds");
    t.same([...superseded.keys()].sort(), ["1", "2"], `${name}: the old leaf and the old CA`);
    for (const [index, labels] of superseded) t.equal(labels, notAfter.get(index), `${name}: index ${index} has the labels of its cert_not_after_timestamp_seconds`);
    t.match(superseded.get("2"), /^source="secret",namespace="apps",name="web-tls",key="tls.crt",index="2",subject_cn="web\.example\.test",issuer_cn="web\.example\.test",serial="[0-9a-f]+",ca="false"$/);
    t.ok(lines.filter((line) => line.startsWith("cert_superseded{")).every((line) => line.endsWith("} 1")), `${name}: value 1`);
    t.ok(lines.includes("# TYPE cert_superseded gauge"), `${name}: a gauge`);
  }
});

t.test("leafOnly: a certificate not sent is not marked either; a superseded one sent is", async (t) => {
  const { certificates } = await renewedBundle();
  const leaves = await exposition(certificates, { ...DEFAULT_SELECTION, leafOnly: true });
  t.same([...identities(leaves, "cert_superseded").keys()], ["2"], "leafOnly true: the old CA is not sent, the old leaf is marked");
  t.same([...identities(leaves, "cert_not_after_timestamp_seconds").keys()], ["0", "2"]);
  const first = await exposition(certificates, { ...DEFAULT_SELECTION, leafOnly: "first" });
  t.same([...identities(first, "cert_not_after_timestamp_seconds").keys()], ["0"], 'leafOnly "first": index 0 alone');
  t.notOk(first.some((line) => line.startsWith("cert_superseded")), "the superseded ones are not at index 0: no cert_superseded");
  const oldFirst = await exposition([certificates[2] as CertRecord, certificates[0] as CertRecord], { ...DEFAULT_SELECTION, leafOnly: "first" });
  t.same([...identities(oldFirst, "cert_superseded").keys()], ["0"], 'leafOnly "first" with the old certificate first: it is sent, and marked');
});

t.test("markSuperseded false: no cert_superseded at all, and the certificates are sent as before", async (t) => {
  const { certificates } = await renewedBundle();
  const lines = await exposition(certificates, { ...DEFAULT_SELECTION, markSuperseded: false });
  t.notOk(lines.some((line) => line.includes("cert_superseded")), "neither samples nor HELP and TYPE");
  t.equal(identities(lines, "cert_not_after_timestamp_seconds").size, 4);
});

/** An exporter serving a file that holds the renewed bundle, after its first scan, and a function that scrapes it. */
async function served(t: Test, metrics: unknown): Promise<{ exporter: Exporter; scrape: () => Promise<string[]>; config: (metrics: unknown) => ReturnType<typeof validateConfig> }> {
  const dir = await mkdtemp(join(tmpdir(), "cee-superseded-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, "bundle.pem"), (await renewedBundle()).pem);
  const config = (metrics: unknown) => validateConfig({ listen: { address: "127.0.0.1", port: 0 }, logLevel: "silent", metrics, sources: { files: [{ paths: [join(dir, "*.pem")] }] } });
  const exporter = await Exporter.create(config(metrics), createLogger("silent"));
  const address = await exporter.serve();
  t.teardown(() => exporter.close());
  await exporter.scanOnce();
  const scrape = async () => (await (await fetch(`${address}/metrics`)).text()).split("\n");
  return { exporter, scrape, config };
}

t.test("a file source's bundle, served; a reload turns the marks off and on again", async (t) => {
  const { exporter, scrape, config } = await served(t, undefined);
  t.same([...identities(await scrape(), "cert_superseded").keys()].sort(), ["1", "2"], "on by default");
  t.same((await exporter.reconfigure(config({ markSuperseded: false }))).restartRequired, [], "metrics.markSuperseded is reloadable");
  t.equal(identities(await scrape(), "cert_superseded").size, 0, "off from the next scrape");
  await exporter.reconfigure(config({ markSuperseded: true, certificateFamilies: [...REQUIRED_FAMILIES] }));
  t.equal(identities(await scrape(), "cert_superseded").size, 2, "on again, with the smallest families");
});

t.test("check and the status page say which certificates are superseded", async (t) => {
  const { certificates } = await renewedBundle();
  const inventory = new Inventory();
  inventory.replace(LOCATION, locationUpdate(certificates, NO_READ_LIMITS));
  const json = JSON.parse(checkReport(inventory, { warnDays: 28, format: "json", failOnReadErrors: true }).output) as { index: number; superseded: boolean }[];
  t.same(
    json.map((item) => [item.index, item.superseded]).sort(),
    [
      [0, false],
      [1, true],
      [2, true],
      [3, false],
    ],
    "check --output json: superseded per certificate",
  );
  const table = checkReport(inventory, { warnDays: 28, format: "table", failOnReadErrors: true }).output;
  t.match(table, /^3\.0\s+critical \(superseded\)\s+secret\s+apps\/web-tls\/tls\.crt\s+2\s+web\.example\.test/m, "check's table: the old leaf");
  t.match(table, /^89\.0\s+ok\s+secret\s+apps\/web-tls\/tls\.crt\s+0\s+web\.example\.test/m, "... and not its renewal");
  t.equal(checkReport(inventory, { warnDays: 28, format: "table", failOnReadErrors: true }).exitCode, 1, "counted by default, as before");
  const marked = checkReport(inventory, { warnDays: 28, format: "table", failOnReadErrors: true, countSuperseded: false });
  t.equal(marked.exitCode, 0, "with the marks on (metrics.markSuperseded), the old leaf beside its renewal does not fail the check");
  t.match(marked.output, "0 expired or expiring within 28 days", "nor count as expiring");
  const page = renderStatusPage(inventory, { version: "test", query: {}, rows: 10, now: Date.now() / 1000 }).body;
  const markedRows = [...page.matchAll(/<tr class="[a-z_]+">.*?<td class="more num">(\d+)<\/td><\/tr>/g)].filter((row) => row[0].includes("(superseded: a newer one is here)")).map((row) => row[1]);
  t.same(markedRows.sort(), ["1", "2"], "the status page marks the two old certificates");
});
