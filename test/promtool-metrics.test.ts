/**
 * The exposition against Prometheus's own tools, on a /metrics body in which every family has
 * samples: certificates and read errors from files, and what only Secrets, ConfigMaps, endpoints and
 * discovery produce (per-Secret thresholds, cert-manager links, a stale location, every endpoint
 * family, relists and watch restarts) put into the inventory and the health metrics as those sources
 * would.
 *
 * - `promtool check metrics` finds nothing but the documented note on `cert_expires_in_days`;
 * - every family src/metrics.ts declares, and every metric src/health.ts registers, has a sample in
 *   that body, so a new family cannot escape the lint;
 * - names do not depend on what was scraped before: text, then OpenMetrics, then text again from the
 *   same process give the same series, and the OpenMetrics body parses with Prometheus's parser;
 * - the alert rules, their unit tests and the dashboards name only series the body has.
 */
import { spawnSync } from "node:child_process";
import { mkdir, mkdtemp, open, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PerformanceObserver } from "node:perf_hooks";
import t, { type Test } from "tap";
import { makeCert, makeChain } from "../scripts/certgen.js";
import { DASHBOARD_DIR, ROOT, RULES_SOURCE } from "../scripts/gen-artifacts.js";
import { Exporter } from "../src/app.js";
import { validateConfig } from "../src/config.js";
import { CERTIFICATE_FAMILY_NAMES, OPTIONAL_INFO_LABELS } from "../src/series-selection.js";
import { createLogger } from "../src/log.js";
import { locationUpdate, NO_READ_LIMITS } from "../src/sources/source.js";
import { record } from "./helpers/records.js";

/** The one finding allowed: the headline gauge counts days, not seconds, on purpose (README, Metrics). */
const ALLOWED_FINDING = "cert_expires_in_days ";
const TEXT = "text/plain";
const OPENMETRICS = "application/openmetrics-text; version=1.0.0";

function promtool(args: string[], input?: string): { status: number | null; output: string; missing: boolean } {
  const run = spawnSync("promtool", args, { input, encoding: "utf8", timeout: 60_000 });
  const missing = (run.error as NodeJS.ErrnoException | undefined)?.code === "ENOENT";
  return { status: run.status, output: `${run.stdout ?? ""}${run.stderr ?? ""}`, missing };
}

/** The series name of every sample line. */
function sampleNames(body: string): string[] {
  return body
    .split("\n")
    .filter((line) => line && !line.startsWith("#"))
    .map((line) => line.split(/[{ ]/)[0] as string);
}

/** Samples per family, a family being what its `# TYPE` line names; a sample belongs to the family above it. */
function samplesPerFamily(body: string): Map<string, number> {
  const families = new Map<string, number>();
  let current = "";
  for (const line of body.split("\n")) {
    if (line.startsWith("# TYPE ")) {
      current = line.split(" ")[2] as string;
      families.set(current, 0);
    } else if (line && !line.startsWith("#")) {
      families.set(current, (families.get(current) ?? 0) + 1);
    }
  }
  return families;
}

/** The families src/metrics.ts renders, read from its source so that one added later is covered too. */
async function rendererFamilies(): Promise<string[]> {
  const source = await readFile(join(ROOT, "src/metrics.ts"), "utf8");
  return [...source.matchAll(/^\s+name: "(cert_[a-z0-9_]+)",$/gm)].map((match) => match[1] as string);
}

/** An exporter on files, with what the other sources would add, and its bodies fetched in this order. */
async function scrapeEverything(t: Test, order: string[]): Promise<{ exporter: Exporter; bodies: string[] }> {
  const dir = await mkdtemp(join(tmpdir(), "cee-promtool-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const chain = await makeChain("lint.test");
  await writeFile(join(dir, "chain.pem"), chain.leaf.pem + chain.intermediate.pem + chain.root.pem);
  await writeFile(join(dir, "odd.pem"), (await makeCert({ subject: 'CN=quote" back\\\\ line\\0A', notAfterDays: -1 })).pem);
  await writeFile(join(dir, "bad.pem"), "garbage");
  const exporter = await Exporter.create(
    validateConfig({
      listen: { address: "127.0.0.1", port: 0 },
      // Every family and cert_info label, so that promtool sees them all.
      metrics: { certificateFamilies: [...CERTIFICATE_FAMILY_NAMES], infoLabels: [...OPTIONAL_INFO_LABELS] },
      // With a private key path, every file is presented: key and chain series have samples (no key: `missing`).
      sources: { files: [{ paths: [join(dir, "*.pem")], privateKey: "{dir}/{stem}.key" }] },
    }),
    createLogger("silent"),
  );
  await exporter.serve();
  t.teardown(() => exporter.close());
  await exporter.scanOnce();

  const { inventory, health } = exporter;
  inventory.replace({ source: "secret", namespace: "shop", name: "web-tls", key: "tls.crt" }, {
    certificates: [record({ subjectCN: "shop.example.test" })],
    thresholds: { warningDays: 45, criticalDays: 14 },
    certManager: { certificateName: "web", issuerName: "letsencrypt", issuerKind: "ClusterIssuer" },
  });
  // A namespace whose ConfigMaps the exporter may no longer list: its last-known CA, marked stale.
  const stale = { source: "configmap", namespace: "shop", name: "kube-root-ca.crt", key: "ca.crt" } as const;
  inventory.replace(stale, { certificates: [record({ subjectCN: "cluster-ca", issuerCN: "cluster-ca", isCA: true })] });
  inventory.setStale(stale, true);
  inventory.replace({ source: "endpoint", namespace: "", name: "127.0.0.1:8443", key: "" }, {
    certificates: [record({ subjectCN: "self-signed.test", issuerCN: "self-signed.test" })],
    probe: {
      success: true,
      chainVerified: false,
      verifyError: "DEPTH_ZERO_SELF_SIGNED_CERT",
      hostnameMatch: false,
      tlsVersion: "TLSv1.3",
      cipher: "TLS_AES_256_GCM_SHA384",
      durationSeconds: 0.012,
      // A stapled OCSP response saying revoked: every OCSP family has a sample.
      ocsp: { stapled: true, status: "revoked", thisUpdate: 1_767_225_600, nextUpdate: 1_767_830_400, revocationTime: 1_767_222_000 },
    },
  });
  // A Secret key holding two CRLs, one without nextUpdate: every CRL family has a sample.
  inventory.replace({ source: "secret", namespace: "pki", name: "ca-crl", key: "ca.crl" }, {
    certificates: [],
    crls: [
      { thisUpdate: 1_767_225_600, nextUpdate: 1_767_830_400, issuer: "CN=Shop CA", issuerCN: "Shop CA", revoked: 3 },
      { thisUpdate: 1_767_225_600, issuer: 'CN=odd " CA', issuerCN: 'odd " CA', revoked: 0 },
    ],
  });
  // A renewed certificate beside the old one, as a source publishes it: cert_superseded has a sample.
  const renewedAt = Math.floor(Date.now() / 1000);
  inventory.replace(
    { source: "secret", namespace: "shop", name: "renewed-tls", key: "tls.crt" },
    locationUpdate([record({ subjectCN: "renewed.example.test", serial: "0a01", notBefore: renewedAt - 80 * 86_400 }), record({ subjectCN: "renewed.example.test", serial: "0a02" })], NO_READ_LIMITS),
  );
  inventory.replace({ source: "endpoint", namespace: "shop", name: "shop-web:443", key: "ingresses" }, {
    certificates: [],
    probe: { success: false, reason: "connect_timeout", message: "no answer in 5 s", chainVerified: false, verifyError: "", hostnameMatch: false, tlsVersion: "", cipher: "", durationSeconds: 5 },
  });
  for (const source of ["secret", "ingresses"]) {
    health.register(source);
    health.scanSucceeded(source, 0.2);
    health.relists.inc({ source, reason: "watch_expired" });
    health.watchRestarts.inc({ source, reason: "silent" });
  }

  // Opening a FIFO for reading waits for a writer: a libuv request in flight, so that
  // nodejs_active_requests, empty in a quiet process, has a sample in these bodies too.
  const fifo = join(dir, "in-flight.fifo");
  spawnSync("mkfifo", [fifo]);
  const reader = open(fifo, "r");
  const release = async (): Promise<void> => {
    const writer = await open(fifo, "w");
    await Promise.all([writer.close(), (await reader).close()]);
  };
  await provokeGarbageCollection();
  const bodies: string[] = [];
  try {
    for (const accept of order) bodies.push(await (await fetch(`http://127.0.0.1:${exporter.port}/metrics`, { headers: { accept } })).text());
  } finally {
    await release();
  }
  return { exporter, bodies };
}

/**
 * nodejs_gc_duration_seconds has samples only after a collection, which a short test may never reach
 * (a clean-clone CI run did not): allocate short-lived garbage until the process reports one, so
 * prom-client's observer, registered earlier, has seen it too.
 */
async function provokeGarbageCollection(): Promise<void> {
  let collected = false;
  const observer = new PerformanceObserver(() => {
    collected = true;
  });
  observer.observe({ entryTypes: ["gc"] });
  // Kept reachable for a moment so the optimiser cannot elide the allocations.
  const sink: number[][] = [];
  try {
    for (let round = 0; round < 200 && !collected; round++) {
      for (let i = 0; i < 10_000; i++) sink[i % 16] = new Array<number>(64).fill(round);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  } finally {
    observer.disconnect();
  }
  if (!collected) throw new Error("no garbage collection after 200 rounds of allocation");
}

t.test("with every family present, promtool finds nothing but the days-unit note, whatever was scraped before", async (t) => {
  if (promtool(["--version"]).missing) {
    t.fail("promtool is not installed: apt-get install prometheus (CI installs it); this test never skips");
    return;
  }
  const { exporter, bodies } = await scrapeEverything(t, [TEXT, OPENMETRICS, TEXT]);
  const [first, openMetrics, again] = bodies as [string, string, string];

  const samples = samplesPerFamily(first);
  const rendered = await rendererFamilies();
  t.ok(rendered.length >= 15 && rendered.includes("cert_endpoint_tls_info"), `src/metrics.ts declares ${rendered.length} families`);
  for (const family of [...rendered, ...exporter.health.prometheus.getMetricsAsArray().map((metric) => metric.name)]) {
    t.ok((samples.get(family) ?? 0) > 0, `${family} has samples`);
  }
  t.match(first, 'subject_cn="lint.test"');

  for (const [which, body] of [
    ["the first text body", first],
    ["the text body after an OpenMetrics one", again],
  ] as const) {
    const findings = promtool(["check", "metrics"], body).output.split("\n").map((line) => line.trim()).filter(Boolean);
    t.same(findings.filter((line) => !line.startsWith(ALLOWED_FINDING)), [], `${which}: nothing but the documented exception`);
    t.ok(findings.some((line) => line.startsWith(ALLOWED_FINDING)), `${which}: the days unit is the one note, as designed`);
  }

  const names = [...new Set(sampleNames(first))].sort();
  t.same([...new Set(sampleNames(again))].sort(), names, "the same series names before and after an OpenMetrics scrape");
  t.same([...new Set(sampleNames(openMetrics))].sort(), names, "and in the OpenMetrics body");
  t.ok(names.includes("cert_expiry_exporter_read_errors_total"), "counters keep _total");

  // Prometheus's OpenMetrics parser, as promtool's backfill uses it; backfilling wants a timestamp on every sample.
  const dir = await mkdtemp(join(tmpdir(), "cee-openmetrics-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const now = Math.floor(Date.now() / 1000);
  const stamped = openMetrics.replace(/^([^#\n].*)$/gm, `$1 ${now}`);
  await writeFile(join(dir, "body.om"), stamped);
  t.ok(openMetrics.endsWith("# EOF\n"), "the OpenMetrics body ends with # EOF");
  const parse = promtool(["tsdb", "create-blocks-from", "openmetrics", join(dir, "body.om"), join(dir, "blocks")]);
  t.equal(parse.status, 0, `Prometheus parses the OpenMetrics body: ${parse.output}`);
  await mkdir(join(dir, "blocks", "wal"), { recursive: true }); // promtool tsdb dump opens the WAL too
  const dump = promtool(["tsdb", "dump", join(dir, "blocks")]);
  const stored = new Set(dump.output.split("\n").flatMap((line) => /^\{__name__="([^"]+)"/.exec(line)?.[1] ?? []));
  t.same([...stored].sort(), names, "and stores the same series names from it");
});

t.test("the alert rules, their unit tests and the dashboards name only series the exporter exposes", async (t) => {
  const { bodies } = await scrapeEverything(t, [TEXT]);
  const exposed = new Set(sampleNames(bodies[0] as string));
  const tests = join(ROOT, "alerts/tests");
  const dashboards = join(ROOT, DASHBOARD_DIR);
  const files = [
    join(ROOT, RULES_SOURCE),
    ...(await readdir(tests)).map((file) => join(tests, file)),
    ...(await readdir(dashboards)).filter((file) => file.endsWith(".json")).map((file) => join(dashboards, file)),
  ];
  for (const file of files) {
    const text = await readFile(file, "utf8");
    const named = new Set([...text.matchAll(/\b(?:cert|nodejs|process)_[a-z0-9_]+/g)].map((match) => match[0]));
    for (const name of named) t.ok(exposed.has(name), `${file.slice(ROOT.length + 1)}: ${name} is exposed`);
  }
});
