import t from "tap";
import { certPool, converge, counter, eventually, putTls, startHarness } from "./k8s/exporter-harness.js";

t.test("first list, update, delete, and metadata from annotations", async (t) => {
  const [a, b, c, ca, d] = await certPool(5);
  const h = await startHarness(t);
  putTls(h.api, "default", "web", [a!, b!], ca);
  putTls(h.api, "team-a", "api", [c!], undefined, {
    annotations: {
      "cert-expiry-exporter.io/warning-days": "21",
      "cert-expiry-exporter.io/critical-days": "soon",
      "cert-manager.io/certificate-name": "api-cert",
      "cert-manager.io/issuer-name": "letsencrypt",
      "cert-manager.io/issuer-kind": "ClusterIssuer",
    },
  });
  h.api.putSecret("default", "opaque", { "tls.crt": a!.pem }, { type: "Opaque" });
  await h.source.start();
  t.same(h.health.pendingSources(), [], "ready after the first list");
  let r = await converge(h);
  t.same(r.actual, r.expected, "first list matches");
  t.equal(Object.keys(r.actual).length, 3);
  const api = h.inventory.get({ source: "secret", namespace: "team-a", name: "api", key: "tls.crt" })!;
  t.same(api.thresholds, { warningDays: 21 }, "valid threshold kept, invalid ignored");
  t.same(api.certManager, { certificateName: "api-cert", issuerName: "letsencrypt", issuerKind: "ClusterIssuer" });
  t.equal(h.logs.filter((l) => l.annotation === "cert-expiry-exporter.io/critical-days").length, 1, "invalid annotation logged once");

  const misses = h.cache.misses;
  putTls(h.api, "default", "web", [d!], ca);
  r = await converge(h);
  t.same(r.actual, r.expected, "update → new value");
  t.equal(h.inventory.get({ source: "secret", namespace: "default", name: "web", key: "tls.crt" })!.certificates[0]!.serial, d!.cert.serialNumber.toLowerCase());
  t.equal(h.cache.misses, misses + 1, "only the new bytes were parsed (ca.crt came from the cache)");

  // A change that does not touch what is read (a label) is neither parsed nor published.
  const generation = h.inventory.generation;
  const web = h.api.get("secrets", "default", "web")!;
  web.metadata.labels = { touched: "yes" };
  h.api.put(web);
  await eventually(() => h.api.countRequests({ verb: "watch" }) > 0);
  await new Promise((r) => setTimeout(r, 100));
  t.equal(h.inventory.generation, generation, "an irrelevant change publishes nothing");

  h.api.remove("secrets", "default", "web");
  t.ok(
    await eventually(() => !h.inventory.get({ source: "secret", namespace: "default", name: "web", key: "tls.crt" })),
    "deleted Secret's series gone",
  );
  r = await converge(h);
  t.same(r.actual, r.expected);
  t.equal(await counter(h, "relists", {}), 0, "no relist needed");
});
