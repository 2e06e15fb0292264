/**
 * The Kubernetes manifests in deploy/: every overlay renders with the real `kubectl kustomize`, every
 * rendered object validates against the Kubernetes OpenAPI schemas (kubernetes-models) or, for the
 * Prometheus Operator kinds, against their CRD schemas (@kubernetes-models/prometheus-operator), with
 * unknown fields refused; every pod spec is hardened; the PrometheusRule and dashboards are the files
 * in alerts/ and grafana/; and the RBAC grants exactly the API calls that the code makes, found by
 * running the exporter with each overlay's own configuration against the Kubernetes API double.
 */
import { execFileSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { pino } from "pino";
import t from "tap";
import YAML from "yaml";
import { Exporter } from "../src/app.js";
import { validateConfig, type Config } from "../src/config.js";
import { renderArtifacts, staleArtifacts, DASHBOARD_DIR, RULES_SOURCE } from "../scripts/gen-artifacts.js";
import { FakeApiServer, type RequestRecord } from "./k8s/apiserver.js";

const ROOT = join(import.meta.dirname, "..");
const DEPLOY = join(ROOT, "deploy");
const OVERLAYS = ["cluster-wide", "namespaced", "control-plane", "prometheus-operator", "sharded"];
const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string };

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: unknown;
}

function render(dir: string): K8sObject[] {
  const out = execFileSync("kubectl", ["kustomize", dir], { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  return YAML.parseAllDocuments(out)
    .map((doc) => doc.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);
}

const rendered = new Map<string, K8sObject[]>();
rendered.set("base", render(join(DEPLOY, "base")));
for (const overlay of OVERLAYS) rendered.set(overlay, render(join(DEPLOY, "overlays", overlay)));

const id = (o: K8sObject) => `${o.kind} ${o.metadata.namespace ? `${o.metadata.namespace}/` : ""}${o.metadata.name}`;
const WORKLOAD_KINDS = new Set(["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"]);

interface Container {
  name: string;
  image?: string;
  args?: string[];
  command?: string[];
  ports?: { name?: string; containerPort: number }[];
  livenessProbe?: { httpGet?: { path?: string; port?: string | number } };
  readinessProbe?: { httpGet?: { path?: string; port?: string | number } };
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: {
    allowPrivilegeEscalation?: boolean;
    readOnlyRootFilesystem?: boolean;
    runAsNonRoot?: boolean;
    runAsUser?: number;
    privileged?: boolean;
    capabilities?: { drop?: string[]; add?: string[] };
    seccompProfile?: { type: string };
  };
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
}

interface PodSpec {
  serviceAccountName?: string;
  automountServiceAccountToken?: boolean;
  hostNetwork?: boolean;
  hostPID?: boolean;
  hostIPC?: boolean;
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number; seccompProfile?: { type: string } };
  containers: Container[];
  initContainers?: Container[];
  volumes?: { name: string; configMap?: { name: string }; hostPath?: { path: string }; [k: string]: unknown }[];
  nodeSelector?: Record<string, string>;
  tolerations?: { key?: string; operator?: string; effect?: string }[];
}

function podTemplate(o: K8sObject): { labels: Record<string, string>; spec: PodSpec } {
  const spec = o.spec as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  if (o.kind === "Pod") return { labels: o.metadata.labels ?? {}, spec: spec as PodSpec };
  const template = o.kind === "CronJob" ? spec.jobTemplate.spec.template : spec.template;
  return { labels: template.metadata?.labels ?? {}, spec: template.spec as PodSpec };
}

const workloads = (objects: K8sObject[]) => objects.filter((o) => WORKLOAD_KINDS.has(o.kind));
const configMapOf = (objects: K8sObject[], name: string) => objects.find((o) => o.kind === "ConfigMap" && o.metadata.name === name) as (K8sObject & { data: Record<string, string> }) | undefined;

/** The exporter configuration a workload runs with: its --config file from its ConfigMap volume. */
function workloadConfig(objects: K8sObject[], workload: K8sObject): { raw: unknown; config: Config } {
  const { spec } = podTemplate(workload);
  const container = spec.containers[0] as Container;
  const args = container.args ?? [];
  const path = args[args.indexOf("--config") + 1] ?? "";
  const mount = (container.volumeMounts ?? []).find((m) => path.startsWith(`${m.mountPath}/`));
  if (!mount) throw new Error(`${id(workload)}: --config ${path} is not inside a mounted volume`);
  const volume = (spec.volumes ?? []).find((v) => v.name === mount.name);
  const configMap = volume?.configMap ? configMapOf(objects, volume.configMap.name) : undefined;
  const text = configMap?.data[path.slice(mount.mountPath.length + 1)];
  if (text === undefined) throw new Error(`${id(workload)}: ${path} is not in a rendered ConfigMap`);
  const raw = YAML.parse(text) as unknown;
  return { raw, config: validateConfig(raw) };
}

// ---------------------------------------------------------------- rendering

t.test("the overlays are the documented five, and each renders", async (t) => {
  t.same(readdirSync(join(DEPLOY, "overlays")).sort(), [...OVERLAYS].sort());
  for (const [name, objects] of rendered) {
    t.ok(objects.length > 0, `${name}: ${objects.length} objects`);
    const ids = objects.map(id);
    t.same(ids.filter((x, i) => ids.indexOf(x) !== i), [], `${name}: no object twice`);
    t.equal(workloads(objects).length, 1, `${name}: one workload`);
  }
});

// ---------------------------------------------------------------- schemas

type Validate = (this: unknown) => void;

/** The kubernetes-models class of a kind: core/v1 and the groups, or the Prometheus Operator CRDs. */
async function validatorFor(apiVersion: string, kind: string): Promise<Validate | undefined> {
  const [group, version] = apiVersion.includes("/") ? (apiVersion.split("/") as [string, string]) : ["", apiVersion];
  const spec =
    group === "monitoring.coreos.com"
      ? `@kubernetes-models/prometheus-operator/${group}/${version}/${kind}`
      : `kubernetes-models/${group ? `${group}/` : ""}${version}/${kind}`;
  try {
    const mod = (await import(spec)) as Record<string, { prototype: { validate: Validate } } | undefined>;
    return mod[kind]?.prototype.validate;
  } catch {
    return undefined;
  }
}

/**
 * Validates `obj` with a compiled kubernetes-models validator and also finds unknown fields, as
 * `kubectl apply --validate=strict` would: the object is wrapped in proxies that record which
 * properties the validator looks at. The validators test every property their schema declares, so an
 * object the validator looked into whose own key it never asked for holds a field the schema does not
 * know. Objects it enumerated (free-form maps: labels, ConfigMap data) are not checked for that.
 */
function validateStrict(validate: Validate, obj: unknown): string[] {
  const read = new WeakMap<object, Set<string>>();
  const enumerated = new WeakSet<object>();
  const proxies = new WeakMap<object, object>();
  const wrap = (value: unknown): unknown => {
    if (value === null || typeof value !== "object") return value;
    let proxy = proxies.get(value);
    if (!proxy) {
      const note = (target: object, key: string | symbol) => {
        if (typeof key !== "string") return;
        let keys = read.get(target);
        if (!keys) read.set(target, (keys = new Set()));
        keys.add(key);
      };
      proxy = new Proxy(value, {
        get(target, key) {
          note(target, key);
          return wrap(Reflect.get(target, key));
        },
        has(target, key) {
          note(target, key);
          return Reflect.has(target, key);
        },
        ownKeys(target) {
          enumerated.add(target);
          return Reflect.ownKeys(target);
        },
      });
      proxies.set(value, proxy);
    }
    return proxy;
  };
  const problems: string[] = [];
  try {
    validate.call(wrap(obj));
  } catch (err) {
    problems.push((err as Error).message);
  }
  const walk = (value: unknown, path: string) => {
    if (Array.isArray(value)) value.forEach((item, i) => walk(item, `${path}[${i}]`));
    else if (value !== null && typeof value === "object") {
      const keys = read.get(value);
      for (const [key, child] of Object.entries(value)) {
        if (keys && !enumerated.has(value) && !keys.has(key)) problems.push(`${path}.${key}: unknown field`);
        walk(child, `${path}.${key}`);
      }
    }
  };
  walk(obj, "");
  return problems;
}

t.test("the strict validator catches wrong types, missing fields and unknown fields", async (t) => {
  const deployment = await validatorFor("apps/v1", "Deployment");
  t.ok(deployment);
  const good = { apiVersion: "apps/v1", kind: "Deployment", metadata: { name: "x", labels: { a: "b" } }, spec: { selector: {}, template: { spec: { containers: [{ name: "c" }] } } } };
  t.same(validateStrict(deployment!, good), []);
  const typo = structuredClone(good) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  typo.spec.template.spec.containers[0].securityContext = { readOnlyRootFileSystem: true };
  t.same(validateStrict(deployment!, typo), [".spec.template.spec.containers[0].securityContext.readOnlyRootFileSystem: unknown field"]);
  const wrongType = structuredClone(good) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  wrongType.spec.replicas = "3";
  t.match(validateStrict(deployment!, wrongType), [/replicas must be integer/]);
  const missing = structuredClone(good) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  delete missing.spec.selector;
  t.match(validateStrict(deployment!, missing), [/spec must have required property selector/]);
  const serviceMonitor = await validatorFor("monitoring.coreos.com/v1", "ServiceMonitor");
  t.match(validateStrict(serviceMonitor!, { apiVersion: "monitoring.coreos.com/v1", kind: "ServiceMonitor", metadata: { name: "x" }, spec: { selector: {}, endpoints: [{ port: 9798 }] } }), [/port must be string/]);
});

t.test("every rendered object validates against its schema, unknown fields refused", async (t) => {
  for (const [name, objects] of rendered) {
    for (const o of objects) {
      const validate = await validatorFor(o.apiVersion, o.kind);
      t.ok(validate, `${name}: a schema for ${o.apiVersion} ${o.kind}`);
      if (validate) t.same(validateStrict(validate, o), [], `${name}: ${id(o)}`);
    }
  }
});

// ---------------------------------------------------------------- hardening

/** The one pod allowed to run as uid 0 (root without any capability): see its manifest's comment. */
const ROOT_EXCEPTION = "control-plane: DaemonSet cert-expiry-exporter-control-plane/cert-expiry-exporter";
const HOST_PATHS = ["/etc/kubernetes", "/var/lib/kubelet/pki"];

function mebibytes(quantity: string): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi)?$/.exec(quantity);
  if (!m) throw new Error(`unexpected quantity ${quantity}`);
  return Number(m[1]) * ({ Ki: 1 / 1024, Mi: 1, Gi: 1024 }[m[2] ?? ""] ?? 1 / 1024 ** 2);
}

function millicores(quantity: string): number {
  return quantity.endsWith("m") ? Number(quantity.slice(0, -1)) : Number(quantity) * 1000;
}

t.test("every pod spec is hardened", async (t) => {
  for (const [name, objects] of rendered) {
    for (const workload of workloads(objects)) {
      const label = `${name}: ${id(workload)}`;
      const { labels, spec } = podTemplate(workload);
      const rootAllowed = `${name}: ${id(workload)}` === ROOT_EXCEPTION;
      t.notOk(spec.hostNetwork || spec.hostPID || spec.hostIPC, `${label}: no host namespaces`);
      t.equal(spec.securityContext?.seccompProfile?.type, "RuntimeDefault", `${label}: seccomp RuntimeDefault`);
      if (!rootAllowed) {
        t.equal(spec.securityContext?.runAsNonRoot, true, `${label}: runAsNonRoot`);
        t.ok((spec.securityContext?.runAsUser ?? 0) > 0, `${label}: runAsUser is not 0`);
      }
      for (const c of [...spec.containers, ...(spec.initContainers ?? [])]) {
        const cl = `${label} container ${c.name}`;
        const sc = c.securityContext ?? {};
        t.equal(sc.allowPrivilegeEscalation, false, `${cl}: allowPrivilegeEscalation false`);
        t.equal(sc.readOnlyRootFilesystem, true, `${cl}: readOnlyRootFilesystem`);
        t.notOk(sc.privileged, `${cl}: not privileged`);
        t.same(sc.capabilities?.drop, ["ALL"], `${cl}: drops every capability`);
        t.same(sc.capabilities?.add ?? [], [], `${cl}: adds none`);
        t.equal(sc.seccompProfile?.type, "RuntimeDefault", `${cl}: seccomp RuntimeDefault`);
        if (rootAllowed) {
          t.equal(sc.runAsUser, 0, `${cl}: the documented uid-0 exception, stated explicitly`);
        } else {
          t.equal(sc.runAsNonRoot, true, `${cl}: runAsNonRoot`);
          t.ok((sc.runAsUser ?? 0) > 0, `${cl}: runAsUser ${sc.runAsUser} is not 0`);
        }
        for (const m of c.volumeMounts ?? []) t.equal(m.readOnly, true, `${cl}: ${m.mountPath} is mounted read-only`);
        const { requests = {}, limits = {} } = c.resources ?? {};
        t.ok(requests.cpu && requests.memory && limits.cpu && limits.memory, `${cl}: CPU and memory requests and limits`);
        if (requests.memory && limits.memory) t.ok(mebibytes(requests.memory) <= mebibytes(limits.memory), `${cl}: memory request ≤ limit`);
        if (requests.cpu && limits.cpu) t.ok(millicores(requests.cpu) <= millicores(limits.cpu), `${cl}: CPU request ≤ limit`);
        if (limits.memory) t.ok(mebibytes(limits.memory) <= 384, `${cl}: memory limit ${limits.memory} within the 384Mi sizing (docs/deploy.md)`);
      }
      for (const v of spec.volumes ?? []) {
        if (!v.hostPath) continue;
        t.ok(rootAllowed, `${label}: a hostPath volume (${v.hostPath.path}) only in the control-plane DaemonSet`);
        t.ok(HOST_PATHS.includes(v.hostPath.path), `${label}: hostPath ${v.hostPath.path} is one of ${HOST_PATHS.join(", ")}`);
      }
      // The exporter container: image, entrypoint arguments, port, probes.
      const c = spec.containers[0] as Container;
      t.equal(c.image, `cert-expiry-exporter:${pkg.version}`, `${label}: the image of this version (package.json)`);
      t.equal(c.command, undefined, `${label}: the image's ENTRYPOINT (node dist/cli.js) is kept`);
      t.equal(c.args?.[0], "serve", `${label}: runs serve`);
      t.same(c.ports?.map((p) => [p.name, p.containerPort]), [["metrics", 9798]], `${label}: port 9798 named metrics`);
      t.same(c.livenessProbe?.httpGet, { path: "/healthz", port: "metrics" }, `${label}: liveness on /healthz`);
      t.same(c.readinessProbe?.httpGet, { path: "/readyz", port: "metrics" }, `${label}: readiness on /readyz`);
      const { raw, config } = workloadConfig(objects, workload);
      t.ok(raw, `${label}: its configuration comes from its ConfigMap and passes src/config.ts`);
      t.equal(config.listen.port, 9798, `${label}: the configuration listens on the container port`);
      // The Service reaches these pods on the metrics port.
      const service = objects.find((o) => o.kind === "Service") as (K8sObject & { spec: { selector: Record<string, string>; ports: { targetPort: string }[] } }) | undefined;
      t.ok(service && Object.entries(service.spec.selector).every(([k, v]) => labels[k] === v), `${label}: the Service selects its pods`);
      t.same(service?.spec.ports.map((p) => p.targetPort), ["metrics"], `${label}: the Service targets the metrics port`);
      if (rootAllowed) {
        t.equal(spec.automountServiceAccountToken, false, `${label}: a uid-0 pod has no API token`);
        t.same(spec.nodeSelector, { "node-role.kubernetes.io/control-plane": "" }, `${label}: control-plane nodes only`);
        t.ok(spec.tolerations?.some((x) => x.key === "node-role.kubernetes.io/control-plane" && x.operator === "Exists"), `${label}: tolerates the control-plane taint`);
        const paths = new Set((c.volumeMounts ?? []).map((m) => m.mountPath));
        t.ok(HOST_PATHS.every((p) => paths.has(p)), `${label}: mounts ${HOST_PATHS.join(" and ")}`);
        t.ok(config.sources.files.length > 0 && config.sources.kubeconfigs.length > 0, `${label}: file and kubeconfig sources on`);
      }
    }
    for (const ns of objects.filter((o) => o.kind === "Namespace")) {
      const hostPaths = workloads(objects).some((w) => (podTemplate(w).spec.volumes ?? []).some((v) => v.hostPath));
      t.equal(ns.metadata.labels?.["pod-security.kubernetes.io/enforce"], hostPaths ? "privileged" : "restricted", `${name}: ${id(ns)} enforces Pod Security ${hostPaths ? "privileged (hostPath)" : "restricted"}`);
    }
  }
});

t.test("the sharded overlay runs as many replicas as shard.count, with the index from the ordinal", async (t) => {
  const objects = rendered.get("sharded")!;
  const sts = objects.find((o) => o.kind === "StatefulSet") as K8sObject & { spec: { replicas: number; serviceName: string } };
  t.ok(sts, "a StatefulSet");
  const { config } = workloadConfig(objects, sts);
  t.ok(config.shard.count > 1, `shard.count ${config.shard.count}`);
  t.equal(sts.spec.replicas, config.shard.count, "replicas = shard.count");
  t.equal(config.shard.index, undefined, "no fixed index: each pod takes its StatefulSet ordinal");
  const service = objects.find((o) => o.kind === "Service" && o.metadata.name === sts.spec.serviceName) as K8sObject & { spec: { clusterIP?: string } };
  t.equal(service?.spec.clusterIP, "None", "its governing Service is headless");
});

t.test("the namespaced overlay has a Role and RoleBinding in each namespace it reads, and nothing cluster-wide", async (t) => {
  const objects = rendered.get("namespaced")!;
  const { config } = workloadConfig(objects, workloads(objects)[0]!);
  const include = [...config.sources.secrets.namespaces.include].sort();
  t.ok(include.length > 0 && include.every((ns) => /^[a-z0-9-]+$/.test(ns)), `literal namespaces: ${include.join(", ")}`);
  t.ok(config.sources.configMaps.enabled, "ConfigMaps are read too");
  t.same([...config.sources.configMaps.namespaces.include].sort(), include, "in the same namespaces as Secrets, so one Role per namespace grants both");
  t.notOk(Object.values(config.sources.caBundles).some((kind) => kind.enabled) || config.sources.csrs.enabled, "no cluster-scoped kind, which a Role cannot grant");
  t.same(objects.filter((o) => o.kind === "Role").map((o) => o.metadata.namespace).sort(), include, "a Role per namespace");
  t.same(objects.filter((o) => o.kind === "RoleBinding").map((o) => o.metadata.namespace).sort(), include, "a RoleBinding per namespace");
  t.same(objects.filter((o) => o.kind.startsWith("Cluster")).map(id), [], "no ClusterRole or ClusterRoleBinding");
});

// ---------------------------------------------------------------- generated artefacts

t.test("the PrometheusRule is alerts/, the dashboard ConfigMaps are grafana/", async (t) => {
  const objects = rendered.get("prometheus-operator")!;
  const rules = YAML.parse(readFileSync(join(ROOT, RULES_SOURCE), "utf8")) as { groups: unknown[] };
  const prometheusRules = objects.filter((o) => o.kind === "PrometheusRule") as (K8sObject & { spec: { groups: unknown[] } })[];
  t.equal(prometheusRules.length, 1, "one PrometheusRule");
  t.same(prometheusRules[0]?.spec.groups, rules.groups, `its groups are ${RULES_SOURCE}'s`);

  const files = readdirSync(join(ROOT, DASHBOARD_DIR)).filter((f) => f.endsWith(".json")).sort();
  const dashboards = objects.filter((o) => o.kind === "ConfigMap" && o.metadata.labels?.grafana_dashboard === "1") as (K8sObject & { data: Record<string, string> })[];
  t.same(dashboards.flatMap((d) => Object.keys(d.data)).sort(), files, "one dashboard ConfigMap entry per grafana/*.json");
  for (const file of files) {
    const cm = dashboards.find((d) => file in d.data);
    t.equal(cm?.data[file], readFileSync(join(ROOT, DASHBOARD_DIR, file), "utf8"), `${file}: byte for byte`);
  }
  const monitors = objects.filter((o) => o.kind === "ServiceMonitor") as (K8sObject & { spec: { selector: { matchLabels: Record<string, string> }; endpoints: { port: string; honorLabels?: boolean }[]; namespaceSelector?: { matchNames?: string[] } } })[];
  t.equal(monitors.length, 1, "one ServiceMonitor");
  const service = objects.find((o) => o.kind === "Service")!;
  t.ok(Object.entries(monitors[0]!.spec.selector.matchLabels).every(([k, v]) => service.metadata.labels?.[k] === v), "it selects the exporter's Service");
  t.same(monitors[0]!.spec.endpoints.map((e) => [e.port, e.honorLabels]), [["metrics", true]], "port metrics with honorLabels (docs/alerts.md)");
  const namespaces = [...rendered.values()].flat().filter((o) => o.kind === "Namespace").map((o) => o.metadata.name);
  t.same([...new Set(namespaces)].sort(), [...(monitors[0]!.spec.namespaceSelector?.matchNames ?? [])].sort(), "it looks in every namespace an overlay installs to");
  const deployStale = staleArtifacts().filter((p) => p.startsWith("deploy/"));
  t.same(deployStale, [], "deploy/prometheus-operator and deploy/grafana-dashboards are what scripts/gen-artifacts.ts makes now");
  t.ok(renderArtifacts().has("deploy/prometheus-operator/kustomization.yaml"), "the generator writes the kustomization the overlay includes");
});

// ---------------------------------------------------------------- RBAC

/** One API call, as RBAC sees it. `namespace` null: cluster scope. */
interface Call {
  verb: string;
  group: string;
  resource: string;
  namespace: string | null;
}

const callKey = (c: Call) => `${c.verb} ${c.group || "core"}/${c.resource} ${c.namespace === null ? "(cluster)" : `in ${c.namespace}`}`;

interface Rule {
  apiGroups?: string[];
  resources?: string[];
  verbs: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
}

/** What the workload's service account is granted: rules with the scope they apply in. */
function grants(objects: K8sObject[], serviceAccount: string, namespace: string): { scope: string | null; rule: Rule; via: string }[] {
  const rolesByRef = (kind: string, name: string, ns: string | null) =>
    objects.filter((o) => o.kind === kind && o.metadata.name === name && (kind === "ClusterRole" || o.metadata.namespace === ns)) as (K8sObject & { rules?: Rule[] })[];
  const out: { scope: string | null; rule: Rule; via: string }[] = [];
  for (const binding of objects.filter((o) => o.kind === "ClusterRoleBinding" || o.kind === "RoleBinding") as (K8sObject & { roleRef: { kind: string; name: string }; subjects?: { kind: string; name: string; namespace?: string }[] })[]) {
    if (!binding.subjects?.some((s) => s.kind === "ServiceAccount" && s.name === serviceAccount && s.namespace === namespace)) continue;
    const scope = binding.kind === "ClusterRoleBinding" ? null : (binding.metadata.namespace as string);
    for (const role of rolesByRef(binding.roleRef.kind, binding.roleRef.name, scope)) for (const rule of role.rules ?? []) out.push({ scope, rule, via: `${id(binding)} → ${id(role)}` });
  }
  return out;
}

const ruleAllows = (rule: Rule, call: Call) =>
  !rule.resourceNames?.length && (rule.apiGroups ?? []).includes(call.group) && (rule.resources ?? []).includes(call.resource) && rule.verbs.includes(call.verb);

function allowed(granted: ReturnType<typeof grants>, call: Call): boolean {
  return granted.some(({ scope, rule }) => (scope === null || scope === call.namespace) && ruleAllows(rule, call));
}

t.test("the RBAC checker: a call without a rule fails, a rule without a call fails", async (t) => {
  const objects = rendered.get("cluster-wide")!;
  const granted = grants(objects, "cert-expiry-exporter", "cert-expiry-exporter");
  t.ok(allowed(granted, { verb: "list", group: "", resource: "secrets", namespace: null }));
  t.notOk(allowed(granted, { verb: "get", group: "", resource: "secrets", namespace: "default" }), "get secrets is not granted");
  t.notOk(allowed(granted, { verb: "list", group: "", resource: "namespaces", namespace: null }), "list namespaces is not granted");
  t.notOk(allowed(granted, { verb: "list", group: "networking.k8s.io", resource: "ingresses", namespace: null }), "ingresses are not granted");
  const namespaced = grants(rendered.get("namespaced")!, "cert-expiry-exporter", "cert-expiry-exporter");
  t.notOk(allowed(namespaced, { verb: "list", group: "", resource: "secrets", namespace: null }), "a Role does not grant a cluster-wide list");
  t.notOk(allowed(namespaced, { verb: "list", group: "", resource: "secrets", namespace: "kube-system" }), "nor another namespace");
});

/**
 * Runs the exporter with `config` against the API server double until every list has its watch, and
 * returns the API calls it made (discovery aside).
 */
async function callsOf(config: Config, namespaces: string[]): Promise<Call[]> {
  const api = await FakeApiServer.start({ namespaces, bookmarkIntervalMs: 200 });
  try {
    const run = validateConfig({
      ...structuredClone(config),
      listen: { address: "127.0.0.1", port: 0 },
      logLevel: "silent",
      kubernetes: { ...config.kubernetes, kubeconfig: api.kubeconfigPath() },
    });
    const exporter = await Exporter.create(run, pino({ level: "silent" }));
    await exporter.serve();
    try {
      const base = `http://127.0.0.1:${exporter.port}`;
      for (let i = 0; i < 300; i++) {
        const ready = await fetch(`${base}/readyz`).then((r) => r.ok, () => false);
        if (ready) break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      // Every LIST is followed by its WATCH once the list completes; wait for those (bounded).
      const streamKey = (r: RequestRecord) => `${r.group ?? ""}/${r.resource ?? ""}/${r.namespace ?? ""}/${r.query.fieldSelector ?? ""}/${r.query.labelSelector ?? ""}`;
      for (let i = 0; i < 200; i++) {
        const watched = new Set(api.requests({ verb: "watch" }).map(streamKey));
        if (api.requests({ verb: "list" }).every((r) => watched.has(streamKey(r)))) break;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    } finally {
      await exporter.close();
    }
    return api
      .requests((r) => r.verb !== "discovery")
      .map((r) => ({ verb: r.verb, group: r.group ?? "", resource: r.resource ?? r.path, namespace: r.namespace ?? null }));
  } finally {
    await api.close();
  }
}

/** The Kubernetes kinds a configuration reads certificates from (discovery aside), as RBAC names them. */
function kubernetesKinds(config: Config): { group: string; resource: string }[] {
  const { secrets, configMaps, caBundles, csrs } = config.sources;
  return [
    ...(secrets.enabled ? [{ group: "", resource: "secrets" }] : []),
    ...(configMaps.enabled ? [{ group: "", resource: "configmaps" }] : []),
    ...(caBundles.validatingWebhooks.enabled ? [{ group: "admissionregistration.k8s.io", resource: "validatingwebhookconfigurations" }] : []),
    ...(caBundles.mutatingWebhooks.enabled ? [{ group: "admissionregistration.k8s.io", resource: "mutatingwebhookconfigurations" }] : []),
    ...(caBundles.apiServices.enabled ? [{ group: "apiregistration.k8s.io", resource: "apiservices" }] : []),
    ...(caBundles.crdConversions.enabled ? [{ group: "apiextensions.k8s.io", resource: "customresourcedefinitions" }] : []),
    ...(csrs.enabled ? [{ group: "certificates.k8s.io", resource: "certificatesigningrequests" }] : []),
  ];
}

/** Every certificate-holding kind the exporter reads: some overlay must turn each on, so its RBAC is tested. */
const ALL_KINDS = [
  "/secrets",
  "/configmaps",
  "admissionregistration.k8s.io/validatingwebhookconfigurations",
  "admissionregistration.k8s.io/mutatingwebhookconfigurations",
  "apiregistration.k8s.io/apiservices",
  "apiextensions.k8s.io/customresourcedefinitions",
  "certificates.k8s.io/certificatesigningrequests",
];
const covered = new Set<string>();

t.test("RBAC grants exactly the API calls the code makes with each overlay's configuration", async (t) => {
  for (const overlay of OVERLAYS) {
    const objects = rendered.get(overlay)!;
    const workload = workloads(objects)[0]!;
    const { spec } = podTemplate(workload);
    const { config } = workloadConfig(objects, workload);
    const serviceAccount = spec.serviceAccountName ?? "default";
    const granted = grants(objects, serviceAccount, workload.metadata.namespace as string);
    t.ok(
      granted.every(({ rule }) => [...(rule.apiGroups ?? []), ...(rule.resources ?? []), ...rule.verbs].every((x) => x !== "*") && !rule.nonResourceURLs?.length),
      `${overlay}: no wildcards, no non-resource URLs`,
    );

    // The namespaces a cluster holds: the ones the configuration names, and others it must not touch.
    const named = [...config.sources.secrets.namespaces.include, ...config.sources.configMaps.namespaces.include].filter((ns) => /^[a-z0-9-]+$/.test(ns));
    const namespaces = [...new Set(["default", "kube-system", "other", ...named])];
    // Every replica of a sharded workload, by its index.
    const replicas = config.shard.count;
    const calls = new Map<string, Call>();
    for (let index = 0; index < replicas; index++) {
      for (const call of await callsOf({ ...config, shard: { count: replicas, index } }, namespaces)) calls.set(callKey(call), call);
    }

    // Every kind the configuration turns on was read, so its grant is checked against real calls.
    const exercised = new Set([...calls.values()].map((c) => `${c.verb} ${c.group}/${c.resource}`));
    for (const { group, resource } of kubernetesKinds(config)) {
      for (const verb of ["list", "watch"]) t.ok(exercised.has(`${verb} ${group}/${resource}`), `${overlay}: ${verb} ${group || "core"}/${resource} (enabled in its config) was called`);
      covered.add(`${group}/${resource}`);
    }

    const denied = [...calls.values()].filter((call) => !allowed(granted, call)).map(callKey);
    t.same(denied, [], `${overlay}: every call the code makes is granted (${[...calls.keys()].join("; ") || "none"})`);
    const unused = granted.flatMap(({ scope, rule, via }) =>
      (rule.apiGroups ?? []).flatMap((group) =>
        (rule.resources ?? []).flatMap((resource) =>
          rule.verbs
            .filter((verb) => ![...calls.values()].some((c) => c.verb === verb && c.group === group && c.resource === resource && (scope === null ? c.namespace === null : c.namespace === scope)))
            .map((verb) => `${via}: ${callKey({ verb, group, resource, namespace: scope })}`),
        ),
      ),
    );
    t.same(unused, [], `${overlay}: every grant is used`);
    t.equal(spec.automountServiceAccountToken, calls.size > 0, `${overlay}: the service-account token is mounted exactly when the code calls the API`);
  }
  t.same(ALL_KINDS.filter((kind) => !covered.has(kind)), [], "every kind the exporter reads is turned on by some overlay, so its grant is checked");
  const clusterWide = workloadConfig(rendered.get("cluster-wide")!, workloads(rendered.get("cluster-wide")!)[0]!).config;
  t.same(kubernetesKinds(clusterWide).map(({ group, resource }) => `${group}/${resource}`).sort(), [...ALL_KINDS].sort(), "the cluster-wide overlay reads every kind");
});

t.test("the README's own overlays set the image, and the release label kube-prometheus-stack selects", async (t) => {
  const { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const overlays = [...readme.matchAll(/cat > my-cert-expiry\/kustomization\.yaml <<'YAML'\n([\s\S]*?)\nYAML/g)].map((m) => m[1] as string);
  t.equal(overlays.length, 2, "two overlay examples: plain and for kube-prometheus-stack");
  const dir = mkdtempSync(join(tmpdir(), "cee-own-overlay-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  cpSync(DEPLOY, join(dir, "deploy"), { recursive: true });
  overlays.forEach((text, i) => {
    const overlay = join(dir, `my-${i}`);
    mkdirSync(overlay);
    writeFileSync(join(overlay, "kustomization.yaml"), text.replaceAll("<registry>", "registry.example"));
    const objects = render(overlay);
    const images = objects.flatMap((o) => ((o as { spec?: { template?: { spec?: { containers?: { image: string }[] } } } }).spec?.template?.spec?.containers ?? []).map((c) => c.image));
    t.same(images, ["registry.example/cert-expiry-exporter:0.1.0"], `overlay ${i}: the image is set`);
    if (!text.includes("release:")) return;
    for (const kind of ["ServiceMonitor", "PrometheusRule"]) {
      const object = objects.find((o) => o.kind === kind);
      t.equal(object?.metadata.labels?.release, "kube-prometheus-stack", `${kind} carries the release label`);
    }
    const dashboards = objects.filter((o) => o.kind === "ConfigMap" && o.metadata.labels?.grafana_dashboard === "1");
    t.equal(dashboards.length, 3, "the three dashboards are labelled for Grafana's sidecar");
  });
});
