/**
 * /probe with real Prometheus (/usr/bin/prometheus), started here on loopback: it discovers two TLS
 * endpoints (made here) and one outside the module's allow-list from a file_sd file, and scrapes
 * them through the shipped scrape config, deploy/prometheus/probe-scrape-config.yaml, loaded as it
 * is with only the file_sd path and the exporter's address substituted. What Prometheus stores must
 * carry each endpoint's certificate with instance=<host:port> of that endpoint, and the endpoint the
 * module refuses must be down (403) with no series.
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import t from "tap";
import YAML from "yaml";
import { makeCert, privateKeyPem } from "../scripts/certgen.js";
import { ROOT } from "../scripts/gen-artifacts.js";
import { Exporter } from "../src/app.js";
import { validateConfig } from "../src/config.js";
import { createLogger } from "../src/log.js";
import { freePort } from "./helpers/net.js";
import { getJson, missing, PROMETHEUS, startPrometheus, waitFor, workspace } from "./helpers/processes.js";
import { tlsServer } from "./helpers/tls-servers.js";

const SCRAPE_CONFIG = "deploy/prometheus/probe-scrape-config.yaml";

interface ScrapeJob {
  job_name: string;
  metrics_path: string;
  params: Record<string, string[]>;
  file_sd_configs: { files: string[] }[];
  relabel_configs: { source_labels?: string[]; target_label: string; replacement?: string }[];
}

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

t.test("Prometheus discovers endpoints from file_sd and scrapes each through /probe with the shipped scrape config", async (t) => {
  if (missing(PROMETHEUS)) {
    t.fail(`${PROMETHEUS} is not installed: apt-get install prometheus (CI installs it); this test never skips`);
    return;
  }
  const { dir, started } = await workspace(t, "cee-probe-prom-");

  // --- two TLS endpoints ----------------------------------------------------------------------
  const endpoints = [];
  for (const cn of ["alpha.probe-e2e.test", "beta.probe-e2e.test"]) {
    const cert = await makeCert({ cn, sans: [cn] });
    const server = await tlsServer({ cert: cert.pem, key: await privateKeyPem(cert) });
    t.teardown(() => server.close());
    endpoints.push({ cn, address: server.address });
  }
  // Outside the module's blocks: the exporter must refuse it, so Prometheus records it down.
  const refused = "192.0.2.1:443";

  // --- the exporter -----------------------------------------------------------------------------
  const exporter = await Exporter.create(
    validateConfig({ listen: { address: "127.0.0.1", port: 0 }, modules: { default: { allow: { cidrs: ["127.0.0.0/8"] } } } }),
    createLogger("silent"),
  );
  await exporter.serve();
  t.teardown(() => exporter.close());
  const exporterAddress = `127.0.0.1:${exporter.port}`;

  // --- the shipped scrape config, with our file_sd path and exporter address -------------------
  const shipped = YAML.parse(await readFile(join(ROOT, SCRAPE_CONFIG), "utf8")) as { scrape_configs: ScrapeJob[] };
  t.equal(shipped.scrape_configs.length, 1, "one job");
  const job = shipped.scrape_configs[0] as ScrapeJob;
  t.equal(job.metrics_path, "/probe");
  const readme = await readFile(join(ROOT, "README.md"), "utf8");
  const shown = /\n```\n(scrape_configs:\n[\s\S]*?)```/.exec(readme)?.[1];
  t.same(YAML.parse(shown ?? ""), shipped, "the README shows the shipped scrape config");
  const sdFile = join(dir, "targets", "endpoints.yaml");
  await mkdir(join(dir, "targets"));
  await writeFile(sdFile, YAML.stringify([{ targets: [...endpoints.map((e) => e.address), refused], labels: { team: "platform" } }]));
  t.equal(job.file_sd_configs.length, 1);
  (job.file_sd_configs[0] as { files: string[] }).files = [join(dir, "targets", "*.yaml")];
  const addressRule = job.relabel_configs.find((rule) => rule.target_label === "__address__");
  t.ok(addressRule?.replacement, "a rule sets __address__ to the exporter");
  (addressRule as { replacement: string }).replacement = exporterAddress;
  const prometheusPort = await freePort();
  await writeFile(
    join(dir, "prometheus.yml"),
    YAML.stringify({ global: { scrape_interval: "1s", scrape_timeout: "1s", evaluation_interval: "1s" }, scrape_configs: shipped.scrape_configs }),
  );
  const prometheus = startPrometheus(join(dir, "prometheus.yml"), join(dir, "data"), prometheusPort);
  started.push(prometheus);
  const api = `http://127.0.0.1:${prometheusPort}/api/v1`;
  const query = async (expr: string): Promise<Sample[]> =>
    (await getJson<{ data?: { result: Sample[] } }>(`${api}/query?query=${encodeURIComponent(expr)}`)).data?.result ?? [];
  await waitFor("prometheus", 30_000, async () => (await fetch(`http://127.0.0.1:${prometheusPort}/-/ready`)).ok, prometheus);
  await waitFor(
    "a scrape of every discovered endpoint",
    60_000,
    async () => (await query(`up{job="${job.job_name}"}`)).length === 3 && (await query(`cert_not_after_timestamp_seconds{job="${job.job_name}"}`)).length === 2,
    prometheus,
  );

  // --- what Prometheus stored -------------------------------------------------------------------
  const up = new Map((await query(`up{job="${job.job_name}"}`)).map((s) => [s.metric.instance, s.value[1]]));
  for (const { address } of endpoints) t.equal(up.get(address), "1", `${address} is up`);
  t.equal(up.get(refused), "0", `${refused}, outside the module's blocks, is down (403)`);
  const notAfter = await query(`cert_not_after_timestamp_seconds{job="${job.job_name}"}`);
  for (const { cn, address } of endpoints) {
    const series = notAfter.filter((s) => s.metric.instance === address);
    t.equal(series.length, 1, `one certificate stored for ${address}`);
    t.match(series[0]?.metric, { subject_cn: cn, instance: address, name: address, source: "endpoint", index: "0", team: "platform" }, `${address} carries ${cn}`);
  }
  t.same(await query(`cert_not_after_timestamp_seconds{instance="${refused}"}`), [], "nothing stored for the refused endpoint");
  const success = await query(`cert_endpoint_probe_success{job="${job.job_name}"}`);
  t.same(success.map((s) => [s.metric.instance, s.value[1]]).sort(), endpoints.map((e) => [e.address, "1"]).sort(), "each probe succeeded, once per instance");
  // The bundled endpoint alert's expression sees these probes as it sees the endpoint source's.
  t.same(await query("cert_endpoint_probe_success == 0"), [], "CertificateEndpointProbeFailing's expression: nothing failing");
  t.equal((await query(`cert_endpoint_chain_verified{job="${job.job_name}"} == 0 and cert_endpoint_probe_success == 1`)).length, 2, "CertificateEndpointChainNotVerified's expression sees both (self-signed)");
  t.equal(exporter.inventory.size, 0, "the exporter kept none of it");
});
