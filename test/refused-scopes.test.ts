/**
 * A refusal or an outage never silences an alert (issue 12, item 2). For Secrets and ConfigMaps: a
 * namespace refused (403 on its list) after its certificates were read keeps them exported, each
 * with `cert_location_stale 1`, beside the scope's forbidden read error; when access returns the
 * marks go, objects deleted meanwhile go, the others are as before. An API server that cannot be
 * reached keeps every certificate too, with source_up 0. Asserted on the rendered /metrics body.
 */
import t, { type Test } from "tap";
import type { Issued } from "../scripts/certgen.js";
import type { SourceKind } from "../src/model.js";
import { configMapsSource } from "../src/sources/configmaps.js";
import type { KubeCertificateSource } from "../src/sources/kube-certificates.js";
import { SecretsSource } from "../src/sources/secrets.js";
import type { FakeApiServer } from "./k8s/apiserver.js";
import { certPool, eventually, sortKeys, startKubeHarness, type HarnessOptions, type KubeHarness } from "./k8s/exporter-harness.js";

type H = KubeHarness<KubeCertificateSource>;

/** Polls for up to about 30 s: generous on a loaded machine, quick when all is well. */
const soon = (check: () => boolean | Promise<boolean>): Promise<boolean> => eventually(check, 1500);

interface Kind {
  title: string;
  source: SourceKind;
  resource: string;
  /** The data key certificates are put under. */
  key: string;
  start(t: Test, namespaces: Record<string, unknown>, opts?: Omit<HarnessOptions, "secrets">): Promise<H>;
  put(api: FakeApiServer, namespace: string, name: string, cert: Issued): void;
}

const KINDS: Kind[] = [
  {
    title: "Secrets",
    source: "secret",
    resource: "secrets",
    key: "tls.crt",
    start: (t, namespaces, opts = {}) =>
      startKubeHarness(t, {
        ...opts,
        sources: { secrets: { enabled: true, namespaces } },
        build: (config, ctx, kubeConfig) => new SecretsSource({ secrets: config.sources.secrets, kubernetes: config.kubernetes, kubeConfig }, ctx),
      }),
    put: (api, namespace, name, cert) => void api.putSecret(namespace, name, { "tls.crt": cert.pem, "tls.key": "key" }, { type: "kubernetes.io/tls" }),
  },
  {
    title: "ConfigMaps",
    source: "configmap",
    resource: "configmaps",
    key: "ca.crt",
    start: (t, namespaces, opts = {}) =>
      startKubeHarness(t, {
        ...opts,
        sources: { configMaps: { enabled: true, namespaces } },
        build: (config, ctx, kubeConfig) => configMapsSource(config.sources.configMaps, kubeConfig, config.kubernetes, ctx),
      }),
    put: (api, namespace, name, cert) => void api.put({ apiVersion: "v1", kind: "ConfigMap", metadata: { name, namespace }, data: { "ca.crt": cert.pem, "app.yaml": "x: 1" } }),
  },
];

/** The rendered /metrics body: the inventory's series and the exporter's own. */
async function scrape(h: H): Promise<string> {
  return Buffer.concat(await h.renderer.render()).toString("utf8");
}

/** Samples of one family as `labels → value`, only those whose labels contain `fragment`. */
function samples(body: string, metric: string, fragment = ""): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of body.split("\n")) {
    if (!line.startsWith(`${metric}{`) || !line.includes(fragment)) continue;
    const end = line.lastIndexOf("}");
    out[line.slice(metric.length + 1, end)] = line.slice(end + 2);
  }
  return out;
}

/** The location labels as metrics.ts renders them. */
const at = (source: string, namespace: string, name: string, key: string): string => `source="${source}",namespace="${namespace}",name="${name}",key="${key}"`;

/** `ns/name` → serial of every certificate series exported for the source, from cert_not_after_timestamp_seconds. */
function exportedSerials(body: string, source: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const labels of Object.keys(samples(body, "cert_not_after_timestamp_seconds", `source="${source}"`))) {
    const get = (label: string) => labels.match(new RegExp(`(?:^|,)${label}="([^"]*)"`))?.[1] ?? "";
    out[`${get("namespace")}/${get("name")}`] = get("serial").replace(/^0+(?=.)/, "");
  }
  return sortKeys(out);
}

const serial = (c: Issued): string => c.cert.serialNumber.toLowerCase().replace(/^0+(?=.)/, "");

async function sourceUp(h: H, source: string): Promise<number | undefined> {
  return (await h.health.sourceUp.get()).values.find((v) => v.labels.source === source)?.value;
}

/** Ends the watches so that they resume from before a compaction: 410, then a relist. */
function forceRelist(api: FakeApiServer): void {
  api.silenceWatches({ open: true });
  api.compact();
  api.closeWatches();
}

for (const kind of KINDS) {
  const { source } = kind;

  t.test(`${kind.title}: a namespace refused after it was read keeps its certificates exported, stale, until access returns`, async (t) => {
    const pool = await certPool(6);
    const h = await kind.start(t, { include: ["a", "b"] });
    kind.put(h.api, "a", "one", pool[0]!);
    kind.put(h.api, "b", "one", pool[1]!);
    kind.put(h.api, "b", "two", pool[2]!);
    kind.put(h.api, "b", "three", pool[3]!);
    await h.source.start();
    const first = await scrape(h);
    const read = { "a/one": serial(pool[0]!), "b/one": serial(pool[1]!), "b/two": serial(pool[2]!), "b/three": serial(pool[3]!) };
    t.same(exportedSerials(first, source), read, "all read");
    t.same(samples(first, "cert_location_stale"), {}, "nothing stale");
    t.ok(await soon(() => h.api.openWatches === 2), "watching both namespaces");

    // RBAC loses namespace b; the next relist is refused.
    h.api.forbid({ resource: kind.resource, namespace: "b" });
    forceRelist(h.api);
    t.ok(await soon(async () => Object.keys(samples(await scrape(h), "cert_location_stale")).length === 3), "b's three locations marked stale");
    let body = await scrape(h);
    t.same(
      samples(body, "cert_location_stale"),
      { [at(source, "b", "one", kind.key)]: "1", [at(source, "b", "three", kind.key)]: "1", [at(source, "b", "two", kind.key)]: "1" },
      "cert_location_stale 1 for each of b's locations, none for a's",
    );
    t.same(exportedSerials(body, source), read, "every certificate series still exported");
    t.same(Object.keys(samples(body, "cert_expires_in_days", 'namespace="b"')), Object.keys(samples(first, "cert_expires_in_days", 'namespace="b"')), "the same series");
    t.same(samples(body, "cert_read_errors"), { [`${at(source, "b", "", "")},reason="forbidden"`]: "1" }, "the scope's forbidden read error, the only one");
    t.equal(await sourceUp(h, source), 1, "the API answers: the source is up, the refusal is a read error");

    // Meanwhile, unseen: one deleted, one changed, one added.
    h.api.remove(kind.resource, "b", "two");
    kind.put(h.api, "b", "three", pool[4]!);
    kind.put(h.api, "b", "four", pool[5]!);
    // The refused relist is retried and still refused: nothing changes.
    const refusedLists = h.api.countRequests({ verb: "list", namespace: "b", resource: kind.resource });
    t.ok(await soon(() => h.api.countRequests({ verb: "list", namespace: "b", resource: kind.resource }) > refusedLists + 1), "retried");
    body = await scrape(h);
    t.same(exportedSerials(body, source), read, "still the last-known certificates");
    t.equal(Object.keys(samples(body, "cert_location_stale")).length, 3);

    // Permission granted back.
    h.api.clearFaults();
    const after = { "a/one": serial(pool[0]!), "b/four": serial(pool[5]!), "b/one": serial(pool[1]!), "b/three": serial(pool[4]!) };
    t.ok(await soon(async () => JSON.stringify(exportedSerials(await scrape(h), source)) === JSON.stringify(after)), "the relist is applied");
    // The refusal of the watch goes when a watch opens, just after the list.
    t.ok(await soon(async () => Object.keys(samples(await scrape(h), "cert_read_errors")).length === 0), "the forbidden error goes");
    body = await scrape(h);
    t.same(exportedSerials(body, source), after, "the deleted one gone, the changed and added ones read, the rest as before");
    t.same(samples(body, "cert_location_stale"), {}, "stale marks cleared");
    t.same(samples(body, "cert_read_errors"), {}, "the forbidden error gone");
    const entry = h.inventory.get({ source, namespace: "b", name: "one", key: kind.key });
    t.equal(entry?.stale, undefined, "the inventory entry is current again");
  });

  t.test(`${kind.title}: refused at a periodic resync, cluster-wide; every location kept, stale`, async (t) => {
    const pool = await certPool(3);
    const h = await kind.start(t, { include: ["team-*"] }, { kubernetes: { resyncInterval: "600ms", watchTimeout: "1h" } });
    kind.put(h.api, "team-a", "one", pool[0]!);
    kind.put(h.api, "team-b", "two", pool[1]!);
    kind.put(h.api, "other", "three", pool[2]!);
    await h.source.start();
    const read = { "team-a/one": serial(pool[0]!), "team-b/two": serial(pool[1]!) };
    t.same(exportedSerials(await scrape(h), source), read);

    h.api.forbid({ resource: kind.resource, namespace: null, verbs: ["list"] });
    t.ok(await soon(async () => Object.keys(samples(await scrape(h), "cert_location_stale")).length === 2), "marked stale at the resync");
    const body = await scrape(h);
    t.same(exportedSerials(body, source), read, "kept");
    t.same(samples(body, "cert_read_errors"), { [`${at(source, "", "", "")},reason="forbidden"`]: "1" }, "the cluster scope's refusal");
    t.match(h.inventory.get({ source, namespace: "", name: "", key: "" })?.error?.message, new RegExp(`cannot list ${kind.resource} at the cluster scope`));

    h.api.remove(kind.resource, "team-a", "one");
    h.api.clearFaults();
    t.ok(await soon(async () => Object.keys(samples(await scrape(h), "cert_location_stale")).length === 0), "current again at the next resync");
    t.ok(await soon(async () => JSON.stringify(exportedSerials(await scrape(h), source)) === JSON.stringify({ "team-b/two": serial(pool[1]!) })), "the one deleted meanwhile is gone");
    t.same(samples(await scrape(h), "cert_read_errors"), {});
  });

  t.test(`${kind.title}: an API server that cannot be reached keeps every certificate, with source_up 0`, async (t) => {
    const pool = await certPool(3);
    const h = await kind.start(t, { include: ["a", "b"] }, { kubernetes: { resyncInterval: "1s" } });
    kind.put(h.api, "a", "one", pool[0]!);
    kind.put(h.api, "b", "two", pool[1]!);
    await h.source.start();
    const read = { "a/one": serial(pool[0]!), "b/two": serial(pool[1]!) };
    t.same(exportedSerials(await scrape(h), source), read);
    t.ok(await soon(() => h.api.openWatches === 2));

    await h.api.stop();
    t.ok(await soon(async () => (await sourceUp(h, source)) === 0), "source_up 0 while the API server is down");
    // Past a resync (1 s): the relist fails too, and an unreachable server must not make the source forget anything.
    const failed = h.logs.length;
    t.ok(await soon(() => h.logs.slice(failed).filter((l) => l.msg === "list request failed; retrying").length >= 2), "a relist failed meanwhile, and was retried");
    let body = await scrape(h);
    t.same(exportedSerials(body, source), read, "every certificate still exported");
    t.match(body, `cert_expiry_exporter_source_up{source="${source}"} 0`);
    t.same(samples(body, "cert_read_errors"), {}, "an outage is not a read error of any location");

    kind.put(h.api, "a", "three", pool[2]!);
    h.api.remove(kind.resource, "b", "two");
    await h.api.restart();
    t.ok(await soon(async () => (await sourceUp(h, source)) === 1), "up again");
    t.ok(await soon(async () => JSON.stringify(exportedSerials(await scrape(h), source)) === JSON.stringify({ "a/one": serial(pool[0]!), "a/three": serial(pool[2]!) })), "caught up");
    body = await scrape(h);
    t.same(samples(body, "cert_location_stale"), {});
  });
}

t.test("a reload that rebuilds a source while a scope is refused keeps that scope's last-known certificates, stale, until access returns", async (t) => {
  const { Writable } = await import("node:stream");
  const { pino } = await import("pino");
  const { Exporter } = await import("../src/app.js");
  const { validateConfig } = await import("../src/config.js");
  const { FakeApiServer } = await import("./k8s/apiserver.js");
  const api = await FakeApiServer.start({ bookmarkIntervalMs: 200 });
  t.teardown(() => api.close());
  const pool = await certPool(4);
  const configMap = (namespace: string, name: string, cert: Issued) => api.put({ apiVersion: "v1", kind: "ConfigMap", metadata: { name, namespace }, data: { "ca.crt": cert.pem } });
  configMap("a", "one", pool[0]!);
  configMap("b", "one", pool[1]!);
  configMap("b", "two", pool[2]!);
  const config = (keys: string[]) =>
    validateConfig({
      listen: { address: "127.0.0.1", port: 0 },
      logLevel: "silent",
      sources: { configMaps: { enabled: true, namespaces: { include: ["a", "b"] }, keys } },
      kubernetes: { kubeconfig: api.kubeconfigPath(), backoff: { initial: "20ms", max: "200ms" }, watchTimeout: "5s", requestTimeout: "5s" },
    });
  const exporter = await Exporter.create(config(["*.crt"]), pino({ level: "silent" }, new Writable({ write: (_chunk, _encoding, done) => done() })));
  await exporter.serve();
  t.teardown(() => exporter.close());
  const body = async () => (await fetch(`http://127.0.0.1:${exporter.port}/metrics`)).text();
  const read = { "a/one": serial(pool[0]!), "b/one": serial(pool[1]!), "b/two": serial(pool[2]!) };
  t.ok(await soon(async () => JSON.stringify(exportedSerials(await body(), "configmap")) === JSON.stringify(read)), "all read");

  api.forbid({ resource: "configmaps", namespace: "b" });
  forceRelist(api);
  t.ok(await soon(async () => Object.keys(samples(await body(), "cert_location_stale")).length === 2), "b refused: its two locations stale");

  // The keys change, so the reload builds a new ConfigMaps source; namespace b is still refused.
  const lists = (namespace: string) => api.countRequests({ verb: "list", namespace, resource: "configmaps" });
  const [listsOfA, listsOfB] = [lists("a"), lists("b")];
  const { updated } = await exporter.reconfigure(config(["*.crt", "*.pem"]));
  t.same(updated, ["configMaps"], "the source is rebuilt");
  // Its first scan is done once it has listed a and been refused b; what it did not publish is then
  // pruned, but for what it keeps. Time for that to run, then look.
  t.ok(await soon(() => lists("a") > listsOfA && lists("b") > listsOfB + 1), "the new source listed a and was refused b");
  await new Promise((resolve) => setTimeout(resolve, 300));
  let now = await body();
  t.same(exportedSerials(now, "configmap"), read, "b's certificates survive the reload");
  t.same(Object.keys(samples(now, "cert_location_stale")).sort(), [at("configmap", "b", "one", "ca.crt"), at("configmap", "b", "two", "ca.crt")], "still stale");
  t.same(Object.values(samples(now, "cert_read_errors")), ["1"], "and the refusal stands");

  // Deleted while refused; access returns: the new source drops what is gone and reads the rest.
  api.remove("configmaps", "b", "two");
  api.clearFaults();
  const after = { "a/one": serial(pool[0]!), "b/one": serial(pool[1]!) };
  t.ok(await soon(async () => JSON.stringify(exportedSerials(await body(), "configmap")) === JSON.stringify(after)), "the deleted ConfigMap is gone once b lists again");
  t.ok(await soon(async () => Object.keys(samples(await body(), "cert_location_stale")).length === 0), "nothing stale");
  now = await body();
  t.same(exportedSerials(now, "configmap"), after, "the kept one is current");

  // A reload that turns the source off drops everything it held: the scope is no longer configured.
  await exporter.reconfigure(validateConfig({ listen: { address: "127.0.0.1", port: 0 }, logLevel: "silent", sources: { files: [] } }));
  t.same(exportedSerials(await body(), "configmap"), {}, "no ConfigMaps source, no ConfigMap certificates");
});
