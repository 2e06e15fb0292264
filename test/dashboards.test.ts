/**
 * The Grafana dashboards: structure (datasource variable, cluster/namespace/source variables, every
 * panel with a query on `${datasource}`, no datasource UID literal, unique panel ids, panels inside
 * the 24-column grid), the panels of the Kubernetes kinds and stale locations, source filters read
 * from the series rather than listed, every query valid PromQL for promtool, the event-loop panel in
 * step with the exporter's sampling interval, and the sidecar ConfigMaps current.
 * test/alerts-e2e.test.ts runs the same queries against a real Prometheus with data.
 */
import { spawnSync } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import t from "tap";
import YAML from "yaml";
import { DASHBOARD_CONFIGMAP_DIR, ROOT, renderArtifacts } from "../scripts/gen-artifacts.js";
import { EVENT_LOOP_SAMPLING_MS } from "../src/process-metrics.js";
import { CERTIFICATE_FAMILY_NAMES, REQUIRED_FAMILIES } from "../src/series-selection.js";
import { allPanels, readDashboards, substituteVariables } from "./helpers/grafana.js";
import { tempDir } from "./helpers/polled-source.js";

const dashboards = await readDashboards();
const files = dashboards.map(({ file }) => file);

/** Every `uid` value anywhere in the JSON, with its path. */
function uids(value: unknown, path = "$"): [string, unknown][] {
  if (Array.isArray(value)) return value.flatMap((item, i) => uids(item, `${path}[${i}]`));
  if (value && typeof value === "object") {
    return Object.entries(value).flatMap(([key, item]) => [...(key === "uid" ? [[`${path}.uid`, item] as [string, unknown]] : []), ...uids(item, `${path}.${key}`)]);
  }
  return [];
}

t.test("the three dashboards exist: overview, endpoints, exporter health", async (t) => {
  t.same(files, ["cert-expiry-endpoints.json", "cert-expiry-exporter-health.json", "cert-expiry-overview.json"]);
  const uidsSeen = dashboards.map(({ dashboard }) => dashboard.uid);
  t.equal(new Set(uidsSeen).size, uidsSeen.length, "distinct dashboard uids");
  for (const { dashboard } of dashboards) t.match(dashboard.uid, /^[a-z0-9-]{1,40}$/, `${dashboard.title}: a stable uid`);
});

for (const { file, dashboard } of dashboards) {
  t.test(`${file}: variables, panels and datasources`, async (t) => {
    const variables = new Map(dashboard.templating.list.map((variable) => [variable.name, variable]));
    const datasource = variables.get("datasource");
    t.equal(datasource?.type, "datasource", "a datasource variable");
    t.equal(datasource?.query, "prometheus", "of Prometheus data sources");
    for (const name of ["cluster", "namespace", "source"]) {
      const variable = variables.get(name);
      t.equal(variable?.type, "query", `a ${name} variable`);
      t.same(variable?.datasource, { type: "prometheus", uid: "${datasource}" }, `${name}: queries the chosen data source`);
      t.equal(variable?.includeAll, true, `${name}: has All`);
      t.equal(variable?.allValue, ".*", `${name}: All matches empty values too (files have no namespace)`);
      t.match(variable?.definition, /^label_values\(/, `${name}: label_values()`);
    }

    for (const [path, uid] of uids(dashboard)) {
      if (path === "$.uid") continue;
      t.ok(uid === "${datasource}" || uid === "-- Grafana --", `${path} is the datasource variable, not a literal UID (${String(uid)})`);
    }

    const panels = allPanels(dashboard.panels).filter((panel) => panel.type !== "row");
    t.ok(panels.length >= 8, `${panels.length} panels`);
    const ids = panels.map((panel) => panel.id);
    t.equal(new Set(ids).size, ids.length, "unique panel ids");
    for (const panel of panels) {
      const what = `panel ${panel.id} "${panel.title}"`;
      t.ok(panel.title, `${what}: a title`);
      t.same(panel.datasource, { type: "prometheus", uid: "${datasource}" }, `${what}: uses the datasource variable`);
      t.ok((panel.targets ?? []).length > 0, `${what}: has a query`);
      const refIds = (panel.targets ?? []).map((target) => target.refId);
      t.equal(new Set(refIds).size, refIds.length, `${what}: unique refIds`);
      for (const target of panel.targets ?? []) {
        t.ok(target.expr && target.expr.trim().length > 0, `${what} ${target.refId}: a PromQL expression`);
        t.same(target.datasource, { type: "prometheus", uid: "${datasource}" }, `${what} ${target.refId}: uses the datasource variable`);
        t.match(target.expr, /cluster=~"\$cluster"/, `${what} ${target.refId}: follows the cluster variable`);
      }
      const pos = panel.gridPos;
      t.ok(pos && pos.x >= 0 && pos.w > 0 && pos.x + pos.w <= 24 && pos.h > 0, `${what}: inside the 24-column grid`);
    }
  });
}

/** Every query of a dashboard, with the title of its panel. */
const queriesOf = (file: string): { title: string; expr: string }[] =>
  allPanels(dashboards.find((d) => d.file === file)?.dashboard.panels ?? []).flatMap((panel) => (panel.targets ?? []).map((target) => ({ title: panel.title ?? "", expr: target.expr ?? "" })));

t.test("panels and variables read no optional per-certificate family, so they work with the smallest metrics.certificateFamilies", async (t) => {
  const optional = CERTIFICATE_FAMILY_NAMES.filter((name) => !REQUIRED_FAMILIES.includes(name));
  for (const { file, dashboard } of dashboards) {
    const texts = [...queriesOf(file).map(({ title, expr }) => ({ what: `"${title}"`, text: expr })), ...dashboard.templating.list.map((v) => ({ what: `variable ${v.name}`, text: v.definition ?? "" }))];
    for (const { what, text } of texts) {
      const read = optional.filter((name) => new RegExp(`\\b${name}\\b`).test(text));
      t.same(read, [], `${file} ${what}: reads only families every selection exports`);
    }
  }
});

t.test("the overview shows each Kubernetes kind and the stale locations, the health dashboard the stale count", async (t) => {
  const overview = queriesOf("cert-expiry-overview.json");
  for (const source of ["configmap", "cabundle", "csr"]) {
    const panels = [...new Set(overview.filter((q) => q.expr.includes(`source="${source}"`)).map((q) => q.title))];
    t.ok(panels.length >= 2, `source="${source}": a count and a table (${panels.join(", ")})`);
  }
  t.ok(overview.some((q) => /label_replace\(.*source="cabundle".*"kind", "\$1", "name"/.test(q.expr)), "caBundles are split by kind (the name's prefix) and object");
  t.ok(overview.some((q) => q.expr.includes("webhooks/(.*)")), "and by webhook");
  t.ok(overview.some((q) => /count by \(key\) \(\(\(cert_not_after_timestamp_seconds\{[^}]*source="csr"/.test(q.expr)), "CSRs are counted by signer (the key)");
  const stale = overview.filter((q) => q.expr.includes("cert_location_stale"));
  t.ok(stale.some((q) => q.expr.startsWith("count(cert_location_stale{")), "a count of stale locations");
  t.ok(stale.some((q) => q.expr.includes("cert_not_after_timestamp_seconds") && q.expr.includes("and ignoring(index, subject_cn, issuer_cn, serial, ca) cert_location_stale")), "the last-known certificates of stale locations, with days left");
  t.ok(queriesOf("cert-expiry-exporter-health.json").some((q) => q.expr.includes("cert_location_stale")), "the health dashboard counts stale locations");
});

t.test("source filters take every value the exporter exports: no query or variable lists sources", async (t) => {
  for (const { file, dashboard } of dashboards) {
    const source = dashboard.templating.list.find((variable) => variable.name === "source");
    t.match(source?.definition, /^label_values\((cert_|up\b)[a-z_]*\{cluster=~"\$cluster"\}, source\)$/, `${file}: the source variable is read from the series, so new sources (configmap, cabundle, csr) appear in it`);
    t.notOk("options" in (source ?? {}) && ((source as { options?: unknown[] }).options ?? []).length > 0, `${file}: with no fixed options`);
    for (const { title, expr } of queriesOf(file)) {
      const fixed = [...expr.matchAll(/source!?=~"([^"]*)"/g)].map((match) => match[1]).filter((value) => value !== "$source");
      t.same(fixed, [], `${file} "${title}": no fixed list of sources`);
    }
  }
  const overviewSource = dashboards.find((d) => d.file === "cert-expiry-overview.json")?.dashboard.templating.list.find((v) => v.name === "source");
  t.match(overviewSource?.definition, "label_values(cert_not_after_timestamp_seconds{", "the overview's sources are those of every certificate series");
});

t.test("every panel query is valid PromQL for promtool", async (t) => {
  const version = spawnSync("promtool", ["--version"]);
  if ((version.error as NodeJS.ErrnoException | undefined)?.code === "ENOENT") {
    t.fail("promtool is not installed: apt-get install prometheus (CI installs it); this test never skips");
    return;
  }
  // promtool parses PromQL when it checks rules: one recording rule per panel query.
  const rules: { record: string; expr: string }[] = [];
  for (const { dashboard } of dashboards) {
    for (const panel of allPanels(dashboard.panels)) {
      for (const target of panel.targets ?? []) {
        rules.push({ record: `dashboard:${dashboard.uid.replace(/-/g, "_")}:panel_${panel.id}_${target.refId}`, expr: substituteVariables(target.expr ?? "") });
      }
    }
  }
  const dir = await tempDir(t, "cee-dashboards");
  const file = join(dir, "queries.yml");
  await writeFile(file, YAML.stringify({ groups: [{ name: "dashboard-queries", rules }] }));
  const check = spawnSync("promtool", ["check", "rules", "--lint=none", file], { encoding: "utf8" });
  t.equal(check.status, 0, `${check.stdout}${check.stderr}`);
  t.match(check.stdout, `SUCCESS: ${rules.length} rules found`, `${rules.length} queries parse`);
});

t.test("the event-loop panel takes off the interval the exporter samples the loop at", async (t) => {
  const queries = dashboards.flatMap(({ dashboard }) => allPanels(dashboard.panels).flatMap((panel) => (panel.targets ?? []).map((target) => target.expr ?? "")));
  const eventLoop = queries.filter((expr) => expr.includes("nodejs_eventloop_lag_"));
  t.ok(eventLoop.length > 0, "a panel shows the event loop");
  for (const expr of eventLoop) t.match(expr, `} - ${EVENT_LOOP_SAMPLING_MS / 1000}, 0)`, `${expr}: less the ${EVENT_LOOP_SAMPLING_MS} ms of src/process-metrics.ts`);
});

t.test("the sidecar ConfigMaps are generated from the dashboards and current", async (t) => {
  const artifacts = renderArtifacts();
  for (const { file, dashboard } of dashboards) {
    const path = `${DASHBOARD_CONFIGMAP_DIR}/${file.replace(/\.json$/, ".yaml")}`;
    const expected = artifacts.get(path);
    const shipped = await readFile(join(ROOT, path), "utf8").catch(() => "");
    t.equal(shipped, expected, `${path} is what scripts/gen-artifacts.ts makes now (run it)`);
    const configMap = YAML.parse(shipped) as { kind: string; metadata: { labels: Record<string, string> }; data: Record<string, string> };
    t.equal(configMap.kind, "ConfigMap");
    t.equal(configMap.metadata.labels.grafana_dashboard, "1", "labelled for Grafana's dashboard sidecar");
    t.same(JSON.parse(configMap.data[file] ?? "null"), dashboard, "holds the dashboard unchanged");
  }
  const kustomization = await readFile(join(ROOT, DASHBOARD_CONFIGMAP_DIR, "kustomization.yaml"), "utf8");
  t.equal(kustomization, artifacts.get(`${DASHBOARD_CONFIGMAP_DIR}/kustomization.yaml`), "the kustomization lists them");
});
