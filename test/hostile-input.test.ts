/**
 * Hostile input against the real exporter process: files, kubeconfigs, Secrets (through the
 * Kubernetes API double) and TLS peers, each made at test time in a shape that once froze the event
 * loop for minutes or would if a limit went missing (scripts/hostile.ts). The hostile bytes are
 * rewritten all along, so they are decoded again and again while the test watches:
 *
 * - /healthz answers within 1 s at every poll;
 * - every hostile location is a read error with its stable reason, or is exported within its limits;
 * - honest locations beside them keep updating;
 * - SIGTERM ends the process within 5 s while hostile decodes are under way.
 */
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import YAML from "yaml";
import { makeCert } from "../scripts/certgen.js";
import * as hostile from "../scripts/hostile.js";
import { ROOT } from "../scripts/gen-artifacts.js";
import { EVENT_LOOP_SAMPLING_MS } from "../src/process-metrics.js";
import { FakeApiServer } from "./k8s/apiserver.js";
import { freePort } from "./helpers/net.js";
import { plainNode } from "./helpers/processes.js";
import { recordFloodServer, silentServer } from "./helpers/tls-servers.js";

const HEALTHZ_DEADLINE_MS = 1000;
const SIGTERM_DEADLINE_MS = 5000;
const SETTLE_TIMEOUT_MS = 90_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Series {
  labels: Record<string, string>;
  value: number;
}

/** The samples of one family in a Prometheus text body. */
function samples(body: string, family: string): Series[] {
  const out: Series[] = [];
  for (const line of body.split("\n")) {
    if (!line.startsWith(`${family}{`)) continue;
    const close = line.lastIndexOf("}");
    const labels: Record<string, string> = {};
    for (const m of line.slice(family.length + 1, close).matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[m[1] as string] = (m[2] as string).replace(/\\(.)/g, "$1");
    out.push({ labels, value: Number(line.slice(close + 2)) });
  }
  return out;
}

t.test("hostile files, kubeconfigs, Secrets and TLS peers cost their own location an error, never the process", async (t) => {
  const dir = await mkdtemp(join(tmpdir(), "cee-hostile-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const files = join(dir, "files");
  const kubeconfigs = join(dir, "kubeconfigs");
  await mkdir(files);
  await mkdir(kubeconfigs);

  // ---- files and kubeconfigs: name → bytes and what must become of it
  const longCn = await hostile.longCommonName(10_000);
  // About a megabyte each: before the limits, the OID alone cost 25 s and the BEGIN lines 6 s of
  // event loop per read (quadratic); bench/hostile.ts measures the 4 MiB worst cases.
  const hostileFiles: Record<string, { bytes: Buffer; reason?: string }> = {
    "oid-bomb.der": { bytes: hostile.oidBomb(), reason: "corrupt_certificate" },
    "begin-flood.pem": { bytes: hostile.pemBeginFlood(1024 * 1024), reason: "corrupt_certificate" },
    "label-flood.pem": { bytes: hostile.pemLabelFlood(20_000), reason: "no_certificate" },
    "ber-nesting.der": { bytes: hostile.berNesting(), reason: "corrupt_certificate" },
    "san-flood.der": { bytes: hostile.sanFlood(50_000) },
    "long-facts.pem": { bytes: await hostile.manyCertificates(300, 1800), reason: "too_large" },
    "many-certificates.pem": { bytes: await hostile.manyCertificates(2000), reason: "too_many_certificates" },
    "long-cn.pem": { bytes: Buffer.from(longCn.pem) },
  };
  for (const [name, { bytes }] of Object.entries(hostileFiles)) await writeFile(join(files, name), bytes);
  const honestFile = join(files, "honest.pem");
  await writeFile(honestFile, (await makeCert({ cn: "honest-file.test" })).pem);
  const bigKubeconfig = join(kubeconfigs, "big-mapping.conf");
  await writeFile(bigKubeconfig, hostile.kubeconfigBigMapping());
  const honestCa = await makeCert({ cn: "honest-kubeconfig-ca.test", ca: true });
  const honestKubeconfig = join(kubeconfigs, "honest.conf");
  await writeFile(
    honestKubeconfig,
    YAML.stringify({ apiVersion: "v1", kind: "Config", clusters: [{ name: "c", cluster: { server: "https://x", "certificate-authority-data": Buffer.from(honestCa.pem).toString("base64") } }] }),
  );

  // ---- Secrets
  const api = await FakeApiServer.start({ bookmarkIntervalMs: 200 });
  t.teardown(() => api.close());
  const tls = (pem: string | Buffer) => ({ "tls.crt": Buffer.from(pem) });
  // Each decode of these asks for 9,000,000 iterations in all: under the configured cap, far over the time budget.
  const slowVariants = [await hostile.costlyPkcs12("pw", 3_000_000), await hostile.costlyPkcs12("pw", 3_000_000)];
  api.putSecret("apps", "honest", tls((await makeCert({ cn: "honest-secret.test" })).pem), { type: "kubernetes.io/tls" });
  api.putSecret("apps", "begin-flood", tls(hostile.pemBeginFlood(512 * 1024)), { type: "kubernetes.io/tls" });
  api.putSecret("apps", "many-certificates", tls(await hostile.manyCertificates(1500)), { type: "kubernetes.io/tls" });
  api.putSecret("apps", "costly-p12", { "keystore.p12": await hostile.costlyPkcs12("pw"), password: "pw" }, { type: "Opaque" });
  api.putSecret("apps", "slow-p12", { "keystore.p12": slowVariants[0] as Buffer, password: "pw" }, { type: "Opaque" });

  // ---- TLS peers
  const flood = await recordFloodServer();
  const silent = await silentServer();
  t.teardown(() => Promise.all([flood.close(), silent.close()]));

  // ---- the exporter
  const port = await freePort();
  const configPath = join(dir, "config.yaml");
  await writeFile(
    configPath,
    YAML.stringify({
      listen: { address: "127.0.0.1", port },
      logLevel: "warn",
      // The heavy cert_info labels too: hostile subjects, issuers and SANs must be cut there as well.
      metrics: { infoLabels: ["subject", "issuer", "sans"] },
      intervals: { files: "1s", kubeconfigs: "1s", endpoints: "2s" },
      limits: { parseTimeout: "1s", pkcs12MaxIterations: 10_000_000 },
      probe: { timeout: "2s", connectTimeout: "1s" },
      sources: {
        files: [{ paths: [join(files, "*")] }],
        kubeconfigs: [{ paths: [join(kubeconfigs, "*.conf")] }],
        endpoints: [{ address: flood.address }, { address: silent.address }],
        secrets: {
          enabled: true,
          rules: [
            { type: "kubernetes.io/tls", keys: ["tls.crt"] },
            { type: "Opaque", keys: ["*.p12"], format: "pkcs12", passphraseKey: "password" },
          ],
        },
      },
      kubernetes: { kubeconfig: api.kubeconfigPath(), backoff: { initial: "100ms", max: "1s" } },
    }),
  );
  const child = spawn(...plainNode(["--import", "tsx", join(ROOT, "src/cli.ts"), "serve", "-c", configPath]), { cwd: ROOT, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-20_000)));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  });
  const base = `http://127.0.0.1:${port}`;

  // ---- /healthz, polled all along
  let polling = true;
  const latencies: number[] = [];
  const failures: string[] = [];
  const poller = (async () => {
    while (polling) {
      const started = performance.now();
      try {
        const res = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(10_000) });
        await res.text();
        if (res.ok) latencies.push(performance.now() - started);
      } catch (err) {
        // Refused until the server listens; anything else once it has answered is a failure.
        if (latencies.length > 0) failures.push((err as Error).message);
      }
      await sleep(50);
    }
  })();

  // ---- the hostile bytes change all the time (a trailing byte, which every reader ignores), so
  // neither the change detection nor the parse cache spares a decode. Both variants are made once:
  // making megabytes every round would stall this process and count as the exporter's latency.
  const tails = [Buffer.from([0x0a]), Buffer.from([0x0b])];
  const fileVariants = Object.entries(hostileFiles).map(([name, { bytes }]) => ({ name, variants: tails.map((tail) => Buffer.concat([bytes, tail])) }));
  const kubeconfigVariants = tails.map((tail) => Buffer.concat([hostile.kubeconfigBigMapping(), tail]));
  const floodVariants = tails.map((tail) => tls(Buffer.concat([hostile.pemBeginFlood(512 * 1024), tail])));
  let churning = true;
  const churn = (async () => {
    for (let round = 1; churning; round++) {
      const which = round % 2;
      for (const { name, variants } of fileVariants) await writeFile(join(files, name), variants[which] as Buffer);
      await writeFile(bigKubeconfig, kubeconfigVariants[which] as Buffer);
      api.putSecret("apps", "slow-p12", { "keystore.p12": slowVariants[which] as Buffer, password: "pw" }, { type: "Opaque" });
      api.putSecret("apps", "begin-flood", floodVariants[which] as Record<string, Buffer>, { type: "kubernetes.io/tls" });
      await sleep(700);
    }
  })();

  // The exporter's own longest event-loop stall, for the log: it tells a slow /healthz caused
  // there from one caused by this busy process. Each lag value includes the sampling interval.
  let exporterLagMax = 0;
  const metrics = async (): Promise<string> => {
    const res = await fetch(`${base}/metrics`, { signal: AbortSignal.timeout(10_000) });
    const text = await res.text();
    const lag = /^nodejs_eventloop_lag_max_seconds (\S+)$/m.exec(text);
    // NaN until the loop is sampled, which starts with the first scrape.
    if (lag && !Number.isNaN(Number(lag[1]))) exporterLagMax = Math.max(exporterLagMax, Number(lag[1]));
    return text;
  };
  const errorReason = (body: string, source: string, name: string, namespace = ""): string | undefined =>
    samples(body, "cert_read_errors").find((s) => s.labels.source === source && s.labels.name === name && s.labels.namespace === namespace)?.labels.reason;
  const subjects = (body: string): string[] => samples(body, "cert_not_after_timestamp_seconds").map((s) => s.labels.subject_cn ?? "");

  const expected: [string, string, string, string][] = [
    ...Object.entries(hostileFiles)
      .filter(([, f]) => f.reason)
      .map(([name, f]): [string, string, string, string] => ["file", "", join(files, name), f.reason as string]),
    ["kubeconfig", "", bigKubeconfig, "parse_timeout"],
    ["secret", "apps", "begin-flood", "corrupt_certificate"],
    ["secret", "apps", "many-certificates", "too_many_certificates"],
    ["secret", "apps", "costly-p12", "too_costly"],
    ["secret", "apps", "slow-p12", "parse_timeout"],
    ["endpoint", "", flood.address, "tls_error"],
    ["endpoint", "", silent.address, "handshake_timeout"],
  ];
  const missing = (body: string): string[] => [
    ...expected.filter(([source, ns, name, reason]) => errorReason(body, source, name, ns) !== reason).map(([source, ns, name, reason]) => `${source} ${ns}/${name}: ${reason}`),
    ...["honest-file.test", "honest-kubeconfig-ca.test", "honest-secret.test"].filter((cn) => !subjects(body).includes(cn)),
  ];
  let body = "";
  const deadline = Date.now() + SETTLE_TIMEOUT_MS;
  while (Date.now() < deadline) {
    try {
      body = await metrics();
      if (missing(body).length === 0) break;
    } catch {
      // not listening yet
    }
    await sleep(500);
  }
  if (!t.same(missing(body), [], "every hostile location is its read error, every honest one exported")) t.comment(stderr.slice(-5000));

  const info = (file: string) => samples(body, "cert_info").find((s) => s.labels.name === join(files, file))?.labels ?? {};
  const cut: [string, string][] = [
    ...["subject_cn", "subject", "issuer", "issuer_cn"].map((label): [string, string] => ["long-cn.pem", label]),
    ["san-flood.der", "sans"],
  ];
  for (const [file, label] of cut) {
    const value = info(file)[label] ?? "";
    t.ok(Buffer.byteLength(value) <= 1024, `${file} ${label}: ${Buffer.byteLength(value)} bytes, within limits.maxLabelValueLength`);
    t.match(value, /…#[0-9a-f]{12}$/, `${file} ${label} ends in the truncation marker and hash`);
  }

  // Honest locations keep updating while the hostile ones are decoded over and over.
  await writeFile(honestFile, (await makeCert({ cn: "honest-file-renewed.test" })).pem);
  api.putSecret("apps", "honest", tls((await makeCert({ cn: "honest-secret-renewed.test" })).pem), { type: "kubernetes.io/tls" });
  const renewed = ["honest-file-renewed.test", "honest-secret-renewed.test"];
  const renewDeadline = Date.now() + 30_000;
  while (Date.now() < renewDeadline && !renewed.every((cn) => subjects(body).includes(cn))) {
    await sleep(300);
    body = await metrics();
  }
  t.same(renewed.filter((cn) => !subjects(body).includes(cn)), [], "renewed honest certificates are visible");

  // SIGTERM while hostile decodes are under way.
  polling = false;
  await poller;
  const killedAt = performance.now();
  child.kill("SIGTERM");
  const code = await Promise.race([exited, sleep(SIGTERM_DEADLINE_MS * 3).then(() => "still running")]);
  const exitMs = performance.now() - killedAt;
  churning = false;
  await churn;
  t.equal(code, 0, "SIGTERM exits cleanly");
  t.ok(exitMs < SIGTERM_DEADLINE_MS, `SIGTERM completed in ${Math.round(exitMs)} ms (deadline ${SIGTERM_DEADLINE_MS} ms)`);

  t.same(failures, [], "every /healthz poll was answered");
  t.ok(latencies.length > 20, `${latencies.length} /healthz polls`);
  const slowest = Math.max(...latencies);
  const sorted = [...latencies].sort((a, b) => a - b);
  // The loop is sampled from the first scrape on (src/process-metrics.ts): nothing to say before a second one.
  const stall = exporterLagMax > 0 ? `${Math.round(exporterLagMax * 1000 - EVENT_LOOP_SAMPLING_MS)} ms` : "not sampled between two scrapes";
  t.comment(`/healthz median ${Math.round(sorted[Math.floor(sorted.length / 2)] ?? 0)} ms, slowest ${Math.round(slowest)} ms; exporter's longest event-loop stall ${stall}`);
  t.ok(slowest < HEALTHZ_DEADLINE_MS, `slowest /healthz: ${Math.round(slowest)} ms (deadline ${HEALTHZ_DEADLINE_MS} ms)`);
});
