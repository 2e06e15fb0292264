/**
 * Endpoint discovery (src/sources/discovery/) end to end: the sources built by createSources from
 * `sources.discovery`, against the Kubernetes API server double (real HTTPS, list and watch), probing
 * real TLS servers on loopback. Ingress hosts are dialled at their load-balancer IP 127.0.0.1 on the
 * configured `port`; annotated Services at their cluster IP, which the test sets to 127.0.0.1; the
 * API server target is the double itself; a Node's kubelet is its InternalIP 127.0.0.1 on the
 * configured kubelet port.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import t, { type Test } from "tap";
import { makeCert, privateKeyPem } from "../scripts/certgen.js";
import { ParseCache } from "../src/certs/cache.js";
import { validateConfig } from "../src/config.js";
import { Health } from "../src/health.js";
import { Inventory } from "../src/inventory.js";
import type { LocationEntry } from "../src/model.js";
import { MetricsRenderer } from "../src/metrics.js";
import { apiServerTarget } from "../src/sources/discovery/apiserver.js";
import { ingressTargets } from "../src/sources/discovery/ingresses.js";
import { kubeletTargets } from "../src/sources/discovery/kubelets.js";
import { serviceTargets } from "../src/sources/discovery/services.js";
import { createSources } from "../src/sources/index.js";
import { SourceContext } from "../src/sources/source.js";
import { FakeApiServer, type K8sObject } from "./k8s/apiserver.js";
import { eventually } from "./k8s/exporter-harness.js";
import { endpointRun, type EndpointRun } from "./helpers/endpoint-run.js";
import { smtpServer } from "./helpers/starttls-servers.js";
import { tlsServer, type TlsTestServer } from "./helpers/tls-servers.js";

const root = await makeCert({ cn: "Discovery Test Root CA", ca: true, notAfterDays: 3650 });
const leaf = await makeCert({ cn: "localhost", issuer: root, sans: ["localhost", "web.team-a.svc", "node-a", "IP:127.0.0.1"], notAfterDays: 60 });
const leafKey = await privateKeyPem(leaf);
const leafSerial = leaf.cert.serialNumber.toLowerCase().replace(/^0+(?=.)/, "");

const dir = await mkdtemp(join(tmpdir(), "discovery-"));
t.teardown(() => rm(dir, { recursive: true, force: true }));
const caFile = join(dir, "ca.pem");
await writeFile(caFile, root.pem);

async function server(t: Test): Promise<TlsTestServer> {
  const started = await tlsServer({ cert: leaf.pem, key: leafKey });
  t.teardown(() => started.close());
  return started;
}

async function apiServer(t: Test): Promise<FakeApiServer> {
  const api = await FakeApiServer.start({ bookmarkIntervalMs: 200 });
  t.teardown(() => api.close());
  return api;
}

/** The endpoint source for `discovery` and static `endpoints`, against the double. */
function run(t: Test, api: FakeApiServer, discovery: Record<string, unknown>, endpoints: { address: string; serverName?: string; caFile?: string }[] = []): Promise<EndpointRun> {
  return endpointRun(t, api, { discovery, endpoints });
}

function ingress(namespace: string, name: string, hosts: string[][], balancer?: { ip?: string; hostname?: string }): K8sObject {
  return {
    apiVersion: "networking.k8s.io/v1",
    kind: "Ingress",
    metadata: { name, namespace },
    spec: { tls: hosts.map((h) => ({ hosts: h, secretName: `${name}-tls` })), rules: hosts.flat().map((host) => ({ host })) },
    status: { loadBalancer: balancer ? { ingress: [balancer] } : {} },
  };
}

function service(namespace: string, name: string, annotations: Record<string, string>, ports: { name: string; port: number }[], clusterIP = "127.0.0.1"): K8sObject {
  return { apiVersion: "v1", kind: "Service", metadata: { name, namespace, annotations }, spec: { type: "ClusterIP", clusterIP, ports } };
}

function node(name: string, ip?: string): K8sObject {
  return { apiVersion: "v1", kind: "Node", metadata: { name }, status: { addresses: ip ? [{ type: "InternalIP", address: ip }, { type: "Hostname", address: name }] : [{ type: "Hostname", address: name }] } };
}

const probed = (e: LocationEntry | undefined) => Boolean(e?.probe?.success);

t.test("targets of each kind of object", async (t) => {
  t.same(
    ingressTargets(ingress("web", "site", [["A.example.com", "*.example.com"], ["a.example.com", "b.example.com."]], { hostname: "lb.example.net" }), { port: 443 }),
    [
      { namespace: "web", address: "a.example.com:443", connectTo: "lb.example.net" },
      { namespace: "web", address: "b.example.com:443", connectTo: "lb.example.net" },
    ],
    "each host once, lower case, wildcards skipped, dialled at the load balancer's hostname",
  );
  t.same(ingressTargets(ingress("web", "v6", [["a.example.com"]], { ip: "fd00::1" }), { port: 8443, caFile: "/ca.pem" }), [
    { namespace: "web", address: "a.example.com:8443", connectTo: "[fd00::1]", caFile: "/ca.pem" },
  ]);
  t.same(ingressTargets(ingress("web", "no-lb", [["a.example.com"]]), { port: 443 }), [{ namespace: "web", address: "a.example.com:443" }], "no load balancer: the host itself");
  t.same(ingressTargets({ metadata: { name: "plain", namespace: "web" }, spec: {} }, { port: 443 }), [], "no tls section: nothing");

  const https = [{ name: "https", port: 443 }];
  t.same(serviceTargets(service("ns", "api", { "cert-expiry-exporter.io/probe": "true" }, https, "10.96.0.7")), [{ namespace: "ns", address: "api.ns.svc:443", connectTo: "10.96.0.7" }]);
  t.same(serviceTargets(service("ns", "api", { "cert-expiry-exporter.io/probe": "yes" }, https)), [], "only the value true");
  t.same(serviceTargets(service("ns", "api", {}, https)), [], "no annotation: nothing");
  t.same(
    serviceTargets(service("ns", "api", { "cert-expiry-exporter.io/probe": "true", "cert-expiry-exporter.io/port": "webhook", "cert-expiry-exporter.io/server-name": "api.example" }, [...https, { name: "webhook", port: 9443 }], "None")),
    [{ namespace: "ns", address: "api.ns.svc:9443", serverName: "api.example" }],
    "a port by name; headless: dialled by its DNS name; the server-name annotation",
  );
  t.same(serviceTargets(service("ns", "api", { "cert-expiry-exporter.io/probe": "true", "cert-expiry-exporter.io/port": "8443" }, [], "fd00::10")), [
    { namespace: "ns", address: "api.ns.svc:8443", connectTo: "[fd00::10]" },
  ]);
  t.same(
    serviceTargets({ metadata: { name: "ext", namespace: "ns", annotations: { "cert-expiry-exporter.io/probe": "true" } }, spec: { type: "ExternalName", externalName: "api.example.org", ports: https } }),
    [{ namespace: "ns", address: "ext.ns.svc:443", connectTo: "api.example.org" }],
    "ExternalName: dialled at the external name",
  );
  t.same(serviceTargets(service("ns", "api", { "cert-expiry-exporter.io/probe": "true", "cert-expiry-exporter.io/port": "nope" }, https)), [], "a port name it does not have");
  t.same(serviceTargets(service("ns", "api", { "cert-expiry-exporter.io/probe": "true", "cert-expiry-exporter.io/port": "70000" }, https)), [], "not a port");
  t.same(serviceTargets(service("ns", "api", { "cert-expiry-exporter.io/probe": "true" }, [{ name: "http", port: 80 }])), [], "no https port");
  t.same(
    serviceTargets(service("ns", "mail", { "cert-expiry-exporter.io/probe": "true", "cert-expiry-exporter.io/port": "smtp", "cert-expiry-exporter.io/probe-protocol": " smtp " }, [{ name: "smtp", port: 25 }], "10.96.0.9")),
    [{ namespace: "ns", address: "mail.ns.svc:25", connectTo: "10.96.0.9", protocol: "smtp" }],
    "the probe-protocol annotation: a STARTTLS upgrade",
  );
  t.same(serviceTargets(service("ns", "api", { "cert-expiry-exporter.io/probe": "true", "cert-expiry-exporter.io/probe-protocol": "tls" }, https, "10.96.0.7")), [{ namespace: "ns", address: "api.ns.svc:443", connectTo: "10.96.0.7" }], "tls: TLS from the first byte, as without it");
  t.same(serviceTargets(service("ns", "api", { "cert-expiry-exporter.io/probe": "true", "cert-expiry-exporter.io/probe-protocol": "gopher" }, https)), [], "a protocol the probe does not speak");

  t.same(kubeletTargets(node("node-1", "10.0.0.5"), { port: 10250 }), [{ namespace: "", address: "node-1:10250", connectTo: "10.0.0.5" }]);
  t.same(kubeletTargets(node("node-1"), { port: 10250 }), [], "no InternalIP: nothing");

  const ca = Buffer.from("-----BEGIN CERTIFICATE-----\n").toString("base64");
  t.same(apiServerTarget({ server: "https://10.96.0.1:443", caData: ca, caFile: undefined, tlsServerName: undefined }), { namespace: "", address: "10.96.0.1:443", caPem: ["-----BEGIN CERTIFICATE-----\n"] });
  t.same(apiServerTarget({ server: "https://[fd00::1]:6443/", caData: undefined, caFile: "/sa/ca.crt", tlsServerName: "kubernetes.default.svc" }), {
    namespace: "",
    address: "[fd00::1]:6443",
    serverName: "kubernetes.default.svc",
    caFile: "/sa/ca.crt",
  });
  t.same(apiServerTarget({ server: "https://api.example.com", caData: undefined, caFile: undefined, tlsServerName: undefined }), { namespace: "", address: "api.example.com:443" });
  t.equal(apiServerTarget({ server: "http://127.0.0.1:8080", caData: undefined, caFile: undefined, tlsServerName: undefined }), undefined, "not TLS: no target");
});

t.test("configuration: everything off by default, strict keys", async (t) => {
  const config = validateConfig({});
  t.same(config.sources.discovery, {
    ingresses: { enabled: false, namespaces: { include: [], exclude: [] }, port: 443 },
    services: { enabled: false, namespaces: { include: [], exclude: [] } },
    apiServer: { enabled: false },
    kubelets: { enabled: false, port: 10250 },
  });
  t.throws(() => validateConfig({ sources: { discovery: { ingresses: { enabled: true, hosts: [] } } } }), /sources\.discovery\.ingresses\.hosts: unknown key/);
  t.throws(() => validateConfig({ sources: { discovery: { kubelets: { port: 0 } } } }), /sources\.discovery\.kubelets\.port/);
  t.same(await createSources(config, new SourceContext(new Inventory(), new ParseCache(1), new Health(new Inventory()), pino({ level: "silent" }))), [], "no source, no discovery");
});

t.test("every kind of discovery, probed on loopback", async (t) => {
  const tls = await server(t);
  const api = await apiServer(t);
  api.put(ingress("team-a", "web", [["localhost", "*.wild.example"]], { ip: "127.0.0.1" }));
  api.put(service("team-a", "web", { "cert-expiry-exporter.io/probe": "true", "cert-expiry-exporter.io/port": String(tls.port) }, [{ name: "https", port: 443 }]));
  api.put(service("team-a", "named", { "cert-expiry-exporter.io/probe": "true", "cert-expiry-exporter.io/port": "tls", "cert-expiry-exporter.io/server-name": "localhost" }, [{ name: "tls", port: tls.port }]));
  api.put(service("team-a", "unannotated", {}, [{ name: "https", port: tls.port }]));
  api.put(service("team-b", "broken", { "cert-expiry-exporter.io/probe": "true" }, [{ name: "http", port: 80 }]));
  api.put(node("node-a", "127.0.0.1"));
  api.put(node("node-b"));
  const r = await run(t, api, {
    ingresses: { enabled: true, port: tls.port, caFile },
    services: { enabled: true, caFile },
    apiServer: { enabled: true },
    kubelets: { enabled: true, port: tls.port, caFile },
  });
  await r.source.start();
  const apiName = `127.0.0.1:${api.port}`;
  const expected = [`/${apiName}/`, `/node-a:${tls.port}/`, `team-a/localhost:${tls.port}/`, `team-a/named.team-a.svc:${tls.port}/localhost`, `team-a/web.team-a.svc:${tls.port}/`];
  t.ok(await eventually(() => r.ids().length === expected.length && [...r.inventory.entries()].every((e) => e.probe !== undefined)), "every target probed");
  t.same(r.ids(), expected, "one location per discovered endpoint, nothing for the wildcard host, the unannotated or misannotated Service, or the Node without an InternalIP");

  for (const [namespace, name, key] of [
    ["team-a", `localhost:${tls.port}`, ""],
    ["team-a", `web.team-a.svc:${tls.port}`, ""],
    ["team-a", `named.team-a.svc:${tls.port}`, "localhost"],
    ["", `node-a:${tls.port}`, ""],
  ] as const) {
    const e = r.entry(namespace, name, key);
    t.ok(probed(e), `${name}: probe succeeded`);
    t.ok(e?.probe?.chainVerified, `${name}: chain verified with the configured CA`);
    t.ok(e?.probe?.hostnameMatch, `${name}: host name matches`);
    t.equal(e?.certificates[0]?.serial.replace(/^0+(?=.)/, ""), leafSerial, `${name}: the presented leaf`);
  }
  t.same([...new Set(tls.serverNames)].sort(), ["localhost", "node-a", "web.team-a.svc"], "SNI: the Ingress host, the Service's DNS name or annotation, the node name");

  const apiEntry = r.entry("", apiName);
  t.ok(probed(apiEntry), "the API server is probed");
  t.ok(apiEntry?.probe?.chainVerified, "its chain verifies against the kubeconfig's CA");
  t.ok(apiEntry?.probe?.hostnameMatch, "and it matches its address");
  t.equal(apiEntry?.certificates[0]?.subjectCN, "kube-apiserver");

  t.equal(r.logs.filter((l) => l.host === "*.wild.example").length, 1, "the wildcard host is logged once");
  t.equal(r.logs.filter((l) => l.name === "broken" && String(l.msg).includes("no port named https")).length, 1, "the Service without a port is logged once");
  t.equal(r.logs.filter((l) => l.name === "node-b" && String(l.msg).includes("InternalIP")).length, 1, "the Node without an address is logged once");
  t.same(r.health.pendingSources(), [], "ready");
  const up = await r.health.sourceUp.get();
  t.same(Object.fromEntries(up.values.map((v) => [v.labels.source, v.value])), { endpoint: 1, ingresses: 1, services: 1, kubelets: 1 }, "each discovery is a source of its own in the health metrics");
  t.same(
    api
      .requests((q) => q.verb === "list" || q.verb === "watch")
      .map((q) => `${q.verb} ${q.resource} ${q.namespace ?? "*"}`)
      .filter((v, i, all) => all.indexOf(v) === i)
      .sort(),
    ["list ingresses *", "list nodes *", "list services *", "watch ingresses *", "watch nodes *", "watch services *"],
    "one cluster-wide list and watch per resource",
  );
});

t.test("a Service annotated with a probe protocol is probed after that protocol's STARTTLS", async (t) => {
  // An SMTP peer (test/helpers/starttls-servers.ts); test/starttls.test.ts probes real mail servers.
  const smtp = await smtpServer({ cert: leaf.pem, key: leafKey });
  t.teardown(() => smtp.close());
  const api = await apiServer(t);
  api.put(service("team-a", "mail", { "cert-expiry-exporter.io/probe": "true", "cert-expiry-exporter.io/port": "smtp", "cert-expiry-exporter.io/probe-protocol": "smtp", "cert-expiry-exporter.io/server-name": "localhost" }, [{ name: "smtp", port: smtp.port }]));
  api.put(service("team-a", "gopher", { "cert-expiry-exporter.io/probe": "true", "cert-expiry-exporter.io/port": "70", "cert-expiry-exporter.io/probe-protocol": "gopher" }, []));
  const r = await run(t, api, { services: { enabled: true, caFile } });
  await r.source.start();
  const name = `mail.team-a.svc:${smtp.port}`;
  t.ok(await eventually(() => r.entry("team-a", name, "localhost")?.probe !== undefined), "the Service is probed");
  const e = r.entry("team-a", name, "localhost");
  t.ok(probed(e), `probe succeeded ${e?.probe?.message ?? ""}`);
  t.ok(e?.probe?.chainVerified, "chain verified with the configured CA");
  t.equal(e?.certificates[0]?.serial.replace(/^0+(?=.)/, ""), leafSerial, "the leaf presented after STARTTLS");
  t.match(smtp.received[0], /^EHLO .*\r\nSTARTTLS\r\n/, "the SMTP exchange came first");
  t.same(r.ids(), [`team-a/${name}/localhost`], "nothing for the Service naming a protocol the probe does not speak");
  t.equal(r.logs.filter((l) => l.name === "gopher" && String(l.msg).includes("probe-protocol")).length, 1, "which is logged once");
});

t.test("discovery follows changes: new hosts, removed Ingresses, annotations and Nodes", async (t) => {
  const tls = await server(t);
  const api = await apiServer(t);
  api.put(ingress("team-a", "web", [["localhost"]], { ip: "127.0.0.1" }));
  api.put(service("team-a", "web", { "cert-expiry-exporter.io/probe": "true", "cert-expiry-exporter.io/port": String(tls.port) }, []));
  api.put(node("node-a", "127.0.0.1"));
  const r = await run(t, api, { ingresses: { enabled: true, port: tls.port }, services: { enabled: true }, kubelets: { enabled: true, port: tls.port } });
  await r.source.start();
  const host = `team-a/localhost:${tls.port}/`;
  const svc = `team-a/web.team-a.svc:${tls.port}/`;
  const kubelet = `/node-a:${tls.port}/`;
  t.ok(await eventually(() => r.ids().length === 3 && [...r.inventory.entries()].every(probed)), "first list probed");
  t.same(r.ids(), [kubelet, host, svc].sort());

  // A host added to the Ingress: a new target, probed at once (through the load balancer: the name needs no DNS).
  api.put(ingress("team-a", "web", [["localhost"], ["app.test"]], { ip: "127.0.0.1" }));
  const added = `team-a/app.test:${tls.port}/`;
  t.ok(await eventually(() => probed(r.entry("team-a", `app.test:${tls.port}`))), "the new host is probed");
  t.same(r.ids(), [kubelet, added, host, svc].sort());
  t.notOk(r.entry("team-a", `app.test:${tls.port}`)?.probe?.hostnameMatch, "its name is checked against the leaf (which does not name it)");

  // Rendered series follow the inventory.
  const renderer = new MetricsRenderer(r.inventory, r.health);
  const text = async () => Buffer.concat(await renderer.render()).toString("utf8");
  t.match(await text(), `cert_endpoint_probe_success{source="endpoint",namespace="team-a",name="app.test:${tls.port}",key=""} 1`);

  // The Service loses its annotation: its target and series go.
  api.put(service("team-a", "web", {}, []));
  t.ok(await eventually(() => !r.ids().includes(svc)), "annotation removed → target gone");
  // And comes back with it.
  api.put(service("team-a", "web", { "cert-expiry-exporter.io/probe": "true", "cert-expiry-exporter.io/port": String(tls.port) }, []));
  t.ok(await eventually(() => probed(r.entry("team-a", `web.team-a.svc:${tls.port}`))), "annotation back → probed again");

  // The Ingress is deleted: both hosts go.
  api.remove("ingresses", "team-a", "web");
  t.ok(await eventually(() => !r.ids().includes(host) && !r.ids().includes(added)), "Ingress deleted → its targets gone");
  t.notMatch(await text(), `name="app.test:${tls.port}"`, "and their series");
  t.notMatch(await text(), `name="localhost:${tls.port}"`);

  // The Node goes.
  api.remove("nodes", undefined, "node-a");
  t.ok(await eventually(() => !r.ids().includes(kubelet)), "Node deleted → kubelet target gone");
  t.same(r.ids(), [svc]);
});

t.test("403 on Ingresses: one error location, one log line, the other discovery unaffected; permission granted later is picked up", async (t) => {
  const tls = await server(t);
  const api = await apiServer(t);
  api.forbid({ resource: "ingresses" });
  api.put(ingress("team-a", "web", [["localhost"]], { ip: "127.0.0.1" }));
  api.put(service("team-a", "web", { "cert-expiry-exporter.io/probe": "true", "cert-expiry-exporter.io/port": String(tls.port) }, []));
  const r = await run(t, api, { ingresses: { enabled: true, port: tls.port }, services: { enabled: true }, apiServer: { enabled: true } });
  await r.source.start();
  const svc = `team-a/web.team-a.svc:${tls.port}/`;
  const forbidden = "//ingresses";
  t.ok(await eventually(() => probed(r.entry("team-a", `web.team-a.svc:${tls.port}`)) && probed(r.entry("", `127.0.0.1:${api.port}`))), "the Service and the API server are probed");
  t.ok(r.ids().includes(forbidden), "the refused scope is an error location");
  const error = r.entry("", "", "ingresses")!;
  t.equal(error.error?.reason, "forbidden");
  t.match(error.error?.message, /cannot list ingresses\.networking\.k8s\.io at the cluster scope; grant list and watch/);

  // The list is retried with backoff; the refusal stays one location and one log line.
  t.ok(await eventually(() => api.countRequests({ verb: "list", resource: "ingresses" }) >= 4), "the list is retried");
  // A change of another provider's targets does not drop the error location.
  api.put(service("team-a", "other", { "cert-expiry-exporter.io/probe": "true", "cert-expiry-exporter.io/port": String(tls.port) }, []));
  t.ok(await eventually(() => probed(r.entry("team-a", `other.team-a.svc:${tls.port}`))));
  t.same(r.ids(), [forbidden, `/127.0.0.1:${api.port}/`, `team-a/other.team-a.svc:${tls.port}/`, svc].sort());
  const refusals = r.logs.filter((l) => l.reason === "forbidden");
  t.equal(refusals.length, 1, "logged once");
  t.match(refusals[0], { source: "endpoint", key: "ingresses", msg: "cannot read certificates" });
  t.same(r.health.pendingSources(), [], "a refused scope does not hold readiness");

  // Permission granted: the error goes, the Ingress's host comes.
  api.clearFaults();
  t.ok(await eventually(() => probed(r.entry("team-a", `localhost:${tls.port}`)), 1000), "the Ingress is read once allowed");
  t.notOk(r.entry("", "", "ingresses"), "the error location is gone");
});

t.test("literal namespaces: one list-and-watch each, a refusal in one names it", async (t) => {
  const tls = await server(t);
  const api = await apiServer(t);
  api.forbid({ resource: "ingresses", namespace: "team-b" });
  api.put(ingress("team-a", "web", [["localhost"]], { ip: "127.0.0.1" }));
  api.put(ingress("team-b", "web", [["localhost"]], { ip: "127.0.0.1" }));
  api.put(ingress("team-c", "web", [["localhost"]], { ip: "127.0.0.1" }));
  const r = await run(t, api, { ingresses: { enabled: true, port: tls.port, namespaces: { include: ["team-a", "team-b"] } } });
  await r.source.start();
  t.ok(await eventually(() => probed(r.entry("team-a", `localhost:${tls.port}`))));
  t.same(r.ids(), ["team-b//ingresses", `team-a/localhost:${tls.port}/`].sort(), "team-a probed, team-b refused, team-c not read");
  t.match(r.entry("team-b", "", "ingresses")?.error?.message, /in the namespace "team-b"; grant list and watch on ingresses\.networking\.k8s\.io with a Role in "team-b"/);
  t.same([...new Set(api.requests({ verb: "list", resource: "ingresses" }).map((q) => q.namespace))].sort(), ["team-a", "team-b"]);
});

t.test("globs: one cluster-wide list-and-watch, filtered here", async (t) => {
  const tls = await server(t);
  const api = await apiServer(t);
  api.put(service("team-a", "web", { "cert-expiry-exporter.io/probe": "true", "cert-expiry-exporter.io/port": String(tls.port) }, []));
  api.put(service("team-b", "web", { "cert-expiry-exporter.io/probe": "true", "cert-expiry-exporter.io/port": String(tls.port) }, []));
  api.put(service("kube-system", "web", { "cert-expiry-exporter.io/probe": "true", "cert-expiry-exporter.io/port": String(tls.port) }, []));
  const r = await run(t, api, { services: { enabled: true, namespaces: { include: ["team-*", "kube-system"], exclude: ["team-b"] } } });
  await r.source.start();
  t.ok(await eventually(() => r.ids().length === 2 && [...r.inventory.entries()].every(probed)));
  t.same(r.ids(), [`kube-system/web.kube-system.svc:${tls.port}/`, `team-a/web.team-a.svc:${tls.port}/`]);
  t.same([...new Set(api.requests({ verb: "list", resource: "services" }).map((q) => q.namespace ?? "*"))], ["*"]);
});

t.test("check: one list of each discovery, probed once", async (t) => {
  const tls = await server(t);
  const api = await apiServer(t);
  api.put(ingress("team-a", "web", [["localhost"]], { ip: "127.0.0.1" }));
  api.put(node("node-a", "127.0.0.1"));
  const r = await run(t, api, { ingresses: { enabled: true, port: tls.port }, kubelets: { enabled: true, port: tls.port }, apiServer: { enabled: true } });
  await r.source.scanOnce();
  t.same(r.ids(), [`/127.0.0.1:${api.port}/`, `/node-a:${tls.port}/`, `team-a/localhost:${tls.port}/`]);
  t.ok([...r.inventory.entries()].every(probed), "every target probed");
  t.equal(api.countRequests({ verb: "watch" }), 0, "no watch");
});

t.test("an unreachable API server holds up neither the static endpoints nor later discovery", async (t) => {
  const tls = await server(t);
  const api = await apiServer(t);
  api.put(ingress("team-a", "web", [["localhost"]], { ip: "127.0.0.1" }));
  await api.stop();
  const r = await run(t, api, { ingresses: { enabled: true, port: tls.port } }, [{ address: tls.address, serverName: "localhost", caFile }]);
  await r.source.start();
  t.ok(probed(r.entry("", tls.address, "localhost")), "the static endpoint is probed while the API server is down");
  t.same(r.health.pendingSources(), ["ingresses"], "Ingress discovery is not ready");
  await api.restart();
  t.ok(await eventually(() => probed(r.entry("team-a", `localhost:${tls.port}`)), 1000), "the Ingress's host follows once the API server answers");
  t.ok(await eventually(() => r.health.pendingSources().length === 0), "and discovery is ready");
});
