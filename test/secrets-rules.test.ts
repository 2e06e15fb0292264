/**
 * What the Secrets source reads: selectors and namespace filters (and what they send to the server),
 * the Helm-release Secret never fetched, kubeconfig Secrets, PKCS#12, and a rotated service-account token.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { privateKeyPem } from "../scripts/certgen.js";
import { loadKubeConfig } from "../src/kube/client.js";
import { SERVICE_ACCOUNT_DIR } from "../src/kube/client.js";
import { certPool, converge, eventually, putTls, startHarness } from "./k8s/exporter-harness.js";

t.test("label selector and type field selector go to the server; namespace globs filter here", async (t) => {
  const pool = await certPool(4);
  const h = await startHarness(t, { secrets: { labelSelector: "watch=yes", namespaces: { include: ["team-*"], exclude: ["team-x"] } } });
  for (const ns of ["team-a", "team-x", "other"]) {
    putTls(h.api, ns, "labelled", [pool[0]!], undefined, { labels: { watch: "yes" } });
    putTls(h.api, ns, "unlabelled", [pool[1]!]);
  }
  await h.source.start();
  const r = await converge(h, { include: ["team-*"], exclude: ["team-x"], label: "watch=yes" });
  t.same(Object.keys(r.actual), ["team-a/labelled/tls.crt"]);
  t.same(r.actual, r.expected);
  const list = h.api.requests({ verb: "list" })[0]!;
  t.equal(list.path, "/api/v1/secrets", "globs: one cluster-wide list");
  t.equal(list.query.labelSelector, "watch=yes");
  t.equal(list.query.fieldSelector, "type=kubernetes.io/tls");
  t.equal(list.query.limit, "500", "default page size");
  await eventually(() => h.api.countRequests({ verb: "watch" }) > 0);
  const watch = h.api.requests({ verb: "watch" })[0]!;
  t.match(watch.query, { labelSelector: "watch=yes", fieldSelector: "type=kubernetes.io/tls", allowWatchBookmarks: "true", resourceVersion: list.query.resourceVersion ?? /\d+/ });
  t.same(h.source.collections[0]!.scopes, [{ namespace: undefined, fieldSelector: "type=kubernetes.io/tls" }]);
});

t.test("rules without one type each: no field selector; several types: one stream per type", async (t) => {
  const any = await startHarness(t, { secrets: { rules: [{ keys: ["*.pem"] }] } });
  t.same(any.source.collections[0]!.scopes, [{ namespace: undefined, fieldSelector: undefined }]);
  const two = await startHarness(t, {
    server: any.api,
    secrets: { namespaces: { include: ["a", "b"] }, rules: [{ type: "kubernetes.io/tls", keys: ["tls.crt"] }, { type: "Opaque", keys: ["*.pem"] }] },
  });
  t.same(two.source.collections[0]!.scopes, [
    { namespace: "a", fieldSelector: "type=kubernetes.io/tls" },
    { namespace: "a", fieldSelector: "type=Opaque" },
    { namespace: "b", fieldSelector: "type=kubernetes.io/tls" },
    { namespace: "b", fieldSelector: "type=Opaque" },
  ]);
  const pool = await certPool(2);
  any.api.putSecret("a", "bundle", { "ca.pem": pool[0]!.pem, "notes.txt": "hello" }, { type: "Opaque" });
  any.api.putSecret("c", "bundle", { "ca.pem": pool[1]!.pem }, { type: "Opaque" });
  await any.source.start();
  await two.source.start();
  const r = await converge(any, { types: undefined, keys: ["*.pem"] });
  t.same(r.actual, r.expected);
  t.same(Object.keys(r.actual), ["a/bundle/ca.pem", "c/bundle/ca.pem"]);
  const r2 = await converge(two, { types: ["Opaque"], keys: ["*.pem"], include: ["a", "b"] });
  t.same(r2.actual, r2.expected);
  t.ok(any.api.requests({ verb: "list" }).some((x) => x.path === "/api/v1/namespaces/a/secrets" && x.query.fieldSelector === "type=Opaque"));
});

t.test("a 5 MB Helm release Secret in the same namespace is neither fetched nor kept", async (t) => {
  const pool = await certPool(2);
  const h = await startHarness(t, { api: { maxBodyBytes: 16 * 1024 * 1024 } });
  const release = Buffer.alloc(5 * 1024 * 1024, "H4sIAAAAAAAA/+x9");
  h.api.putSecret("apps", "sh.helm.release.v1.big.v1", { release }, { type: "helm.sh/release.v1", labels: { owner: "helm" } });
  putTls(h.api, "apps", "web", [pool[0]!]);
  await h.source.start();
  await eventually(() => h.api.countRequests({ verb: "watch" }) > 0);
  // The release is updated while watched: the watch must not carry it either.
  h.api.putSecret("apps", "sh.helm.release.v1.big.v1", { release: Buffer.concat([release, Buffer.from("v2")]) }, { type: "helm.sh/release.v1" });
  putTls(h.api, "apps", "web", [pool[1]!]);
  const r = await converge(h);
  t.same(r.actual, r.expected);
  const sent = h.api.requests({ verb: ["list", "watch"] });
  t.ok(sent.every((x) => x.query.fieldSelector === "type=kubernetes.io/tls"), "every request carried the field selector");
  const bytes = sent.reduce((sum, x) => sum + x.bytes, 0);
  t.ok(bytes < 100_000, `responses total ${bytes} bytes: the release was never sent`);
  t.equal(
    sent.reduce((sum, x) => sum + x.items, 0),
    2,
    "one Secret listed, one watch event",
  );
  t.equal(h.inventory.size, 1, "nothing of the release kept");
});

t.test("kubeconfig held in a Secret (Cluster API style)", async (t) => {
  const pool = await certPool(3);
  const h = await startHarness(t, { secrets: { rules: [{ type: "cluster.x-k8s.io/secret", keys: ["value"], format: "kubeconfig" }] } });
  const b64 = (s: string) => Buffer.from(s).toString("base64");
  const kubeconfig = [
    "apiVersion: v1",
    "kind: Config",
    "clusters:",
    "- name: workload",
    `  cluster: {server: "https://10.0.0.1:6443", certificate-authority-data: ${b64(pool[0]!.pem)}}`,
    "users:",
    "- name: admin",
    `  user: {client-certificate-data: ${b64(pool[1]!.pem)}, client-key-data: ${b64("secret key")}}`,
    "- name: filed",
    "  user: {client-certificate: /etc/admin.crt}",
    "contexts: []",
  ].join("\n");
  h.api.putSecret("capi", "workload-kubeconfig", { value: kubeconfig }, { type: "cluster.x-k8s.io/secret" });
  h.api.putSecret("capi", "broken-kubeconfig", { value: "clusters: [" }, { type: "cluster.x-k8s.io/secret" });
  await h.source.start();
  const got = (key: string, name = "workload-kubeconfig") => h.inventory.get({ source: "secret", namespace: "capi", name, key });
  t.equal(got("value/clusters/workload")?.certificates[0]?.serial, pool[0]!.cert.serialNumber.toLowerCase());
  t.equal(got("value/users/admin")?.certificates[0]?.serial, pool[1]!.cert.serialNumber.toLowerCase());
  t.equal(got("value/users/filed")?.error?.reason, "file_reference_not_allowed");
  t.equal(got("value", "broken-kubeconfig")?.error?.reason, "bad_yaml");
  t.equal(h.inventory.size, 4);
  t.notOk(JSON.stringify([...h.inventory.entries()]).includes("secret key"), "nothing of the key kept");
});

function opensslPkcs12(dir: string, certPem: string, keyPem: string, caPem: string, pass: string, legacy: boolean): Buffer {
  writeFileSync(join(dir, "c.pem"), certPem);
  writeFileSync(join(dir, "k.pem"), keyPem);
  writeFileSync(join(dir, "ca.pem"), caPem);
  const out = join(dir, "b.p12");
  const args = ["pkcs12", "-export", "-in", join(dir, "c.pem"), "-inkey", join(dir, "k.pem"), "-certfile", join(dir, "ca.pem"), "-out", out, "-passout", `pass:${pass}`];
  // OpenSSL 1.x's defaults (RC2-40 for certificates, 3DES for the key), as older bundles and Java keystores have.
  if (legacy) args.push("-certpbe", "PBE-SHA1-3DES", "-keypbe", "PBE-SHA1-3DES", "-macalg", "sha1");
  execFileSync("openssl", args);
  return execFileSync("cat", [out]);
}

t.test("PKCS#12: good (modern and legacy), wrong passphrase, corrupt", async (t) => {
  const [leaf, ca] = await certPool(2);
  const dir = mkdtempSync(join(tmpdir(), "p12-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const key = await privateKeyPem(leaf!);
  const modern = opensslPkcs12(dir, leaf!.pem, key, ca!.pem, "s3cret", false);
  const legacy = opensslPkcs12(dir, leaf!.pem, key, ca!.pem, "changeit", true);
  const h = await startHarness(t, {
    secrets: {
      rules: [
        { type: "Opaque", keys: ["keystore.p12"], format: "pkcs12", passphraseKey: "password" },
        { type: "Opaque", keys: ["truststore.p12"], format: "pkcs12", passphrase: "changeit" },
      ],
    },
  });
  h.api.putSecret("java", "good", { "keystore.p12": modern, password: "s3cret\n" }, { type: "Opaque" });
  h.api.putSecret("java", "legacy", { "truststore.p12": legacy }, { type: "Opaque" });
  h.api.putSecret("java", "wrong", { "keystore.p12": modern, password: "nope" }, { type: "Opaque" });
  h.api.putSecret("java", "nopass", { "keystore.p12": modern }, { type: "Opaque" });
  const corrupt = Buffer.from(modern);
  corrupt.fill(0x41, 20, 200);
  h.api.putSecret("java", "corrupt", { "keystore.p12": corrupt, password: "s3cret" }, { type: "Opaque" });
  h.api.putSecret("java", "garbage", { "keystore.p12": "not a pfx at all", password: "s3cret" }, { type: "Opaque" });
  await h.source.start();
  const got = (name: string, key = "keystore.p12") => h.inventory.get({ source: "secret", namespace: "java", name, key });
  const serials = [leaf!, ca!].map((c) => c.cert.serialNumber.toLowerCase()).sort();
  t.same(got("good")?.certificates.map((c) => c.serial).sort(), serials, "modern bundle: leaf and CA (passphrase with a final newline)");
  t.same(got("legacy", "truststore.p12")?.certificates.map((c) => c.serial).sort(), serials, "legacy 3DES/SHA-1 bundle, passphrase from config");
  t.equal(got("wrong")?.error?.reason, "wrong_passphrase");
  t.match(got("nopass")?.error?.message, /no passphrase: the Secret has no key "password"/);
  t.equal(got("corrupt")?.error?.reason, "corrupt_certificate");
  t.equal(got("garbage")?.error?.reason, "corrupt_certificate");
  for (const line of h.logs) t.notMatch(JSON.stringify(line), /s3cret|changeit/, "no passphrase in the log");
});

t.test("in-cluster service account: a rotated token is used on the next request", async (t) => {
  const pool = await certPool(2);
  const h0 = await startHarness(t, { api: { token: "token-one" } });
  const api = h0.api;
  const root = mkdtempSync(join(tmpdir(), "sa-"));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const sa = join(root, SERVICE_ACCOUNT_DIR);
  mkdirSync(sa, { recursive: true });
  writeFileSync(join(sa, "token"), "token-one");
  writeFileSync(join(sa, "ca.crt"), api.caPem);
  writeFileSync(join(sa, "namespace"), "monitoring");
  const saved = { host: process.env.KUBERNETES_SERVICE_HOST, port: process.env.KUBERNETES_SERVICE_PORT, kubeconfig: process.env.KUBECONFIG };
  process.env.KUBERNETES_SERVICE_HOST = "127.0.0.1";
  process.env.KUBERNETES_SERVICE_PORT = String(api.port);
  delete process.env.KUBECONFIG;
  let kubeConfig;
  try {
    kubeConfig = loadKubeConfig({ inClusterPathPrefix: root });
  } finally {
    for (const [k, v] of [
      ["KUBERNETES_SERVICE_HOST", saved.host],
      ["KUBERNETES_SERVICE_PORT", saved.port],
      ["KUBECONFIG", saved.kubeconfig],
    ] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
  t.equal(kubeConfig.getCurrentCluster()?.server, `https://127.0.0.1:${api.port}`);
  const { SecretsSource } = await import("../src/sources/secrets.js");
  const { validateConfig } = await import("../src/config.js");
  const config = validateConfig({ sources: { secrets: { enabled: true } }, kubernetes: { backoff: { initial: "20ms", max: "200ms" } } });
  const source = new SecretsSource({ secrets: config.sources.secrets, kubernetes: config.kubernetes, kubeConfig }, h0.source.collections[0]!.ctx);
  t.teardown(() => source.stop());
  putTls(api, "default", "one", [pool[0]!]);
  await source.start();
  t.ok(h0.inventory.get({ source: "secret", namespace: "default", name: "one", key: "tls.crt" }), "read with the first token");
  t.ok(await eventually(() => api.openWatches > 0), "watching with the first token");

  // The kubelet swaps the projected token (atomic rename); the server stops accepting the old one.
  writeFileSync(join(sa, "token.new"), "token-two\n");
  renameSync(join(sa, "token.new"), join(sa, "token"));
  api.addToken("token-two");
  api.removeToken("token-one");
  api.closeWatches();
  putTls(api, "default", "two", [pool[1]!]);
  t.ok(await eventually(() => !!h0.inventory.get({ source: "secret", namespace: "default", name: "two", key: "tls.crt" })), "read with the rotated token");
  t.same(api.requests((r) => r.status === 401).map((r) => `${r.verb} ${r.path}`), [], "never refused: the new token was used at once");
});
