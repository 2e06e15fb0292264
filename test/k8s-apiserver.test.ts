/**
 * The Kubernetes API server double, checked with real clients: kubectl (spawned) and
 * @kubernetes/client-node, plus raw HTTPS for the protocol details and every injected fault.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t, { type Test } from "tap";
import { makeCert, privateKeyPem } from "../scripts/certgen.js";
import { FakeApiServer, type K8sObject } from "./k8s/apiserver.js";
import { JsonStreamSplitter, kubectl, raw, RawWatch, spawnKubectl } from "./k8s/client.js";

const home = mkdtempSync(join(tmpdir(), "k8s-apiserver-test-"));
t.teardown(() => rmSync(home, { recursive: true, force: true }));

async function startApi(t: Test, opts: Parameters<typeof FakeApiServer.start>[0] = {}): Promise<FakeApiServer> {
  const api = await FakeApiServer.start(opts);
  t.teardown(() => api.close());
  return api;
}

type Obj = Record<string, unknown> & { metadata: Record<string, unknown> };
const items = (r: { json: Record<string, unknown> | undefined }) => (r.json?.items ?? []) as Obj[];
const names = (objs: Obj[]) => objs.map((o) => `${String(o.metadata.namespace ?? "")}/${String(o.metadata.name)}`);

function seed(api: FakeApiServer, count: number, ns = ["a", "b"]): void {
  for (let i = 0; i < count; i++) {
    api.putSecret(ns[i % ns.length]!, `s${String(i).padStart(2, "0")}`, { "ca.crt": `value-${i}` }, { type: i % 2 ? "Opaque" : "kubernetes.io/tls", labels: { app: i % 3 ? "web" : "db", idx: String(i) } });
  }
}

t.test("kubectl drives the double end to end", async (t) => {
  const api = await startApi(t);
  const kc = api.kubeconfigPath();
  const k = (...args: string[]) => kubectl(kc, home, args);
  const leaf = await makeCert({ cn: "web.team-a.svc", sans: ["web.team-a.svc"] });
  const dir = mkdtempSync(join(tmpdir(), "k8s-tls-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, "tls.crt"), leaf.pem);
  writeFileSync(join(dir, "tls.key"), await privateKeyPem(leaf));

  let r = await k("create", "namespace", "team-a");
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /namespace\/team-a created/);
  t.ok(api.get("namespaces", undefined, "team-a"), "namespace stored");

  r = await k("create", "secret", "tls", "web-tls", "--cert", join(dir, "tls.crt"), "--key", join(dir, "tls.key"), "-n", "team-a");
  t.equal(r.code, 0, r.stderr);
  const stored = api.get("secrets", "team-a", "web-tls")!;
  t.equal(stored.type, "kubernetes.io/tls");
  t.equal(Buffer.from((stored.data as Record<string, string>)["tls.crt"]!, "base64").toString(), leaf.pem, "certificate bytes stored as sent");
  api.putSecret("team-b", "other", { "ca.crt": "x" }, { labels: { app: "db" } });

  r = await k("get", "secrets", "-A", "-o", "json");
  t.equal(r.code, 0, r.stderr);
  const listed = (JSON.parse(r.stdout) as { items: K8sObject[] }).items;
  t.same(listed, api.list("secrets"), "kubectl -o json sees exactly the double's Secrets");

  r = await k("get", "secrets", "-A");
  t.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split("\n");
  t.match(lines[0], /^NAMESPACE\s+NAME\s+TYPE\s+DATA\s+AGE$/, "server-side Table columns");
  t.same(
    lines.slice(1).map((l) => l.split(/\s+/).slice(0, 4)),
    api.list("secrets").map((s) => [s.metadata.namespace, s.metadata.name, s.type, String(Object.keys(s.data as object).length)]),
  );
  t.ok(api.countRequests({ verb: "list", path: "/api/v1/secrets", query: { limit: "500" } }) >= 2);
  t.ok(api.requests({ verb: "list" }).some((q) => q.accept?.includes("as=Table")), "kubectl asked for a Table");

  r = await k("label", "secret", "web-tls", "-n", "team-a", "app=web", "tier=edge");
  t.equal(r.code, 0, r.stderr);
  r = await k("annotate", "secret", "web-tls", "-n", "team-a", "cert-expiry-exporter/warn-days=10");
  t.equal(r.code, 0, r.stderr);
  const labelled = api.get("secrets", "team-a", "web-tls")!;
  t.same(labelled.metadata.labels, { app: "web", tier: "edge" });
  t.same(labelled.metadata.annotations, { "cert-expiry-exporter/warn-days": "10" });
  t.ok(Number(labelled.metadata.resourceVersion) > Number(stored.metadata.resourceVersion), "resourceVersion moved");
  t.equal(labelled.metadata.uid, stored.metadata.uid, "uid kept");

  r = await k("get", "secrets", "-A", "-l", "app=web", "-o", "name");
  t.equal(r.stdout.trim(), "secret/web-tls");
  r = await k("get", "secrets", "-A", "-l", "app in (db),!tier", "-o", "name");
  t.equal(r.stdout.trim(), "secret/other");
  r = await k("get", "secrets", "-A", "--field-selector", "type=kubernetes.io/tls", "-o", "name");
  t.equal(r.stdout.trim(), "secret/web-tls");
  t.ok(api.countRequests({ verb: "list", query: { fieldSelector: "type=kubernetes.io/tls" } }) >= 1, "field selector went to the server");

  r = await k("label", "secret", "web-tls", "-n", "team-a", "tier-");
  t.equal(r.code, 0, r.stderr);
  t.same(api.get("secrets", "team-a", "web-tls")!.metadata.labels, { app: "web" }, "label removed via merge patch null");

  r = await k("delete", "secret", "web-tls", "-n", "team-a");
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /secret "web-tls" deleted/);
  t.equal(api.get("secrets", "team-a", "web-tls"), undefined);
  r = await k("get", "secret", "web-tls", "-n", "team-a");
  t.not(r.code, 0);
  t.match(r.stderr, /NotFound.*secrets "web-tls" not found/);

  r = await k("get", "namespaces", "-o", "name");
  t.same(r.stdout.trim().split("\n"), api.list("namespaces").map((n) => `namespace/${String(n.metadata.name)}`));
  r = await k("delete", "namespace", "team-b");
  t.equal(r.code, 0, r.stderr);
  t.same(api.list("secrets"), [], "namespace deletion removed its Secrets");
});

t.test("kubectl paginates with --chunk-size", async (t) => {
  const api = await startApi(t);
  seed(api, 7);
  const kc = api.kubeconfigPath();
  api.clearRequests();
  const r = await kubectl(kc, home, ["get", "secrets", "-A", "--chunk-size=2", "-o", "name"]);
  t.equal(r.code, 0, r.stderr);
  t.same(r.stdout.trim().split("\n"), api.list("secrets").map((s) => `secret/${String(s.metadata.name)}`));
  const pages = api.requests({ verb: "list", path: "/api/v1/secrets" });
  t.equal(pages.length, 4, "four pages of two");
  t.ok(pages.every((p) => p.query.limit === "2"));
  t.equal(pages.filter((p) => p.query.continue).length, 3);

  const table = await kubectl(kc, home, ["get", "secrets", "-A", "--chunk-size=3"]);
  t.equal(table.code, 0, table.stderr);
  t.equal(table.stdout.trim().split("\n").length, 8, "one header and seven rows across Table pages");
});

t.test("kubectl get --watch sees ADDED, MODIFIED and DELETED", async (t) => {
  const api = await startApi(t);
  api.putSecret("w", "before", { a: "1" });
  const kc = api.kubeconfigPath();
  const proc = spawnKubectl(kc, home, ["get", "secrets", "-n", "w", "--watch", "-o", "json", "--output-watch-events"]);
  t.teardown(() => proc.kill());
  const events: { type: string; object: K8sObject }[] = [];
  const splitter = new JsonStreamSplitter();
  let wake = () => undefined as void;
  proc.stdout.setEncoding("utf8");
  proc.stdout.on("data", (c: string) => {
    events.push(...(splitter.push(c) as typeof events));
    wake();
  });
  let stderr = "";
  proc.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
  const waitFor = (n: number) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`kubectl showed ${events.length} events, wanted ${n}: ${stderr}`)), 15_000);
      wake = () => {
        if (events.length >= n) {
          clearTimeout(timer);
          resolve();
        }
      };
      wake();
    });
  await waitFor(1);
  t.same([events[0]!.type, events[0]!.object.metadata.name], ["ADDED", "before"], "initial list shown as ADDED");
  // wait until kubectl's watch request is open before changing anything
  for (let i = 0; i < 100 && api.openWatches === 0; i++) await new Promise((r) => setTimeout(r, 50));
  t.equal(api.openWatches, 1);
  api.putSecret("w", "new", { a: "2" });
  const r = await kubectl(kc, home, ["label", "secret", "new", "-n", "w", "x=y"]);
  t.equal(r.code, 0, r.stderr);
  api.remove("secrets", "w", "before");
  api.putSecret("elsewhere", "ignored", { a: "3" });
  await waitFor(4);
  t.same(
    events.map((e) => [e.type, e.object.metadata.name]),
    [
      ["ADDED", "before"],
      ["ADDED", "new"],
      ["MODIFIED", "new"],
      ["DELETED", "before"],
    ],
  );
  t.same(events[2]!.object.metadata.labels, { x: "y" });
  const watchReq = api.requests({ verb: "watch" })[0]!;
  t.equal(watchReq.path, "/api/v1/namespaces/w/secrets");
  t.ok(watchReq.query.resourceVersion, "watch started from the list's resourceVersion");
  proc.kill();
});

t.test("kubectl apply, replace and delete -f for Services, Ingresses and ConfigMaps", async (t) => {
  const api = await startApi(t);
  const kc = api.kubeconfigPath();
  const dir = mkdtempSync(join(tmpdir(), "k8s-apply-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, "objs.yaml");
  const yaml = (portName: string) => `apiVersion: v1
kind: Service
metadata: {name: web, namespace: default, annotations: {probe: "true"}}
spec: {ports: [{port: 443, name: ${portName}}, {port: 80, name: http}], selector: {app: web}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: default}
spec:
  tls: [{hosts: [a.example], secretName: web-tls}]
  rules: [{host: a.example}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cm, namespace: default}
data: {a: b}
`;
  writeFileSync(file, yaml("https"));
  let r = await kubectl(kc, home, ["apply", "-f", file]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /service\/web created\ningress.networking.k8s.io\/web created\nconfigmap\/cm created/);
  t.ok(api.countRequests({ path: "/openapi/v3" }) >= 1, "kubectl learned fieldValidation support from OpenAPI v3");
  writeFileSync(file, yaml("tls"));
  r = await kubectl(kc, home, ["apply", "-f", file]);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /service\/web configured\ningress.networking.k8s.io\/web unchanged/);
  const svc = api.get("services", "default", "web")!;
  t.same((svc.spec as { ports: unknown[] }).ports, [
    { name: "tls", port: 443, protocol: "TCP" },
    { name: "http", port: 80, protocol: "TCP" },
  ], "strategic merge patch merged ports by key");
  t.equal(svc.metadata.annotations?.probe, "true");
  r = await kubectl(kc, home, ["get", "ingress", "-A"]);
  t.match(r.stdout, /default\s+web\s+<none>\s+a\.example\s+80, 443/);
  r = await kubectl(kc, home, ["delete", "-f", file]);
  t.equal(r.code, 0, r.stderr);
  t.same([api.list("services"), api.list("ingresses"), api.list("configmaps")], [[], [], []]);
});

t.test("bearer token authentication", async (t) => {
  const api = await startApi(t);
  for (const token of [null, "wrong"]) {
    const r = await raw(api, "/api/v1/secrets", { token });
    t.equal(r.status, 401);
    t.same(r.json, { kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message: "Unauthorized", reason: "Unauthorized", code: 401 });
  }
  t.equal((await raw(api, "/version", { token: "wrong" })).status, 401);
  t.equal((await raw(api, "/api/v1/secrets")).status, 200);
  const kc = api.kubeconfigPath({ token: "wrong" });
  const r = await kubectl(kc, home, ["get", "secrets", "-A"]);
  t.not(r.code, 0);
  t.match(r.stderr, /Unauthorized|must be logged in/);
});

t.test("discovery", async (t) => {
  const api = await startApi(t);
  const v1 = (await raw(api, "/api/v1")).json!;
  t.equal(v1.kind, "APIResourceList");
  const secrets = (v1.resources as Obj[]).find((r) => r.name === "secrets")!;
  t.match(secrets, { name: "secrets", singularName: "secret", namespaced: true, kind: "Secret", verbs: ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"] });
  t.match((await raw(api, "/apis")).json, { kind: "APIGroupList", groups: [{ name: "networking.k8s.io", preferredVersion: { groupVersion: "networking.k8s.io/v1" } }] });
  t.match((await raw(api, "/apis/networking.k8s.io/v1")).json, { resources: [{ name: "ingresses", kind: "Ingress", namespaced: true }] });
  t.match((await raw(api, "/version")).json, { major: "1", minor: "32" });
  t.equal((await raw(api, "/api/v1/widgets")).status, 404);
});

t.test("LIST pages: limit, continue, remainingItemCount, consistency, expiry", async (t) => {
  const api = await startApi(t, { historyWindow: 50, continueMaxAge: 20 });
  seed(api, 5);
  let r = await raw(api, "/api/v1/secrets?limit=2");
  t.equal(r.status, 200);
  t.match(r.json, { kind: "SecretList", apiVersion: "v1", metadata: { remainingItemCount: 3 } });
  t.same(names(items(r)), ["a/s00", "a/s02"]);
  t.notOk("kind" in items(r)[0]!, "list items carry no kind, like the real JSON list");
  const listRv = (r.json!.metadata as Obj["metadata"]).resourceVersion as string;
  const cont = (r.json!.metadata as Obj["metadata"]).continue as string;
  t.ok(cont);

  // Changes after the first page are not visible in later pages: the list is a snapshot.
  api.remove("secrets", "a", "s04");
  api.putSecret("a", "s03", { changed: "yes" });
  r = await raw(api, `/api/v1/secrets?limit=2&continue=${encodeURIComponent(cont)}`);
  t.same(names(items(r)), ["a/s04", "b/s01"], "deleted object still in the snapshot");
  t.equal((r.json!.metadata as Obj["metadata"]).resourceVersion, listRv);
  const cont2 = (r.json!.metadata as Obj["metadata"]).continue as string;
  r = await raw(api, `/api/v1/secrets?limit=2&continue=${encodeURIComponent(cont2)}`);
  t.same(names(items(r)), ["b/s03"]);
  t.same(Object.keys(items(r)[0]!.data as object), ["ca.crt"], "snapshot shows the old content");
  t.notOk((r.json!.metadata as Obj["metadata"]).continue, "last page has no continue");

  // Per-namespace pages.
  r = await raw(api, "/api/v1/namespaces/b/secrets?limit=1");
  t.same(names(items(r)), ["b/s01"]);

  // Explicit expiry: 410 Expired with a fresh (inconsistent) continue token.
  r = await raw(api, "/api/v1/secrets?limit=1");
  const fresh = (r.json!.metadata as Obj["metadata"]).continue as string;
  api.expireContinueTokens();
  r = await raw(api, `/api/v1/secrets?limit=1&continue=${encodeURIComponent(fresh)}`);
  t.equal(r.status, 410);
  t.match(r.json, { kind: "Status", apiVersion: "v1", status: "Failure", reason: "Expired", code: 410, message: /continue parameter is too old/ });
  const inconsistent = (r.json!.metadata as Obj["metadata"]).continue as string;
  t.ok(inconsistent, "410 carries a continue token for an inconsistent remainder");
  r = await raw(api, `/api/v1/secrets?limit=10&continue=${encodeURIComponent(inconsistent)}`);
  t.equal(r.status, 200);
  t.same(names(items(r)), ["a/s02", "a/s03", "b/s01", "b/s03"], "inconsistent remainder shows current state");

  // Age-based expiry: more than continueMaxAge resourceVersions later.
  r = await raw(api, "/api/v1/secrets?limit=1");
  const aging = (r.json!.metadata as Obj["metadata"]).continue as string;
  for (let i = 0; i < 21; i++) api.putSecret("c", `churn${i}`, { x: "y" });
  r = await raw(api, `/api/v1/secrets?limit=1&continue=${encodeURIComponent(aging)}`);
  t.equal(r.status, 410);
  t.equal(r.json!.reason, "Expired");

  t.equal((await raw(api, "/api/v1/secrets?limit=1&continue=garbage")).status, 400);
  t.equal((await raw(api, `/api/v1/secrets?limit=1&resourceVersion=1&continue=${encodeURIComponent(aging)}`)).status, 400);
});

t.test("LIST resourceVersion semantics", async (t) => {
  const api = await startApi(t);
  seed(api, 2);
  const rv1 = api.resourceVersion;
  api.putSecret("a", "later", { x: "1" });
  let r = await raw(api, `/api/v1/secrets?resourceVersion=${rv1}&resourceVersionMatch=Exact`);
  t.same(names(items(r)), ["a/s00", "b/s01"], "Exact reads the past");
  t.equal((r.json!.metadata as Obj["metadata"]).resourceVersion, rv1);
  r = await raw(api, `/api/v1/secrets?resourceVersion=${rv1}`);
  t.equal(items(r).length, 3, "NotOlderThan serves the latest");
  r = await raw(api, "/api/v1/secrets?resourceVersion=0");
  t.equal(items(r).length, 3);
  r = await raw(api, "/api/v1/secrets?resourceVersion=99999");
  t.equal(r.status, 504);
  t.match(r.json, { reason: "Timeout", details: { causes: [{ reason: "ResourceVersionTooLarge" }] } });
  api.compact();
  r = await raw(api, `/api/v1/secrets?resourceVersion=${rv1}&resourceVersionMatch=Exact`);
  t.equal(r.status, 410);
});

t.test("field and label selectors", async (t) => {
  const api = await startApi(t);
  seed(api, 6);
  const q = async (qs: string) => names(items(await raw(api, `/api/v1/secrets?${qs}`)));
  t.same(await q("fieldSelector=type%3Dkubernetes.io%2Ftls"), ["a/s00", "a/s02", "a/s04"]);
  t.same(await q("fieldSelector=type!%3Dkubernetes.io%2Ftls"), ["b/s01", "b/s03", "b/s05"]);
  t.same(await q("fieldSelector=metadata.name%3Ds03"), ["b/s03"]);
  t.same(await q("fieldSelector=metadata.namespace%3Da,type%3D%3Dkubernetes.io%2Ftls"), ["a/s00", "a/s02", "a/s04"]);
  t.same(await q(`labelSelector=${encodeURIComponent("app=db")}`), ["a/s00", "b/s03"]);
  t.same(await q(`labelSelector=${encodeURIComponent("app!=db")}`), ["a/s02", "a/s04", "b/s01", "b/s05"]);
  t.same(await q(`labelSelector=${encodeURIComponent("idx in (1,2,9)")}`), ["a/s02", "b/s01"]);
  t.same(await q(`labelSelector=${encodeURIComponent("idx notin (1,2),app=web")}`), ["a/s04", "b/s05"]);
  t.same(await q(`labelSelector=${encodeURIComponent("app")}`), names(items(await raw(api, "/api/v1/secrets"))));
  t.same(await q(`labelSelector=${encodeURIComponent("!app")}`), []);
  t.same(await q(`labelSelector=app%3Dweb&fieldSelector=type%3DOpaque&limit=2`), ["b/s01", "b/s05"], "selectors fill the page");

  let r = await raw(api, "/api/v1/secrets?fieldSelector=data.x%3Dy");
  t.equal(r.status, 400);
  t.match(r.json, { reason: "BadRequest", message: "field label not supported: data.x" });
  r = await raw(api, `/api/v1/secrets?labelSelector=${encodeURIComponent("a in (")}`);
  t.equal(r.status, 400);
  r = await raw(api, "/api/v1/secrets?labelSelector=app%3Dweb&limit=1");
  t.notOk("remainingItemCount" in (r.json!.metadata as object), "no remainingItemCount with selectors");
});

t.test("Table and metadata-only responses", async (t) => {
  const api = await startApi(t);
  seed(api, 2);
  const table = await raw(api, "/api/v1/secrets", { headers: { Accept: "application/json;as=Table;v=v1;g=meta.k8s.io,application/json" } });
  t.match(table.json, { kind: "Table", apiVersion: "meta.k8s.io/v1", columnDefinitions: [{ name: "Name" }, { name: "Type" }, { name: "Data" }, { name: "Age" }] });
  t.match((table.json!.rows as Obj[])[0], { cells: ["s00", "kubernetes.io/tls", 1, /^\d+s$/], object: { kind: "PartialObjectMetadata", metadata: { namespace: "a", name: "s00" } } });
  const meta = await raw(api, "/api/v1/secrets", { headers: { Accept: "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io" } });
  t.equal(meta.json!.kind, "PartialObjectMetadataList");
  t.notOk("data" in items(meta)[0]!, "no data in metadata-only lists");
});

t.test("create, update, patch, delete through the API", async (t) => {
  const api = await startApi(t);
  const base = "/api/v1/namespaces/default/secrets";
  let r = await raw(api, base, { method: "POST", body: { apiVersion: "v1", kind: "Secret", metadata: { name: "x" }, stringData: { a: "hello" } } });
  t.equal(r.status, 201);
  t.match(r.json, { kind: "Secret", apiVersion: "v1", type: "Opaque", data: { a: Buffer.from("hello").toString("base64") }, metadata: { name: "x", namespace: "default", uid: /-/, resourceVersion: /^\d+$/, creationTimestamp: /Z$/ } });
  t.notOk("stringData" in r.json!);
  const rv = (r.json!.metadata as Obj["metadata"]).resourceVersion;
  t.equal((await raw(api, base, { method: "POST", body: { metadata: { name: "x" } } })).json!.reason, "AlreadyExists");
  t.equal((await raw(api, "/api/v1/namespaces/nope/secrets", { method: "POST", body: { metadata: { name: "x" } } })).status, 404);
  r = await raw(api, base, { method: "POST", body: { metadata: { name: "t" }, type: "kubernetes.io/tls", data: { "tls.crt": "AAAA" } } });
  t.equal(r.status, 422);
  t.match(r.json, { reason: "Invalid", details: { causes: [{ field: "data[tls.key]", reason: "FieldValueRequired" }] } });

  r = await raw(api, `${base}/x`, { method: "PUT", body: { metadata: { name: "x", resourceVersion: "1" }, data: {} } });
  t.equal(r.status, 409);
  t.equal(r.json!.reason, "Conflict");
  r = await raw(api, `${base}/x`, { method: "PUT", body: { metadata: { name: "x", resourceVersion: rv, labels: { a: "b" } }, data: { k: "dg==" } } });
  t.equal(r.status, 200);
  t.same((r.json!.metadata as Obj["metadata"]).labels, { a: "b" });
  r = await raw(api, `${base}/x`, { method: "PATCH", headers: { "Content-Type": "application/json-patch+json" }, body: [{ op: "add", path: "/metadata/annotations", value: { n: "1" } }] });
  t.equal(r.status, 200);
  t.same((r.json!.metadata as Obj["metadata"]).annotations, { n: "1" });
  r = await raw(api, `${base}/x`, { method: "PATCH", headers: { "Content-Type": "application/apply-patch+yaml" }, body: "{}" });
  t.equal(r.status, 415);
  r = await raw(api, `${base}/x`, { method: "DELETE" });
  t.equal(r.status, 200);
  t.equal((await raw(api, `${base}/x`)).json!.reason, "NotFound");

  // Other resource types come from the same generic code.
  r = await raw(api, "/apis/networking.k8s.io/v1/namespaces/default/ingresses", { method: "POST", body: { metadata: { name: "web" }, spec: { tls: [{ hosts: ["a.example"], secretName: "x" }], rules: [{ host: "a.example" }] } } });
  t.equal(r.status, 201);
  t.match(r.json, { kind: "Ingress", apiVersion: "networking.k8s.io/v1" });
  r = await raw(api, "/api/v1/namespaces/default/services", { method: "POST", body: { metadata: { name: "web", annotations: { probe: "true" } }, spec: { ports: [{ port: 443 }] } } });
  t.match(r.json, { kind: "Service", spec: { type: "ClusterIP", clusterIP: /^10\.96\./, ports: [{ port: 443, protocol: "TCP" }] } });
  t.same(names(items(await raw(api, "/api/v1/services"))), ["default/web"]);
});

t.test("WATCH: events, selectors, bookmarks, timeouts, 410", async (t) => {
  const api = await startApi(t, { bookmarkIntervalMs: 100, historyWindow: 5 });
  api.putSecret("a", "one", { x: "1" }, { labels: { app: "web" } });
  const rv = api.resourceVersion;

  // From "now" (no resourceVersion): synthetic ADDED for what exists.
  const all = await RawWatch.open(api, "/api/v1/secrets?watch=true");
  t.equal(all.status, 200);
  await all.waitFor((e) => e.type === "ADDED" && (e.object.metadata as Obj["metadata"]).name === "one");

  const sel = await RawWatch.open(api, `/api/v1/namespaces/a/secrets?watch=1&resourceVersion=${rv}&labelSelector=app%3Dweb&allowWatchBookmarks=true`);
  api.putSecret("a", "two", { x: "2" }, { labels: { app: "web" } });
  api.putSecret("b", "other-ns", { x: "3" }, { labels: { app: "web" } });
  api.putSecret("a", "two", { x: "2" }, { labels: { app: "db" } }); // leaves the selector
  api.remove("secrets", "a", "one");
  await sel.waitFor((e) => e.type === "DELETED" && (e.object.metadata as Obj["metadata"]).name === "one");
  t.same(
    sel.events.filter((e) => e.type !== "BOOKMARK").map((e) => [e.type, (e.object.metadata as Obj["metadata"]).name]),
    [
      ["ADDED", "two"],
      ["DELETED", "two"],
      ["DELETED", "one"],
    ],
    "namespace and label selector applied; leaving the selector is DELETED",
  );
  const deleted = sel.events.find((e) => e.type === "DELETED" && (e.object.metadata as Obj["metadata"]).name === "one")!;
  t.equal((deleted.object.metadata as Obj["metadata"]).resourceVersion, api.resourceVersion, "DELETED carries the deletion resourceVersion");
  const bm = await sel.waitFor((e) => e.type === "BOOKMARK");
  t.same(bm.object, { kind: "Secret", apiVersion: "v1", metadata: { resourceVersion: api.resourceVersion, creationTimestamp: null } });
  t.notOk(all.events.some((e) => e.type === "BOOKMARK"), "no bookmarks unless asked");
  all.close();
  sel.close();

  // Field selector on watch.
  const tls = await RawWatch.open(api, `/api/v1/secrets?watch=true&resourceVersion=${api.resourceVersion}&fieldSelector=type%3Dkubernetes.io%2Ftls`);
  api.putSecret("a", "plain", { x: "1" });
  api.putSecret("a", "cert", { x: "1" }, { type: "kubernetes.io/tls" });
  const ev = await tls.waitFor(() => true);
  t.equal((ev.object.metadata as Obj["metadata"]).name, "cert");
  tls.close();

  // timeoutSeconds ends the stream cleanly.
  const short = await RawWatch.open(api, `/api/v1/secrets?watch=true&resourceVersion=${api.resourceVersion}&timeoutSeconds=1`);
  await short.waitEnd(4000);
  t.pass("timeoutSeconds closed the watch");

  // sendInitialEvents: ADDED then the initial-events-end bookmark.
  const init = await RawWatch.open(api, "/api/v1/namespaces/a/secrets?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true");
  const end = await init.waitFor((e) => e.type === "BOOKMARK");
  t.same((end.object.metadata as Obj["metadata"]).annotations, { "k8s.io/initial-events-end": "true" });
  t.same(init.events.slice(0, -1).map((e) => e.type), ["ADDED", "ADDED", "ADDED"]);
  init.close();

  // 410: history window of 5 resourceVersions.
  for (let i = 0; i < 6; i++) api.putSecret("a", `churn${i}`, { x: "1" });
  const old = await RawWatch.open(api, `/api/v1/secrets?watch=true&resourceVersion=${rv}`);
  const err = await old.waitFor((e) => e.type === "ERROR");
  t.match(err.object, { kind: "Status", apiVersion: "v1", status: "Failure", reason: "Expired", code: 410, message: /^too old resource version: \d+ \(\d+\)$/ });
  await old.waitEnd();
  t.equal(api.openWatches, 0);
});

t.test("fault: 403 Forbidden per namespace and at cluster scope", async (t) => {
  const api = await startApi(t);
  seed(api, 2);
  api.forbid({ resource: "secrets", namespace: "b" });
  let r = await raw(api, "/api/v1/namespaces/b/secrets");
  t.equal(r.status, 403);
  t.same(r.json, {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message: 'secrets is forbidden: User "system:serviceaccount:monitoring:cert-expiry-exporter" cannot list resource "secrets" in API group "" in the namespace "b"',
    reason: "Forbidden",
    details: { kind: "secrets" },
    code: 403,
  });
  t.equal((await raw(api, "/api/v1/namespaces/a/secrets")).status, 200, "other namespaces allowed");
  t.equal((await raw(api, "/api/v1/secrets")).status, 200, "cluster scope allowed");
  r = await raw(api, "/api/v1/namespaces/b/secrets/s01");
  t.match(r.json, { message: /^secrets "s01" is forbidden: .* cannot get resource/, details: { name: "s01", kind: "secrets" } });
  api.forbid({ resource: "secrets", namespace: null, verbs: ["list", "watch"] });
  r = await raw(api, "/api/v1/secrets");
  t.equal(r.status, 403);
  t.match(r.json!.message, /cannot list resource "secrets" in API group "" at the cluster scope$/);
  t.equal((await raw(api, "/api/v1/secrets?watch=true&timeoutSeconds=1")).status, 403);
  const k = await kubectl(api.kubeconfigPath(), home, ["get", "secrets", "-A"]);
  t.match(k.stderr, /Forbidden|forbidden/);
  api.clearFaults();
  t.equal((await raw(api, "/api/v1/secrets")).status, 200);
});

t.test("fault: 429 with Retry-After, 500, then recovery", async (t) => {
  const api = await startApi(t);
  seed(api, 1);
  api.tooManyRequests(2, 3);
  for (let i = 0; i < 2; i++) {
    const r = await raw(api, "/api/v1/secrets");
    t.equal(r.status, 429);
    t.equal(r.headers["retry-after"], "3");
    t.match(r.json, { kind: "Status", reason: "TooManyRequests", code: 429, details: { retryAfterSeconds: 3 } });
  }
  t.equal((await raw(api, "/api/v1/secrets")).status, 200);
  api.internalError(1, { verb: "watch" });
  t.equal((await raw(api, "/api/v1/secrets")).status, 200, "a list does not consume a watch-only fault");
  const w = await raw(api, "/api/v1/secrets?watch=true");
  t.equal(w.status, 500);
  t.match(w.json, { reason: "InternalError", code: 500 });
  api.failNext(500, { count: 1 });
  t.equal((await raw(api, "/api/v1")).status, 200, "discovery untouched by default");
  t.equal((await raw(api, "/api/v1/namespaces")).status, 500);
  t.equal(api.countRequests({ path: "/api/v1/secrets" }), 5);
  t.equal(api.countRequests({ path: "/api/v1/secrets", verb: "watch" }), 1);
});

t.test("fault: connection reset in the middle of a LIST page", async (t) => {
  const api = await startApi(t);
  seed(api, 10);
  api.resetNextList({ match: { path: "/api/v1/secrets" } });
  await t.rejects(raw(api, "/api/v1/secrets?limit=5"));
  const rec = api.requests({ verb: "list" }).at(-1)!;
  t.equal(rec.status, 0, "logged as never completed");
  t.ok(rec.bytes > 0, "part of the body was sent");
  const r = await raw(api, "/api/v1/secrets?limit=5");
  t.equal(items(r).length, 5, "next request is fine");
});

t.test("fault: silent watch stays open and sends nothing", async (t) => {
  const api = await startApi(t, { bookmarkIntervalMs: 50 });
  const w = await RawWatch.open(api, `/api/v1/secrets?watch=true&resourceVersion=${api.resourceVersion}&allowWatchBookmarks=true`);
  api.putSecret("a", "first", { x: "1" });
  await w.waitFor((e) => e.type === "ADDED");
  api.silenceWatches();
  api.putSecret("a", "second", { x: "1" });
  await new Promise((r) => setTimeout(r, 300));
  t.same(
    w.events.filter((e) => e.type !== "BOOKMARK").map((e) => (e.object.metadata as Obj["metadata"]).name),
    ["first"],
  );
  const bookmarks = w.events.filter((e) => e.type === "BOOKMARK").length;
  await new Promise((r) => setTimeout(r, 200));
  t.equal(w.events.filter((e) => e.type === "BOOKMARK").length, bookmarks, "no bookmarks either");
  t.notOk(w.ended, "still open");
  t.equal(api.openWatches, 1);

  api.silenceWatches({ open: false, next: 1 });
  const next = await RawWatch.open(api, "/api/v1/secrets?watch=true");
  await new Promise((r) => setTimeout(r, 100));
  t.same(next.events, [], "a new silent watch sends not even the initial ADDED events");
  const normal = await RawWatch.open(api, "/api/v1/secrets?watch=true");
  await normal.waitFor((e) => e.type === "ADDED");
  api.closeWatches();
  await Promise.all([w.waitEnd(), next.waitEnd(), normal.waitEnd()]);
  t.equal(api.openWatches, 0);
});

t.test("fault: server down, then up on the same port", async (t) => {
  const api = await startApi(t);
  api.putSecret("a", "kept", { x: "1" });
  const port = api.port;
  const w = await RawWatch.open(api, `/api/v1/secrets?watch=true&resourceVersion=${api.resourceVersion}`);
  await api.stop();
  await w.waitEnd();
  await t.rejects(raw(api, "/api/v1/secrets"), { code: "ECONNREFUSED" });
  await api.restart();
  t.equal(api.port, port);
  t.same(names(items(await raw(api, "/api/v1/secrets"))), ["a/kept"], "state survives");
});

t.test("@kubernetes/client-node works against the double", async (t) => {
  const k8s = await import("@kubernetes/client-node");
  const api = await startApi(t, { bookmarkIntervalMs: 100 });
  seed(api, 5);
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(api.kubeconfigPath());
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const page1 = await core.listSecretForAllNamespaces({ limit: 3, fieldSelector: "type=kubernetes.io/tls" });
  t.same(page1.items.map((s) => s.metadata?.name), ["s00", "s02", "s04"]);
  t.equal(page1.items[0]!.type, "kubernetes.io/tls");
  const p1 = await core.listSecretForAllNamespaces({ limit: 2 });
  t.ok(p1.metadata?._continue);
  const p2 = await core.listSecretForAllNamespaces({ limit: 2, _continue: p1.metadata!._continue! });
  t.same(p2.items.map((s) => s.metadata?.name), ["s04", "s01"]);
  api.tooManyRequests(1, 1);
  await t.rejects(core.listSecretForAllNamespaces({}), { code: 429 });

  const seen: string[] = [];
  let gotBookmark = false;
  const watch = new k8s.Watch(kc);
  let doneErr: unknown = "open";
  const got = new Promise<void>((resolve) => {
    void watch
      .watch(
        "/api/v1/secrets",
        { allowWatchBookmarks: true, resourceVersion: api.resourceVersion },
        (phase: string, obj: { metadata?: { name?: string } }) => {
          if (phase === "BOOKMARK") gotBookmark = true;
          else seen.push(`${phase} ${obj.metadata?.name}`);
          if (seen.length === 2 && gotBookmark) resolve();
        },
        (err: unknown) => {
          doneErr = err;
        },
      )
      .then((ctl) => t.teardown(() => ctl.abort()));
  });
  for (let i = 0; i < 100 && api.openWatches === 0; i++) await new Promise((r) => setTimeout(r, 20));
  api.putSecret("a", "watched", { x: "1" });
  api.remove("secrets", "a", "watched");
  await got;
  t.same(seen, ["ADDED watched", "DELETED watched"]);
  t.ok(gotBookmark);
  api.closeWatches();
  for (let i = 0; i < 100 && doneErr === "open"; i++) await new Promise((r) => setTimeout(r, 20));
  t.equal(doneErr, null, "server-side close reported as a clean end");
});
