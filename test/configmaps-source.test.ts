/**
 * The ConfigMaps source against the API server double: what it reads (data and binaryData, key
 * globs, namespaces, the label selector) and every fault of the double; fault tests end with the
 * exporter's locations exactly equal to the double's state (nothing missing, stale or duplicated).
 */
import { X509Certificate } from "node:crypto";
import picomatch from "picomatch";
import t, { type Test } from "tap";
import type { Issued } from "../scripts/certgen.js";
import type { Config } from "../src/config.js";
import type { KubeConfig } from "@kubernetes/client-node";
import { configMapsSource } from "../src/sources/configmaps.js";
import type { KubeCertificateSource } from "../src/sources/kube-certificates.js";
import type { SourceContext } from "../src/sources/source.js";
import type { FakeApiServer, K8sObject } from "./k8s/apiserver.js";
import {
  actualLocations,
  certPool,
  convergeWith,
  counter,
  eventually,
  serialsOfPem,
  sortKeys,
  startKubeHarness,
  type Convergence,
  type HarnessOptions,
  type KubeHarness,
} from "./k8s/exporter-harness.js";

type H = KubeHarness<KubeCertificateSource>;

const b64 = (v: string | Buffer): string => Buffer.from(v).toString("base64");

const build = (config: Config, ctx: SourceContext, kubeConfig: KubeConfig): KubeCertificateSource => configMapsSource(config.sources.configMaps, kubeConfig, config.kubernetes, ctx);

/** The ConfigMaps source (sources.configMaps merged over `enabled: true`) against a double. */
function startConfigMaps(t: Test, configMaps: Record<string, unknown> = {}, opts: Omit<HarnessOptions, "secrets"> = {}): Promise<H> {
  return startKubeHarness(t, { ...opts, sources: { configMaps: { enabled: true, ...configMaps } }, build });
}

/** A ConfigMap with text `data` and `binaryData` given as base64 strings as they are sent. */
function putConfigMap(api: FakeApiServer, namespace: string, name: string, data: Record<string, string> = {}, binaryData: Record<string, string> = {}, labels?: Record<string, string>): K8sObject {
  const metadata: K8sObject["metadata"] = { name, namespace };
  if (labels) metadata.labels = labels;
  const object: K8sObject = { apiVersion: "v1", kind: "ConfigMap", metadata, data };
  if (Object.keys(binaryData).length) object.binaryData = binaryData;
  return api.put(object);
}

interface CmSpec {
  keys?: string[];
  include?: string[];
  exclude?: string[];
  /** Label requirement as key=value. */
  label?: string;
  /** Namespaces refused: one forbidden location each instead of their ConfigMaps. */
  forbidden?: string[];
}

/** The serial of a DER certificate, or undefined when the bytes are not one. */
function derSerial(bytes: Buffer): string | undefined {
  try {
    return new X509Certificate(bytes).serialNumber.toLowerCase().replace(/^0+(?=.)/, "");
  } catch {
    return undefined;
  }
}

const STRICT_BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * The locations the exporter must hold for the double's ConfigMaps, as `ns/name/key` → serials or
 * `!bad_base64`, `!error` (no certificate), `!forbidden`. Computed independently of the source.
 */
function expectedConfigMaps(api: FakeApiServer, spec: CmSpec = {}): Record<string, string> {
  const keyMatch = picomatch(spec.keys ?? ["*.crt", "*.pem"], { dot: true });
  const inc = spec.include?.length ? picomatch(spec.include) : () => true;
  const exc = spec.exclude?.length ? picomatch(spec.exclude) : () => false;
  const out: Record<string, string> = {};
  for (const ns of spec.forbidden ?? []) out[`${ns}//`] = "!forbidden";
  for (const cm of api.list("configmaps") as (K8sObject & { data?: Record<string, string>; binaryData?: Record<string, string> })[]) {
    const ns = cm.metadata.namespace ?? "";
    if (!inc(ns) || exc(ns) || spec.forbidden?.includes(ns)) continue;
    if (spec.label) {
      const [k, v] = spec.label.split("=");
      if (cm.metadata.labels?.[k!] !== v) continue;
    }
    const entries: [string, string, boolean][] = [
      ...Object.entries(cm.data ?? {}).map(([k, v]): [string, string, boolean] => [k, v, false]),
      ...Object.entries(cm.binaryData ?? {}).map(([k, v]): [string, string, boolean] => [k, v, true]),
    ];
    for (const [key, value, binary] of entries) {
      if (!value || !keyMatch(key)) continue;
      const id = `${ns}/${cm.metadata.name}/${key}`;
      if (binary && (!STRICT_BASE64.test(value) || value.length % 4 !== 0)) {
        out[id] = "!bad_base64";
        continue;
      }
      const bytes = binary ? Buffer.from(value, "base64") : Buffer.from(value, "utf8");
      const serials = serialsOfPem(bytes.toString("latin1"));
      out[id] = serials.length ? serials.join(",") : (derSerial(bytes) ?? "!error");
    }
  }
  return sortKeys(out);
}

/** What the exporter holds for source "configmap", errors by reason (any parse failure is `!error`). */
function actualConfigMaps(h: H): Record<string, string> {
  const out = actualLocations(h.inventory, "configmap");
  for (const e of h.inventory.entries()) {
    if (e.location.source === "configmap" && e.error?.reason === "bad_base64") out[`${e.location.namespace}/${e.location.name}/${e.location.key}`] = "!bad_base64";
  }
  return out;
}

function converge(h: H, spec: CmSpec = {}, tries = 1500): Promise<Convergence> {
  return convergeWith(
    () => actualConfigMaps(h),
    () => expectedConfigMaps(h.api, spec),
    tries,
  );
}

const serial = (c: Issued): string => c.cert.serialNumber.toLowerCase().replace(/^0+(?=.)/, "");

const NAMESPACES = ["a", "b", "c"];

/** 8 ConfigMaps with certificates per namespace (half in binaryData), and one without any. */
async function seed(api: FakeApiServer): Promise<Issued[]> {
  const pool = await certPool(8);
  for (const [n, ns] of NAMESPACES.entries()) {
    for (let i = 0; i < 8; i++) {
      const pem = pool[(i + n) % 8]!.pem;
      if (i % 2) putConfigMap(api, ns, `cm-${i}`, { "ca.crt": pem, "settings.json": "{}" });
      else putConfigMap(api, ns, `cm-${i}`, { "notes.txt": "hello" }, { "bundle.pem": b64(pem + pool[7]!.pem) });
    }
    putConfigMap(api, ns, "plain", { "app.properties": "a=b", "ca.txt": pool[0]!.pem });
  }
  return pool;
}

/** Changes made while the exporter cannot see them: a delete, an update, an add, a key removed. */
function mutate(api: FakeApiServer, pool: Issued[], round: number): void {
  api.remove("configmaps", "a", `cm-${round % 8}`);
  putConfigMap(api, "b", `cm-${round % 8}`, { "ca.crt": pool[(round + 3) % 8]!.pem + pool[(round + 4) % 8]!.pem });
  putConfigMap(api, "c", `new-${round}`, {}, { "x.pem": b64(pool[(round + 5) % 8]!.pem) });
  putConfigMap(api, "c", `cm-${(round + 1) % 8}`, { "other.txt": "no longer a certificate" });
}

async function started(t: Test, configMaps: Record<string, unknown> = {}, opts: Omit<HarnessOptions, "secrets"> = {}): Promise<{ h: H; pool: Issued[] }> {
  const h = await startConfigMaps(t, configMaps, { ...opts, kubernetes: { pageSize: 5, ...opts.kubernetes } });
  const pool = await seed(h.api);
  await h.source.start();
  const r = await converge(h);
  t.same(r.actual, r.expected, "first sync matches");
  t.ok(await soon(() => h.api.openWatches > 0), "watching");
  return { h, pool };
}

/** The serial at a location, as serial() gives it. */
const serialAt = (h: H, namespace: string, name: string, key: string): string | undefined =>
  h.inventory.get({ source: "configmap", namespace, name, key })?.certificates[0]?.serial.replace(/^0+(?=.)/, "");

/** Polls for up to about 30 s: generous on a loaded machine, quick when all is well. */
const soon = (check: () => boolean): Promise<boolean> => eventually(check, 1500);

/** Parse calls made so far (hits and misses of the parse cache). */
const parses = (h: H): number => h.cache.hits + h.cache.misses;

t.test("data (text) and binaryData (base64) keys matching the globs are read; other keys are not", async (t) => {
  const pool = await certPool(6);
  const h = await startConfigMaps(t);
  putConfigMap(
    h.api,
    "a",
    "bundle",
    { "ca.crt": pool[0]!.pem, "chain.pem": pool[1]!.pem + pool[2]!.pem, "notes.txt": pool[3]!.pem, "empty.crt": "" },
    { "root.crt": b64(pool[4]!.der), "blob.bin": b64(pool[5]!.pem) },
  );
  await h.source.start();
  const got = actualConfigMaps(h);
  t.same(got, {
    "a/bundle/ca.crt": serial(pool[0]!),
    "a/bundle/chain.pem": `${serial(pool[1]!)},${serial(pool[2]!)}`,
    "a/bundle/root.crt": serial(pool[4]!),
  });
  t.same(got, expectedConfigMaps(h.api));
  const entry = h.inventory.get({ source: "configmap", namespace: "a", name: "bundle", key: "root.crt" });
  t.equal(entry?.certificates[0]?.subjectCN, "cert-4.example", "binaryData is base64 of the bytes (here DER)");
  t.same(h.source.healthSources(), ["configmap"]);
  t.equal((await h.health.sourceUp.get()).values.find((v) => v.labels.source === "configmap")?.value, 1);

  const onlyCa = await startConfigMaps(t, { keys: ["ca.crt", "*.txt"] }, { server: h.api });
  await onlyCa.source.start();
  t.same(Object.keys(actualConfigMaps(onlyCa)), ["a/bundle/ca.crt", "a/bundle/notes.txt"], "configured key globs replace the default");
  await onlyCa.close();
});

t.test("namespace globs filter here, literal namespaces are read one by one; the label selector goes to the server", async (t) => {
  const pool = await certPool(2);
  const h = await startConfigMaps(t, { labelSelector: "watch=yes", namespaces: { include: ["team-*"], exclude: ["team-x"] } });
  for (const ns of ["team-a", "team-x", "other"]) {
    putConfigMap(h.api, ns, "labelled", { "ca.crt": pool[0]!.pem }, {}, { watch: "yes" });
    putConfigMap(h.api, ns, "unlabelled", { "ca.crt": pool[1]!.pem });
  }
  await h.source.start();
  const spec = { include: ["team-*"], exclude: ["team-x"], label: "watch=yes" };
  let r = await converge(h, spec);
  t.same(Object.keys(r.actual), ["team-a/labelled/ca.crt"]);
  t.same(r.actual, r.expected);
  const list = h.api.requests({ verb: "list" })[0]!;
  t.equal(list.path, "/api/v1/configmaps", "globs: one cluster-wide list");
  t.equal(list.query.labelSelector, "watch=yes");
  t.notOk("fieldSelector" in list.query, "no field selector");
  t.ok(await soon(() => h.api.countRequests({ verb: "watch" }) > 0));
  t.equal(h.api.requests({ verb: "watch" })[0]!.query.labelSelector, "watch=yes", "the watch carries the selector too");
  t.ok(
    h.api.requests({ verb: "list" }).every((x) => x.items <= 3),
    "unlabelled ConfigMaps are never sent",
  );

  // The label goes: the watch reports it as deleted, and its location goes.
  putConfigMap(h.api, "team-a", "labelled", { "ca.crt": pool[0]!.pem });
  r = await converge(h, spec);
  t.same(r.actual, {}, "unlabelled while watched: gone");

  const literal = await startConfigMaps(t, { namespaces: { include: ["team-a", "other"] } }, { server: h.api });
  t.same(literal.source.collections[0]!.scopes, [
    { namespace: "team-a", fieldSelector: undefined },
    { namespace: "other", fieldSelector: undefined },
  ]);
  h.api.clearRequests();
  await literal.source.start();
  t.same(Object.keys(actualLocations(literal.inventory, "configmap")), ["other/labelled/ca.crt", "other/unlabelled/ca.crt", "team-a/labelled/ca.crt", "team-a/unlabelled/ca.crt"]);
  t.same([...new Set(h.api.requests({ verb: "list" }).map((x) => x.path))].sort(), ["/api/v1/namespaces/other/configmaps", "/api/v1/namespaces/team-a/configmaps"], "no cluster-wide request");
  await literal.close();
});

t.test("paging: more ConfigMaps than the page size are all read", async (t) => {
  const h = await startConfigMaps(t, {}, { kubernetes: { pageSize: 4 } });
  await seed(h.api);
  await h.source.start();
  const r = await converge(h);
  t.same(r.actual, r.expected);
  t.equal(Object.keys(r.actual).length, 24, "24 certificate keys of 27 ConfigMaps");
  const lists = h.api.requests({ verb: "list" });
  t.equal(lists[0]!.query.limit, "4");
  t.ok(lists.filter((x) => x.query.continue).length >= 6, "followed the continue tokens");
});

t.test("410 on a continue token → relist from the start, exactly the server's state", async (t) => {
  const h = await startConfigMaps(t, {}, { kubernetes: { pageSize: 5 } });
  const pool = await seed(h.api);
  mutate(h.api, pool, 1);
  h.api.failNext(410, { match: { verb: "list", query: { continue: true } }, message: "The provided continue parameter is too old" });
  await h.source.start();
  const r = await converge(h);
  t.same(r.actual, r.expected);
  t.equal(await counter(h, "relists", { source: "configmap", reason: "continue_expired" }), 1);
});

t.test("410 on the watch after compaction, with changes it never delivered → relist reconciles", async (t) => {
  const { h, pool } = await started(t);
  h.api.silenceWatches({ open: true });
  mutate(h.api, pool, 2);
  h.api.compact();
  h.api.closeWatches();
  const r = await converge(h);
  t.same(r.actual, r.expected, "deleted, updated, added and emptied ConfigMaps all reconciled");
  t.ok((await counter(h, "relists", { source: "configmap", reason: "watch_expired" })) >= 1);
});

t.test("403 on one namespace: its refusal location, the others read; refused later, what was read is kept, stale", async (t) => {
  const h = await startConfigMaps(t, { namespaces: { include: NAMESPACES } }, { kubernetes: { pageSize: 5 } });
  const pool = await seed(h.api);
  h.api.forbid({ resource: "configmaps", namespace: "b" });
  await h.source.start();
  let r = await converge(h, { forbidden: ["b"] });
  t.same(r.actual, r.expected, "a and c read, b one forbidden location");
  const refusal = h.inventory.get({ source: "configmap", namespace: "b", name: "", key: "" });
  t.equal(refusal?.error?.reason, "forbidden");
  t.match(refusal?.error?.message, /cannot list configmaps in the namespace "b"; grant list and watch on configmaps with a Role in "b"/);

  h.api.clearFaults();
  r = await converge(h);
  t.same(r.actual, r.expected, "permission granted: b read, its refusal gone");
  t.ok(await soon(() => h.api.openWatches === 3), "watching the three namespaces");

  // Refused again (the watch ends, the relist answers 403): b's certificates stay, stale.
  const before = actualConfigMaps(h);
  h.api.forbid({ resource: "configmaps", namespace: "b" });
  h.api.compact();
  h.api.closeWatches();
  t.ok(await soon(() => h.inventory.get({ source: "configmap", namespace: "b", name: "", key: "" })?.error?.reason === "forbidden"), "refusal location back");
  t.ok(await soon(() => [...h.inventory.entries()].filter((e) => e.stale).length === 8), "b's 8 locations marked stale");
  const stale = [...h.inventory.entries()].filter((e) => e.stale).map((e) => e.location.namespace);
  t.same([...new Set(stale)], ["b"], "only b's");
  const now = actualConfigMaps(h);
  delete now["b//"];
  t.same(now, before, "every certificate kept, b's too");
  // The other namespaces still follow changes.
  putConfigMap(h.api, "a", "late", { "late.pem": pool[6]!.pem });
  t.ok(await soon(() => h.inventory.get({ source: "configmap", namespace: "a", name: "late", key: "late.pem" }) !== undefined), "a still watched");
});

t.test("a watch that ends or goes silent is restarted and catches up", async (t) => {
  const { h, pool } = await started(t, {}, { kubernetes: { watchTimeout: "1s" } });
  h.api.closeWatches();
  mutate(h.api, pool, 3);
  let r = await converge(h);
  t.same(r.actual, r.expected, "closed: resumed from its resourceVersion");
  t.ok((await counter(h, "watchRestarts", { source: "configmap", reason: "closed" })) >= 1);
  t.equal(await counter(h, "relists", { source: "configmap" }), 0, "no relist needed");

  h.api.silenceWatches({ open: true });
  mutate(h.api, pool, 4);
  r = await converge(h);
  t.same(r.actual, r.expected, "silent: restarted");
  t.ok((await counter(h, "watchRestarts", { source: "configmap", reason: "silent" })) >= 1);

  h.api.internalError(2, { verb: "watch" });
  h.api.closeWatches();
  mutate(h.api, pool, 5);
  r = await converge(h);
  t.same(r.actual, r.expected, "500 on the watch: backoff, resume");
});

t.test("deletion: a ConfigMap, one of its keys, its last certificate key, its namespace", async (t) => {
  const pool = await certPool(4);
  const h = await startConfigMaps(t);
  putConfigMap(h.api, "a", "one", { "ca.crt": pool[0]!.pem });
  putConfigMap(h.api, "a", "two", { "ca.crt": pool[1]!.pem, "extra.pem": pool[2]!.pem });
  putConfigMap(h.api, "a", "three", { "ca.crt": pool[3]!.pem });
  putConfigMap(h.api, "gone", "four", { "ca.crt": pool[3]!.pem });
  await h.source.start();
  t.equal(Object.keys(actualConfigMaps(h)).length, 5);
  t.ok(await soon(() => h.api.openWatches > 0));

  h.api.remove("configmaps", "a", "one");
  putConfigMap(h.api, "a", "two", { "extra.pem": pool[2]!.pem });
  putConfigMap(h.api, "a", "three", { "ca.txt": pool[3]!.pem });
  h.api.remove("namespaces", undefined, "gone");
  const r = await converge(h);
  t.same(r.actual, { "a/two/extra.pem": serial(pool[2]!) });
  t.same(r.actual, r.expected);
  t.equal(h.source.collections[0]!.states().length, 1, "nothing remembered of the others");
});

t.test("binaryData that is not base64, and matching keys without a certificate, are read errors of their own", async (t) => {
  const pool = await certPool(1);
  const h = await startConfigMaps(t);
  putConfigMap(h.api, "a", "odd", { "readme.pem": "just some text", "key.pem": "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n", "ca.crt": pool[0]!.pem }, { "x.pem": "%%% not base64 %%%" });
  await h.source.start();
  const got = (key: string) => h.inventory.get({ source: "configmap", namespace: "a", name: "odd", key });
  t.equal(got("x.pem")?.error?.reason, "bad_base64");
  t.match(got("x.pem")?.error?.message, /binaryData x\.pem is not valid base64/);
  t.equal(got("readme.pem")?.error?.reason, "not_pem_or_der");
  t.equal(got("key.pem")?.error?.reason, "no_certificate");
  t.equal(got("ca.crt")?.certificates.length, 1, "the other keys are read");
  t.same(actualConfigMaps(h), expectedConfigMaps(h.api));
  t.equal(await counter(h, "readErrors", { source: "configmap", reason: "bad_base64" }), 1);
  t.equal(await counter(h, "readErrors", { source: "configmap", reason: "not_pem_or_der" }), 1);

  // Fixed: the errors go.
  t.ok(await soon(() => h.api.openWatches > 0));
  putConfigMap(h.api, "a", "odd", { "ca.crt": pool[0]!.pem }, { "x.pem": b64(pool[0]!.pem) });
  t.ok(await soon(() => got("x.pem")?.certificates.length === 1 && got("readme.pem") === undefined && got("key.pem") === undefined));
  t.same(actualConfigMaps(h), expectedConfigMaps(h.api));
});

t.test("a large ConfigMap without certificate keys is sent, and costs nothing", async (t) => {
  const pool = await certPool(1);
  const h = await startConfigMaps(t);
  const big = `${"x".repeat(1023)}\n`.repeat(100);
  putConfigMap(h.api, "a", "values", { "values.yaml": big, "README.md": big });
  putConfigMap(h.api, "a", "ca", { "ca.crt": pool[0]!.pem });
  await h.source.start();
  t.ok(h.api.requests({ verb: "list" }).reduce((sum, x) => sum + x.bytes, 0) > 200_000, "the big one was sent");
  t.same(Object.keys(actualConfigMaps(h)), ["a/ca/ca.crt"]);
  t.equal(h.inventory.size, 1, "one location");
  t.equal(h.source.collections[0]!.states().length, 1, "nothing held for the big one");
  t.equal(parses(h), 1, "and it was never parsed");

  t.ok(await soon(() => h.api.openWatches > 0));
  putConfigMap(h.api, "a", "values", { "values.yaml": `${big}more` });
  putConfigMap(h.api, "a", "fence", { "f.pem": pool[0]!.pem });
  t.ok(await soon(() => h.inventory.size === 2), "watch events handled");
  t.equal(parses(h), 2, "its update was not parsed either");
});

t.test("unchanged ConfigMaps are not parsed or published again (digest)", async (t) => {
  const { h, pool } = await started(t);
  const callsBefore = parses(h);
  const generationBefore = h.inventory.generation;

  // A relist of the same objects, and updates that leave the certificate keys as they are (the
  // watch is silenced first, so that it resumes from before the compaction and gets 410).
  h.api.silenceWatches({ open: true });
  putConfigMap(h.api, "a", "cm-1", { "ca.crt": pool[1]!.pem, "settings.json": '{"changed":true}' }, {}, { new: "label" });
  h.api.compact();
  h.api.closeWatches();
  t.ok(await soon(() => h.api.requests({ verb: "list" }).filter((x) => !x.query.continue && x.status === 200).length >= 2), "relisted");
  t.ok(await soon(() => h.api.openWatches > 0), "watching again");
  // A fence: once its certificate arrives, everything before it was handled.
  putConfigMap(h.api, "a", "fence", { "f.pem": pool[6]!.pem });
  t.ok(await soon(() => h.inventory.get({ source: "configmap", namespace: "a", name: "fence", key: "f.pem" }) !== undefined));
  t.ok((await counter(h, "relists", { source: "configmap", reason: "watch_expired" })) >= 1);
  t.equal(parses(h), callsBefore + 1, "only the fence was parsed");
  t.equal(h.inventory.generation, generationBefore + 1, "only the fence was published");

  // A changed certificate key is read, once.
  putConfigMap(h.api, "a", "cm-1", { "ca.crt": pool[2]!.pem });
  t.ok(await soon(() => serialAt(h, "a", "cm-1", "ca.crt") === serial(pool[2]!)));
  t.equal(parses(h), callsBefore + 2);
  const r = await converge(h);
  t.same(r.actual, r.expected);
});
