/**
 * The serving certificates behind caBundles (issue: "the webhook certificates the API server
 * trusts"), probed through the endpoint source as the API server calls them: the object's caBundle
 * as the only trust anchor, the Service's DNS name (or the URL's host) as the name checked.
 *
 * - a webhook whose serving certificate its caBundle signed verifies; one renewed by a CA the bundle
 *   does not hold yet does not, though the certificate itself is fine (the outage before it happens);
 * - the targets trust the caBundle only (caOnly), not the system roots;
 * - every webhook is a location of its own, keyed `<Kind>/<object>/<caBundle key>`;
 * - targets follow the objects: a webhook removed, a configuration deleted;
 * - a caBundle that is not base64, or a URL that is not https, is not probed (the first is the
 *   cabundle source's read error), and each kind's probing is opt-in.
 */
import t, { type Test } from "tap";
import { makeCert, privateKeyPem } from "../scripts/certgen.js";
import { validateConfig } from "../src/config.js";
import { caBundleProbeTargets } from "../src/sources/discovery/webhooks.js";
import { FakeApiServer, type K8sObject } from "./k8s/apiserver.js";
import { eventually } from "./k8s/exporter-harness.js";
import { endpointRun } from "./helpers/endpoint-run.js";
import { tlsServer, type TlsTestServer } from "./helpers/tls-servers.js";

const bundleCa = await makeCert({ cn: "Webhook CA", ca: true, notAfterDays: 3650 });
const renewedCa = await makeCert({ cn: "Webhook CA (new)", ca: true, notAfterDays: 3650 });
const b64 = (text: string) => Buffer.from(text).toString("base64");

async function webhookServer(t: Test, issuer: typeof bundleCa): Promise<TlsTestServer> {
  const leaf = await makeCert({ cn: "webhook", issuer, sans: ["IP:127.0.0.1", "webhook.system.svc"], notAfterDays: 60 });
  const server = await tlsServer({ cert: leaf.pem, key: await privateKeyPem(leaf) });
  t.teardown(() => server.close());
  return server;
}

function validating(name: string, webhooks: { name: string; caBundle?: string; url?: string; service?: { namespace: string; name: string; port?: number } }[]): K8sObject {
  return {
    apiVersion: "admissionregistration.k8s.io/v1",
    kind: "ValidatingWebhookConfiguration",
    metadata: { name },
    webhooks: webhooks.map(({ name: webhookName, caBundle, url, service }) => ({
      name: webhookName,
      clientConfig: { ...(caBundle === undefined ? {} : { caBundle }), ...(url ? { url } : {}), ...(service ? { service } : {}) },
      sideEffects: "None",
      admissionReviewVersions: ["v1"],
    })),
  };
}

t.test("targets: a Service at its cluster DNS name with port 443 by default, a URL at its host, the caBundle as the only anchor", async (t) => {
  const bundle = b64(bundleCa.pem);
  const targets = caBundleProbeTargets(
    "validatingWebhooks",
    validating("vw", [
      { name: "svc.example.com", caBundle: bundle, service: { namespace: "system", name: "webhook" } },
      { name: "port.example.com", caBundle: bundle, service: { namespace: "system", name: "webhook", port: 8443 } },
      { name: "url.example.com", caBundle: bundle, url: "https://hooks.example.com:9443/validate" },
      { name: "v6.example.com", caBundle: bundle, url: "https://[::1]/validate" },
      { name: "http.example.com", caBundle: bundle, url: "http://hooks.example.com/validate" },
      { name: "garbage.example.com", caBundle: "not base64!", url: "https://hooks.example.com/" },
      { name: "empty.example.com", caBundle: "", url: "https://hooks.example.com/" },
    ]) as never,
  );
  t.same(
    targets.map(({ namespace, address, serverName, key, caOnly }) => ({ namespace, address, serverName, key, caOnly })),
    [
      { namespace: "system", address: "webhook.system.svc:443", serverName: "webhook.system.svc", key: "ValidatingWebhookConfiguration/vw/webhooks/svc.example.com", caOnly: true },
      { namespace: "system", address: "webhook.system.svc:8443", serverName: "webhook.system.svc", key: "ValidatingWebhookConfiguration/vw/webhooks/port.example.com", caOnly: true },
      { namespace: "", address: "hooks.example.com:9443", serverName: undefined, key: "ValidatingWebhookConfiguration/vw/webhooks/url.example.com", caOnly: true },
      { namespace: "", address: "[::1]:443", serverName: undefined, key: "ValidatingWebhookConfiguration/vw/webhooks/v6.example.com", caOnly: true },
    ],
    "http URLs, bundles that are not base64 and empty bundles give no target",
  );
  t.same(targets[0]?.caPem, [bundleCa.pem], "the decoded caBundle is the trust anchor");

  const apiService = caBundleProbeTargets("apiServices", {
    metadata: { name: "v1beta1.metrics.k8s.io" },
    spec: { caBundle: bundle, service: { namespace: "kube-system", name: "metrics-server", port: 443 } },
  });
  t.same(apiService.map((x) => [x.address, x.key]), [["metrics-server.kube-system.svc:443", "APIService/v1beta1.metrics.k8s.io/spec.caBundle"]]);
  const crd = caBundleProbeTargets("crdConversions", {
    metadata: { name: "widgets.example.com" },
    spec: { conversion: { strategy: "Webhook", webhook: { clientConfig: { caBundle: bundle, service: { namespace: "widgets", name: "conversion" } } } } },
  });
  t.same(crd.map((x) => [x.address, x.key]), [["conversion.widgets.svc:443", "CustomResourceDefinition/widgets.example.com/spec.conversion.webhook.clientConfig.caBundle"]]);
  t.same(caBundleProbeTargets("crdConversions", { metadata: { name: "plain.example.com" }, spec: { conversion: { strategy: "None" } } }), [], "no conversion webhook, no target");
});

t.test("probed against the caBundle: verified when it signed the serving certificate, not when a new CA did", async (t) => {
  const good = await webhookServer(t, bundleCa);
  const renewed = await webhookServer(t, renewedCa);
  const api = await FakeApiServer.start({ bookmarkIntervalMs: 200 });
  t.teardown(() => api.close());
  api.put(
    validating("policy", [
      { name: "good.example.com", caBundle: b64(bundleCa.pem), url: `https://127.0.0.1:${good.port}/validate` },
      { name: "renewed.example.com", caBundle: b64(bundleCa.pem), url: `https://127.0.0.1:${renewed.port}/validate` },
      { name: "service.example.com", caBundle: b64(bundleCa.pem), service: { namespace: "nowhere", name: "missing", port: good.port } },
    ]),
  );
  const r = await endpointRun(t, api, { caBundles: { validatingWebhooks: { probe: true } } });
  await r.source.start();
  t.ok(await eventually(() => r.endpoints().length === 3 && r.endpoints().every((e) => e.probe !== undefined), 30_000), "every webhook probed");
  const [good1, renewed1, service1] = r.endpoints();
  t.equal(good1?.location.key, "ValidatingWebhookConfiguration/policy/webhooks/good.example.com");
  t.ok(good1?.probe?.success, "the good webhook answers");
  t.ok(good1?.probe?.chainVerified, "its certificate verifies against the caBundle");
  t.ok(good1?.probe?.hostnameMatch, "for the name the API server checks");
  t.equal(good1?.certificates[0]?.subjectCN, "webhook", "the presented certificate is exported");

  t.equal(renewed1?.location.key, "ValidatingWebhookConfiguration/policy/webhooks/renewed.example.com");
  t.ok(renewed1?.probe?.success, "the renewed webhook answers");
  t.notOk(renewed1?.probe?.chainVerified, "but the API server would reject it: the caBundle lacks the new CA");
  t.match(renewed1?.probe?.verifyError, /ISSUER|SELF_SIGNED|UNABLE/, "with OpenSSL's reason");

  t.equal(service1?.location.name, `missing.nowhere.svc:${good.port}`, "a Service reference is probed at its cluster DNS name");
  t.equal(service1?.location.namespace, "nowhere", "in the Service's namespace");
  t.notOk(service1?.probe?.success, "a Service that cannot be resolved fails its probe, visibly");
  const up = await r.health.sourceUp.get();
  t.same(Object.fromEntries(up.values.map((v) => [v.labels.source, v.value])), { endpoint: 1, "serving/validatingwebhookconfigurations": 1 }, "the probing provider has its own health");

  // Once the bundle holds both CAs (the rotation done right), the renewed webhook verifies.
  api.put(
    validating("policy", [
      { name: "good.example.com", caBundle: b64(bundleCa.pem), url: `https://127.0.0.1:${good.port}/validate` },
      { name: "renewed.example.com", caBundle: b64(bundleCa.pem + renewedCa.pem), url: `https://127.0.0.1:${renewed.port}/validate` },
    ]),
  );
  await r.source.scanOnce();
  t.same(
    r.endpoints().map((e) => [e.location.key, e.probe?.chainVerified]),
    [
      ["ValidatingWebhookConfiguration/policy/webhooks/good.example.com", true],
      ["ValidatingWebhookConfiguration/policy/webhooks/renewed.example.com", true],
    ],
    "a bundle updated with the new CA verifies; the removed webhook's location is gone",
  );

  api.remove("ValidatingWebhookConfiguration", undefined, "policy");
  t.ok(await eventually(() => r.endpoints().length === 0), "a deleted configuration takes its targets with it");
});

t.test("probing is opt-in per kind and needs only list and watch on that kind", async (t) => {
  const api = await FakeApiServer.start({ bookmarkIntervalMs: 200 });
  t.teardown(() => api.close());
  const off = validateConfig({ sources: { caBundles: { validatingWebhooks: { enabled: true } } } });
  t.notOk(Object.values(off.sources.caBundles).some((k) => k.probe), "off by default");
  const r = await endpointRun(t, api, { caBundles: { apiServices: { probe: true } } });
  await r.source.start();
  t.ok(await eventually(() => api.requests((q) => q.verb === "watch").length > 0), "watching");
  t.same(
    [...new Set(api.requests((q) => q.verb !== "discovery").map((q) => `${q.verb} ${q.group ?? ""}/${q.resource ?? ""}`))].sort(),
    ["list apiregistration.k8s.io/apiservices", "watch apiregistration.k8s.io/apiservices"],
    "list and watch of APIServices, nothing else",
  );
});
