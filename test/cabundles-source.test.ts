/**
 * The caBundles source against the API server double: the caBundle fields of validating and mutating
 * webhook configurations, APIServices and CRD conversion webhooks, their location labels, their read
 * errors, and every fault of the double; a 403 on one kind leaves the other kinds alone and keeps the
 * refused kind's certificates, stale.
 */
import type { KubeConfig } from "@kubernetes/client-node";
import t, { type Test } from "tap";
import type { Issued } from "../scripts/certgen.js";
import type { Config } from "../src/config.js";
import { caBundlesSource } from "../src/sources/cabundles.js";
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
type KindKey = "validatingWebhooks" | "mutatingWebhooks" | "apiServices" | "crdConversions";

const ALL_KINDS: KindKey[] = ["validatingWebhooks", "mutatingWebhooks", "apiServices", "crdConversions"];
const PLURAL: Record<KindKey, string> = {
  validatingWebhooks: "validatingwebhookconfigurations",
  mutatingWebhooks: "mutatingwebhookconfigurations",
  apiServices: "apiservices",
  crdConversions: "customresourcedefinitions",
};

const b64 = (v: string | Buffer): string => Buffer.from(v).toString("base64");
const serial = (c: Issued): string => c.cert.serialNumber.toLowerCase().replace(/^0+(?=.)/, "");
/** Polls for up to about 30 s: generous on a loaded machine, quick when all is well. */
const soon = (check: () => boolean): Promise<boolean> => eventually(check, 1500);

const build = (config: Config, ctx: SourceContext, kubeConfig: KubeConfig): KubeCertificateSource => caBundlesSource(config.sources.caBundles, kubeConfig, config.kubernetes, ctx);

/** The caBundles source with the given kinds enabled (every kind by default) against a double. */
function startCaBundles(t: Test, kinds: KindKey[] = ALL_KINDS, opts: Omit<HarnessOptions, "secrets"> & { labelSelector?: string } = {}): Promise<H> {
  const { labelSelector, ...rest } = opts;
  const caBundles = Object.fromEntries(kinds.map((k) => [k, { enabled: true, ...(labelSelector ? { labelSelector } : {}) }]));
  return startKubeHarness(t, { ...rest, sources: { caBundles }, build });
}

interface Hook {
  name: string;
  /** As sent (base64 of PEM), or undefined for none. */
  caBundle?: string;
  url?: string;
}

function webhookConfiguration(api: FakeApiServer, kind: "ValidatingWebhookConfiguration" | "MutatingWebhookConfiguration", name: string, hooks: Hook[], labels?: Record<string, string>): K8sObject {
  const webhooks = hooks.map((h) => {
    const clientConfig: Record<string, unknown> = h.url ? { url: h.url } : { service: { namespace: "webhooks", name: h.name.split(".")[0], path: "/validate" } };
    if (h.caBundle !== undefined) clientConfig.caBundle = h.caBundle;
    return { name: h.name, clientConfig, sideEffects: "None", admissionReviewVersions: ["v1"] };
  });
  return api.put({ apiVersion: "admissionregistration.k8s.io/v1", kind, metadata: { name, ...(labels ? { labels } : {}) }, webhooks });
}

const validating = (api: FakeApiServer, name: string, hooks: Hook[], labels?: Record<string, string>) => webhookConfiguration(api, "ValidatingWebhookConfiguration", name, hooks, labels);
const mutating = (api: FakeApiServer, name: string, hooks: Hook[]) => webhookConfiguration(api, "MutatingWebhookConfiguration", name, hooks);

function apiService(api: FakeApiServer, name: string, caBundle?: string, labels?: Record<string, string>): K8sObject {
  const spec: Record<string, unknown> = { group: name.split(".").slice(1).join("."), version: name.split(".")[0], groupPriorityMinimum: 100, versionPriority: 100 };
  if (caBundle !== undefined) {
    spec.caBundle = caBundle;
    spec.service = { namespace: "kube-system", name: "metrics-server", port: 443 };
  }
  return api.put({ apiVersion: "apiregistration.k8s.io/v1", kind: "APIService", metadata: { name, ...(labels ? { labels } : {}) }, spec });
}

function crd(api: FakeApiServer, name: string, conversion: { strategy: "None" } | { strategy: "Webhook"; caBundle?: string }): K8sObject {
  const spec: Record<string, unknown> = { group: name.split(".").slice(1).join("."), names: { plural: name.split(".")[0], kind: "Thing" }, scope: "Namespaced", versions: [{ name: "v1", served: true, storage: true }] };
  if (conversion.strategy === "None") spec.conversion = { strategy: "None" };
  else {
    const clientConfig: Record<string, unknown> = { service: { namespace: "crds", name: "converter", path: "/convert" } };
    if (conversion.caBundle !== undefined) clientConfig.caBundle = conversion.caBundle;
    spec.conversion = { strategy: "Webhook", webhook: { clientConfig, conversionReviewVersions: ["v1"] } };
  }
  return api.put({ apiVersion: "apiextensions.k8s.io/v1", kind: "CustomResourceDefinition", metadata: { name }, spec });
}

const STRICT_BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** One caBundle as the exporter must hold it: serials, or `!bad_base64` / `!error`. */
function expectedValue(caBundle: string): string {
  if (!STRICT_BASE64.test(caBundle) || caBundle.length % 4 !== 0) return "!bad_base64";
  const serials = serialsOfPem(Buffer.from(caBundle, "base64").toString("latin1"));
  return serials.length ? serials.join(",") : "!error";
}

/**
 * The locations the exporter must hold for the double's objects of the given kinds, as
 * `/<Kind>/<name>/<key>` → value; computed from the documented contract, not from the source.
 */
function expectedCaBundles(api: FakeApiServer, kinds: KindKey[] = ALL_KINDS, refused: KindKey[] = []): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of refused) out[`//${PLURAL[key]}`] = "!forbidden";
  const add = (kind: string, name: string, key: string, caBundle: unknown) => {
    if (typeof caBundle === "string" && caBundle !== "") out[`/${kind}/${name}/${key}`] = expectedValue(caBundle);
  };
  type Obj = K8sObject & {
    webhooks?: { name: string; clientConfig?: { caBundle?: string } }[];
    spec?: { caBundle?: string; conversion?: { strategy?: string; webhook?: { clientConfig?: { caBundle?: string } } } };
  };
  for (const key of kinds) {
    for (const o of api.list(PLURAL[key]) as Obj[]) {
      const name = o.metadata.name!;
      if (key === "validatingWebhooks" || key === "mutatingWebhooks") for (const w of o.webhooks ?? []) add(o.kind!, name, `webhooks/${w.name}`, w.clientConfig?.caBundle);
      else if (key === "apiServices") add("APIService", name, "spec.caBundle", o.spec?.caBundle);
      else if (o.spec?.conversion?.strategy === "Webhook") add("CustomResourceDefinition", name, "spec.conversion.webhook.clientConfig.caBundle", o.spec.conversion.webhook?.clientConfig?.caBundle);
    }
  }
  return sortKeys(out);
}

/** What the exporter holds for source "cabundle", bad_base64 told apart from other read errors. */
function actualCaBundles(h: H): Record<string, string> {
  const out = actualLocations(h.inventory, "cabundle");
  for (const e of h.inventory.entries()) {
    if (e.location.source === "cabundle" && e.error?.reason === "bad_base64") out[`${e.location.namespace}/${e.location.name}/${e.location.key}`] = "!bad_base64";
  }
  return out;
}

function converge(h: H, kinds: KindKey[] = ALL_KINDS, refused: KindKey[] = []): Promise<Convergence> {
  return convergeWith(
    () => actualCaBundles(h),
    () => expectedCaBundles(h.api, kinds, refused),
    1500,
  );
}

/** Objects of every kind, more of each than a page of 3. */
async function seed(api: FakeApiServer): Promise<Issued[]> {
  const pool = await certPool(8);
  for (let i = 0; i < 5; i++) {
    validating(api, `vw-${i}`, [
      { name: `a.vw-${i}.example.com`, caBundle: b64(pool[i % 8]!.pem) },
      { name: `b.vw-${i}.example.com`, caBundle: b64(pool[(i + 1) % 8]!.pem + pool[7]!.pem), url: "https://hooks.example.com/b" },
    ]);
    mutating(api, `mw-${i}`, [{ name: `m.mw-${i}.example.com`, caBundle: b64(pool[(i + 2) % 8]!.pem) }]);
    apiService(api, `v1beta${i}.metrics.example.com`, b64(pool[(i + 3) % 8]!.pem));
    crd(api, `things${i}.example.com`, { strategy: "Webhook", caBundle: b64(pool[(i + 4) % 8]!.pem) });
  }
  apiService(api, "v1.apps");
  crd(api, "plain.example.com", { strategy: "None" });
  return pool;
}

/** Changes the source cannot see while its watches are silent: deletes, updates, adds of every kind. */
function mutate(api: FakeApiServer, pool: Issued[], round: number): void {
  api.remove("validatingwebhookconfigurations", undefined, `vw-${round % 5}`);
  mutating(api, `mw-${round % 5}`, [
    { name: "m.example.com", caBundle: b64(pool[(round + 3) % 8]!.pem) },
    { name: `n${round}.example.com`, caBundle: b64(pool[(round + 4) % 8]!.pem) },
  ]);
  apiService(api, `v1beta${(round + 1) % 5}.metrics.example.com`);
  apiService(api, `v${round}.new.example.com`, b64(pool[(round + 5) % 8]!.pem));
  crd(api, `things${(round + 2) % 5}.example.com`, { strategy: "None" });
}

async function started(t: Test, kinds: KindKey[] = ALL_KINDS, opts: Omit<HarnessOptions, "secrets"> = {}): Promise<{ h: H; pool: Issued[] }> {
  const h = await startCaBundles(t, kinds, { ...opts, kubernetes: { pageSize: 3, ...opts.kubernetes } });
  const pool = await seed(h.api);
  await h.source.start();
  const r = await converge(h, kinds);
  t.same(r.actual, r.expected, "first sync matches");
  t.ok(await soon(() => h.api.openWatches === kinds.length), "watching every kind");
  return { h, pool };
}

t.test("all four kinds: one location per caBundle, labelled as documented", async (t) => {
  const pool = await certPool(6);
  const h = await startCaBundles(t);
  validating(h.api, "vw", [
    { name: "a.example.com", caBundle: b64(pool[0]!.pem) },
    { name: "b.example.com", caBundle: b64(pool[1]!.pem + pool[2]!.pem), url: "https://hooks.example.com/b" },
    { name: "empty.example.com", caBundle: "" },
    { name: "none.example.com" },
  ]);
  mutating(h.api, "mw", [{ name: "m.example.com", caBundle: b64(pool[3]!.pem) }]);
  apiService(h.api, "v1beta1.metrics.k8s.io", b64(pool[4]!.pem));
  apiService(h.api, "v1.apps");
  crd(h.api, "widgets.example.com", { strategy: "Webhook", caBundle: b64(pool[5]!.pem) });
  crd(h.api, "gadgets.example.com", { strategy: "None" });
  crd(h.api, "things.example.com", { strategy: "Webhook", caBundle: "" });
  crd(h.api, "bare.example.com", { strategy: "Webhook" });
  await h.source.start();

  t.same(actualCaBundles(h), {
    "/CustomResourceDefinition/widgets.example.com/spec.conversion.webhook.clientConfig.caBundle": serial(pool[5]!),
    "/APIService/v1beta1.metrics.k8s.io/spec.caBundle": serial(pool[4]!),
    "/MutatingWebhookConfiguration/mw/webhooks/m.example.com": serial(pool[3]!),
    "/ValidatingWebhookConfiguration/vw/webhooks/a.example.com": serial(pool[0]!),
    "/ValidatingWebhookConfiguration/vw/webhooks/b.example.com": `${serial(pool[1]!)},${serial(pool[2]!)}`,
  }, "empty or absent caBundles, a local APIService and CRDs without a conversion webhook have no location");
  t.same(actualCaBundles(h), expectedCaBundles(h.api));
  t.notOk([...h.inventory.entries()].some((e) => e.error), "and no error either");
  t.ok(h.inventory.get({ source: "cabundle", namespace: "", name: "ValidatingWebhookConfiguration/vw", key: "webhooks/a.example.com" }), "location labels");
  t.ok(h.inventory.get({ source: "cabundle", namespace: "", name: "APIService/v1beta1.metrics.k8s.io", key: "spec.caBundle" }));
  t.ok(h.inventory.get({ source: "cabundle", namespace: "", name: "CustomResourceDefinition/widgets.example.com", key: "spec.conversion.webhook.clientConfig.caBundle" }));

  t.same(h.source.healthSources(), Object.values(PLURAL), "one health source per kind, named by its resource");
  const up = (await h.health.sourceUp.get()).values;
  for (const plural of Object.values(PLURAL)) t.equal(up.find((v) => v.labels.source === plural)?.value, 1, `${plural} up`);
  t.same([...new Set(h.api.requests({ verb: "list" }).map((r) => r.path))].sort(), [
    "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
    "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
    "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
    "/apis/apiregistration.k8s.io/v1/apiservices",
  ]);

  // One kind enabled: only it is read; its label selector goes to the server.
  const one = await startCaBundles(t, ["apiServices"], { server: h.api, labelSelector: "watch=yes" });
  h.api.clearRequests();
  apiService(h.api, "v1.labelled.example.com", b64(pool[0]!.pem), { watch: "yes" });
  await one.source.start();
  t.same(Object.keys(actualCaBundles(one)), ["/APIService/v1.labelled.example.com/spec.caBundle"]);
  t.same(one.source.healthSources(), ["apiservices"]);
  const lists = h.api.requests({ verb: "list" }).filter((r) => r.query.labelSelector === "watch=yes");
  t.same([...new Set(lists.map((r) => r.path))], ["/apis/apiregistration.k8s.io/v1/apiservices"], "the selector is sent with the list");
  await one.close();
});

t.test("webhooks added to and removed from a configuration: its locations follow", async (t) => {
  const pool = await certPool(4);
  const h = await startCaBundles(t, ["validatingWebhooks", "mutatingWebhooks"]);
  const kinds: KindKey[] = ["validatingWebhooks", "mutatingWebhooks"];
  const a = { name: "a.example.com", caBundle: b64(pool[0]!.pem) };
  const b = { name: "b.example.com", caBundle: b64(pool[1]!.pem) };
  const c = { name: "c.example.com", caBundle: b64(pool[2]!.pem) };
  validating(h.api, "vw", [a, b]);
  mutating(h.api, "mw", [a]);
  await h.source.start();
  t.same(Object.keys(actualCaBundles(h)), ["/MutatingWebhookConfiguration/mw/webhooks/a.example.com", "/ValidatingWebhookConfiguration/vw/webhooks/a.example.com", "/ValidatingWebhookConfiguration/vw/webhooks/b.example.com"]);
  t.ok(await soon(() => h.api.openWatches === 2));

  validating(h.api, "vw", [a, b, c]);
  let r = await converge(h, kinds);
  t.same(r.actual, r.expected, "added");
  t.equal(r.actual["/ValidatingWebhookConfiguration/vw/webhooks/c.example.com"], serial(pool[2]!));

  validating(h.api, "vw", [b, c]);
  r = await converge(h, kinds);
  t.same(r.actual, r.expected, "removed");
  t.notOk("/ValidatingWebhookConfiguration/vw/webhooks/a.example.com" in r.actual);
  t.ok("/MutatingWebhookConfiguration/mw/webhooks/a.example.com" in r.actual, "a webhook of the same name elsewhere stays");

  validating(h.api, "vw", [{ ...b, caBundle: b64(pool[3]!.pem) }, { ...c, caBundle: "" }]);
  r = await converge(h, kinds);
  t.same(r.actual, r.expected, "rotated and emptied");
  t.same(Object.keys(r.actual), ["/MutatingWebhookConfiguration/mw/webhooks/a.example.com", "/ValidatingWebhookConfiguration/vw/webhooks/b.example.com"]);
  t.equal(r.actual["/ValidatingWebhookConfiguration/vw/webhooks/b.example.com"], serial(pool[3]!));

  validating(h.api, "vw", [{ name: "b.example.com", caBundle: "" }]);
  r = await converge(h, kinds);
  t.same(Object.keys(r.actual), ["/MutatingWebhookConfiguration/mw/webhooks/a.example.com"], "no caBundle left: the configuration holds nothing");
  t.equal(h.source.collections[0]!.states().length, 0, "nothing remembered of it");
});

t.test("caBundles that are not base64 or hold no certificate are read errors; empty ones are nothing", async (t) => {
  const pool = await certPool(1);
  const h = await startCaBundles(t);
  validating(h.api, "vw", [
    { name: "bad.example.com", caBundle: "%%% not base64 %%%" },
    { name: "text.example.com", caBundle: b64("hello, not a certificate") },
    { name: "key.example.com", caBundle: b64("-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n") },
    { name: "empty.example.com", caBundle: "" },
    { name: "good.example.com", caBundle: b64(pool[0]!.pem) },
  ]);
  apiService(h.api, "v1.bad.example.com", "not-base64!");
  crd(h.api, "bad.example.com", { strategy: "Webhook", caBundle: b64("garbage") });
  await h.source.start();
  const at = (name: string, key: string) => h.inventory.get({ source: "cabundle", namespace: "", name, key });
  t.equal(at("ValidatingWebhookConfiguration/vw", "webhooks/bad.example.com")?.error?.reason, "bad_base64");
  t.match(at("ValidatingWebhookConfiguration/vw", "webhooks/bad.example.com")?.error?.message, /webhooks\/bad\.example\.com: caBundle is not valid base64/);
  t.equal(at("ValidatingWebhookConfiguration/vw", "webhooks/text.example.com")?.error?.reason, "not_pem_or_der");
  t.equal(at("ValidatingWebhookConfiguration/vw", "webhooks/key.example.com")?.error?.reason, "no_certificate");
  t.equal(at("ValidatingWebhookConfiguration/vw", "webhooks/empty.example.com"), undefined, "empty: no location, no error");
  t.equal(at("ValidatingWebhookConfiguration/vw", "webhooks/good.example.com")?.certificates.length, 1, "the good webhook beside them is read");
  t.equal(at("APIService/v1.bad.example.com", "spec.caBundle")?.error?.reason, "bad_base64");
  t.equal(at("CustomResourceDefinition/bad.example.com", "spec.conversion.webhook.clientConfig.caBundle")?.error?.reason, "not_pem_or_der");
  t.same(actualCaBundles(h), expectedCaBundles(h.api));
  t.equal(await counter(h, "readErrors", { source: "cabundle", reason: "bad_base64" }), 2);
  const body = Buffer.concat(await h.renderer.renderCertificates()).toString("utf8");
  t.match(body, 'cert_read_errors{source="cabundle",namespace="",name="ValidatingWebhookConfiguration/vw",key="webhooks/bad.example.com",reason="bad_base64"} 1');
});

t.test("deletion of each kind removes its locations", async (t) => {
  const { h } = await started(t);
  for (let i = 0; i < 5; i++) {
    h.api.remove("validatingwebhookconfigurations", undefined, `vw-${i}`);
    h.api.remove("mutatingwebhookconfigurations", undefined, `mw-${i}`);
    h.api.remove("apiservices", undefined, `v1beta${i}.metrics.example.com`);
    if (i > 0) h.api.remove("customresourcedefinitions", undefined, `things${i}.example.com`);
  }
  const r = await converge(h);
  t.same(Object.keys(r.actual), ["/CustomResourceDefinition/things0.example.com/spec.conversion.webhook.clientConfig.caBundle"]);
  t.same(r.actual, r.expected);
  t.same(
    h.source.collections.map((c) => c.states().length),
    [0, 0, 0, 1],
    "nothing remembered of the deleted objects",
  );
});

t.test("paging: more objects of each kind than the page size", async (t) => {
  const h = await startCaBundles(t, ALL_KINDS, { kubernetes: { pageSize: 2 } });
  await seed(h.api);
  await h.source.start();
  const r = await converge(h);
  t.same(r.actual, r.expected);
  t.equal(Object.keys(r.actual).length, 25);
  for (const plural of Object.values(PLURAL)) {
    t.ok(h.api.countRequests({ verb: "list", resource: plural, query: { continue: true } }) >= 2, `${plural} paged`);
  }
});

t.test("410 on a continue token and on the watch → relist, exactly the server's state", async (t) => {
  const h = await startCaBundles(t, ALL_KINDS, { kubernetes: { pageSize: 2 } });
  const pool = await seed(h.api);
  h.api.failNext(410, { match: { verb: "list", resource: "apiservices", query: { continue: true } }, message: "The provided continue parameter is too old" });
  await h.source.start();
  let r = await converge(h);
  t.same(r.actual, r.expected, "continue expired");
  t.equal(await counter(h, "relists", { source: "apiservices", reason: "continue_expired" }), 1);
  t.equal(await counter(h, "relists", { source: "validatingwebhookconfigurations" }), 0, "counted for its kind only");

  t.ok(await soon(() => h.api.openWatches === 4));
  h.api.silenceWatches({ open: true });
  mutate(h.api, pool, 1);
  h.api.compact();
  h.api.closeWatches();
  r = await converge(h);
  t.same(r.actual, r.expected, "watch expired: deleted, updated and added objects of every kind reconciled");
  for (const plural of Object.values(PLURAL)) t.ok((await counter(h, "relists", { source: plural, reason: "watch_expired" })) >= 1, `${plural} relisted`);
});

t.test("watches that end or go silent are restarted and catch up", async (t) => {
  const { h, pool } = await started(t, ALL_KINDS, { kubernetes: { watchTimeout: "1s" } });
  h.api.closeWatches();
  mutate(h.api, pool, 2);
  let r = await converge(h);
  t.same(r.actual, r.expected, "closed");
  t.ok((await counter(h, "watchRestarts", { source: "mutatingwebhookconfigurations", reason: "closed" })) >= 1);

  h.api.silenceWatches({ open: true });
  mutate(h.api, pool, 3);
  r = await converge(h);
  t.same(r.actual, r.expected, "silent");
  t.ok((await counter(h, "watchRestarts", { source: "apiservices", reason: "silent" })) >= 1);

  h.api.resetNextList({ count: 1 });
  h.api.silenceWatches({ open: true });
  mutate(h.api, pool, 4);
  h.api.compact();
  h.api.closeWatches();
  r = await converge(h);
  t.same(r.actual, r.expected, "a relist page cut in the middle");
});

t.test("403 on one kind: its refusal location; its certificates kept, stale; the other kinds unaffected", async (t) => {
  const { h, pool } = await started(t);
  const apiServiceLocations = () => [...h.inventory.entries()].filter((e) => e.location.name.startsWith("APIService/"));
  const before = actualCaBundles(h);
  t.equal(apiServiceLocations().length, 5);

  h.api.forbid({ resource: "apiservices" });
  h.api.closeWatches();
  const refusal = { source: "cabundle" as const, namespace: "", name: "", key: "apiservices" };
  t.ok(await soon(() => h.inventory.get(refusal)?.error?.reason === "forbidden"), "the kind's refusal location");
  t.match(h.inventory.get(refusal)?.error?.message, /cannot (list|watch) apiservices\.apiregistration\.k8s\.io at the cluster scope; grant list and watch on apiservices\.apiregistration\.k8s\.io with a ClusterRole/);
  t.ok(await soon(() => apiServiceLocations().every((e) => e.stale)), "its certificates marked stale once its list is refused");
  t.ok(h.api.countRequests({ verb: "list", resource: "apiservices", namespace: null }) >= 2, "the list was refused");
  const now = actualCaBundles(h);
  delete now["//apiservices"];
  t.same(now, before, "and kept, as they were");
  t.same(
    [...h.inventory.entries()].filter((e) => e.stale).map((e) => e.location.name.split("/")[0]),
    Array(5).fill("APIService"),
    "no other kind is stale",
  );
  const body = Buffer.concat(await h.renderer.renderCertificates()).toString("utf8");
  t.match(body, 'cert_location_stale{source="cabundle",namespace="",name="APIService/v1beta0.metrics.example.com",key="spec.caBundle"} 1');
  t.match(body, 'cert_read_errors{source="cabundle",namespace="",name="",key="apiservices",reason="forbidden"} 1');
  t.match(body, /cert_not_after_timestamp_seconds\{source="cabundle",namespace="",name="APIService\/v1beta0\.metrics\.example\.com"/, "its certificate series are still exported");

  // The other kinds go on.
  validating(h.api, "late", [{ name: "late.example.com", caBundle: b64(pool[6]!.pem) }]);
  t.ok(await soon(() => h.inventory.get({ source: "cabundle", namespace: "", name: "ValidatingWebhookConfiguration/late", key: "webhooks/late.example.com" }) !== undefined), "webhooks still watched");
  const up = (await h.health.sourceUp.get()).values;
  t.equal(up.find((v) => v.labels.source === "validatingwebhookconfigurations")?.value, 1);

  // Deleted and changed while refused; then permission is granted back.
  h.api.remove("apiservices", undefined, "v1beta0.metrics.example.com");
  apiService(h.api, "v1beta1.metrics.example.com", b64(pool[0]!.pem));
  h.api.clearFaults();
  const r = await converge(h);
  t.same(r.actual, r.expected, "exactly the server's state: the deleted one gone, the changed one read");
  t.equal(r.actual["/APIService/v1beta1.metrics.example.com/spec.caBundle"], serial(pool[0]!));
  t.ok(await soon(() => ![...h.inventory.entries()].some((e) => e.stale)), "nothing stale");
  t.equal(h.inventory.get(refusal), undefined, "the refusal location is gone");
});

t.test("the refusal location of a kind refused from the start has no certificates to keep", async (t) => {
  const h = await startCaBundles(t, ["validatingWebhooks", "crdConversions"]);
  await seed(h.api);
  h.api.forbid({ resource: "customresourcedefinitions" });
  await h.source.start();
  const r = await converge(h, ["validatingWebhooks"], ["crdConversions"]);
  t.same(r.actual, r.expected, "the webhooks are read, the CRDs one forbidden location");
  t.ok("//customresourcedefinitions" in r.actual);
  t.notOk([...h.inventory.entries()].some((e) => e.stale));
});
