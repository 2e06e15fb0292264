/**
 * The blast radius of one object, as Prometheus sees it. Users commonly set `sample_limit` and
 * `label_value_length_limit` on their scrape configs; Prometheus then fails the whole scrape, and
 * takes every certificate off the dashboards, when one body breaks either. Real Prometheus scrapes
 * the real exporter with both set while a file holds 5,000 certificates, another a certificate
 * with a 10 kB CN, and a third sits under a path longer than the label limit: the target must stay
 * up, with those locations cut or turned into read errors and everything else exported.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import t from "tap";
import YAML from "yaml";
import { makeCert } from "../scripts/certgen.js";
import { ROOT } from "../scripts/gen-artifacts.js";
import * as hostile from "../scripts/hostile.js";
import { freePort } from "./helpers/net.js";
import { getJson, missing, plainNode, PROMETHEUS, start, startPrometheus, waitFor, workspace } from "./helpers/processes.js";

/** Far below 5,000 certificates' 25,000 samples, far above what the honest files need. */
const SAMPLE_LIMIT = 1000;
/** limits.maxLabelValueLength's default. */
const LABEL_VALUE_LENGTH_LIMIT = 1024;

interface Vector {
  data: { result: { metric: Record<string, string>; value: [number, string] }[] };
}

t.test("Prometheus with sample_limit and label_value_length_limit keeps the target up", async (t) => {
  if (missing(PROMETHEUS)) {
    t.fail(`${PROMETHEUS} is not installed: apt-get install prometheus (CI installs it); this test never skips`);
    return;
  }
  const { dir, started } = await workspace(t, "cee-prom-limits-");
  const certs = join(dir, "certs");
  // A folder path of 1,500 bytes: the file's location name alone is over the label limit.
  const deep = join(certs, ...Array.from({ length: 15 }, (_, i) => `${i}-${"d".repeat(96)}`));
  await mkdir(deep, { recursive: true });
  await writeFile(join(certs, "honest.pem"), (await makeCert({ cn: "honest.limits.test" })).pem);
  await writeFile(join(certs, "five-thousand.pem"), await hostile.manyCertificates(5000));
  const longCn = await hostile.longCommonName(10_000);
  await writeFile(join(certs, "long-cn.pem"), longCn.pem);
  const deepFile = join(deep, "deep.pem");
  await writeFile(deepFile, (await makeCert({ cn: "deep.limits.test" })).pem);

  const exporterPort = await freePort();
  const exporter = start(
    "exporter",
    ...plainNode(["--import", "tsx", join(ROOT, "src/cli.ts"), "serve", "--listen-address", "127.0.0.1", "--port", String(exporterPort), "--log-level", "error", "--file", join(certs, "**", "*.pem")]),
    ROOT,
  );
  started.push(exporter);
  await waitFor("the exporter's first scan", 60_000, async () => (await fetch(`http://127.0.0.1:${exporterPort}/readyz`)).ok, exporter);

  const prometheusPort = await freePort();
  await writeFile(
    join(dir, "prometheus.yml"),
    YAML.stringify({
      global: { scrape_interval: "2s", scrape_timeout: "2s" },
      scrape_configs: [
        {
          job_name: "cert-expiry-exporter",
          sample_limit: SAMPLE_LIMIT,
          label_value_length_limit: LABEL_VALUE_LENGTH_LIMIT,
          static_configs: [{ targets: [`127.0.0.1:${exporterPort}`] }],
        },
      ],
    }),
  );
  const prometheus = startPrometheus(join(dir, "prometheus.yml"), join(dir, "data"), prometheusPort);
  started.push(prometheus);
  const api = `http://127.0.0.1:${prometheusPort}/api/v1`;
  const query = async (expr: string) => (await getJson<Vector>(`${api}/query?query=${encodeURIComponent(expr)}`)).data.result;
  // The first scrape's outcome, whatever it is: `up` is stored for a failed scrape too.
  await waitFor("Prometheus's first scrape", 60_000, async () => (await query('up{job="cert-expiry-exporter"}')).length > 0, prometheus);

  const up = await query('up{job="cert-expiry-exporter"}');
  t.equal(up[0]?.value[1], "1", `the target is up (${prometheus.output().slice(-2000)})`);
  const samples = Number((await query('scrape_samples_scraped{job="cert-expiry-exporter"}'))[0]?.value[1]);
  t.ok(samples > 0 && samples <= SAMPLE_LIMIT, `${samples} samples, within sample_limit ${SAMPLE_LIMIT}`);

  const errors = await query("cert_read_errors");
  t.same(
    errors.map((e) => [e.metric.name, e.metric.reason]),
    [[join(certs, "five-thousand.pem"), "too_many_certificates"]],
    "the 5,000-certificate file is one read error series",
  );
  const info = await query("cert_info");
  t.same(info.map((i) => i.metric.subject_cn?.slice(0, 20)).sort(), ["deep.limits.test", "honest.limits.test", longCn.cn.slice(0, 20)].sort(), "every other certificate is exported");
  for (const series of info) {
    for (const [label, value] of Object.entries(series.metric)) {
      t.ok(Buffer.byteLength(value) <= LABEL_VALUE_LENGTH_LIMIT, `${series.metric.subject_cn?.slice(0, 20)} ${label}: ${Buffer.byteLength(value)} bytes`);
    }
  }
  const deepSeries = info.find((i) => i.metric.subject_cn === "deep.limits.test");
  t.match(deepSeries?.metric.name, /…#[0-9a-f]{12}$/, "the over-long path is cut, with a marker and a hash that keep it distinct");
  t.ok(deepSeries?.metric.name?.startsWith(certs), "and keeps its beginning");
});
