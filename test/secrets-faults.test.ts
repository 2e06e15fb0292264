/**
 * Every fault of the API server double against the Secrets source; each ends with the exporter's
 * locations exactly equal to the double's state (nothing missing, stale or duplicated).
 */
import t, { type Test } from "tap";
import type { Issued } from "../scripts/certgen.js";
import type { FakeApiServer } from "./k8s/apiserver.js";
import { certPool, converge, counter, eventually, putTls, startHarness, type Harness } from "./k8s/exporter-harness.js";

const NAMESPACES = ["a", "b", "c"];

/** 24 TLS Secrets over three namespaces, plus an Opaque one per namespace that must not show. */
async function seed(api: FakeApiServer): Promise<Issued[]> {
  const pool = await certPool(8);
  for (const [n, ns] of NAMESPACES.entries()) {
    for (let i = 0; i < 8; i++) putTls(api, ns, `tls-${i}`, [pool[(i + n) % 8]!], i % 2 ? pool[7] : undefined);
    api.putSecret(ns, "other", { "tls.crt": pool[0]!.pem }, { type: "Opaque" });
  }
  return pool;
}

/** Changes made while the exporter cannot see them: a delete, an update, an add. */
function mutate(api: FakeApiServer, pool: Issued[], round: number): void {
  api.remove("secrets", "a", `tls-${round % 8}`);
  putTls(api, "b", `tls-${round % 8}`, [pool[(round + 3) % 8]!, pool[(round + 4) % 8]!]);
  putTls(api, "c", `new-${round}`, [pool[(round + 5) % 8]!]);
}

async function started(t: Test, opts: Parameters<typeof startHarness>[1] = {}): Promise<{ h: Harness; pool: Issued[] }> {
  const h = await startHarness(t, { ...opts, kubernetes: { pageSize: 5, ...opts.kubernetes } });
  const pool = await seed(h.api);
  await h.source.start();
  const r = await converge(h);
  t.same(r.actual, r.expected, "first sync matches");
  t.ok(await eventually(() => h.api.openWatches > 0), "watching");
  return { h, pool };
}

t.test("a continue token that expires in the middle of the list → relist from the start", async (t) => {
  const h = await startHarness(t, { kubernetes: { pageSize: 5 } });
  const pool = await seed(h.api);
  mutate(h.api, pool, 1);
  // The second page's request answers 410 Expired, as the real server does once etcd compacted.
  h.api.failNext(410, { match: { verb: "list", query: { continue: true } }, message: "The provided continue parameter is too old" });
  await h.source.start();
  const r = await converge(h);
  t.same(r.actual, r.expected);
  t.equal(await counter(h, "relists", { reason: "continue_expired" }), 1);
  t.ok(h.api.countRequests({ verb: "list", query: { continue: true } }) >= 5, "the list was paginated");
});

t.test("real continue-token expiry between pages (compaction while listing)", async (t) => {
  const h = await startHarness(t, { kubernetes: { pageSize: 5 } });
  await seed(h.api);
  let expired = false;
  // Expire tokens right after the first page was served.
  const check = setInterval(() => {
    if (!expired && h.api.requests({ verb: "list" }).some((r) => r.status === 200)) {
      expired = true;
      h.api.putSecret("a", "written-meanwhile", { "tls.crt": "x" }, { type: "kubernetes.io/tls" });
      h.api.expireContinueTokens();
    }
  }, 1);
  t.teardown(() => clearInterval(check));
  await h.source.start();
  clearInterval(check);
  const r = await converge(h);
  t.same(r.actual, r.expected);
});

t.test("watch 410 after compaction, with changes the watch never delivered → relist reconciles", async (t) => {
  const { h, pool } = await started(t);
  h.api.silenceWatches({ open: true });
  mutate(h.api, pool, 2);
  h.api.compact();
  h.api.closeWatches();
  const r = await converge(h);
  t.same(r.actual, r.expected, "deleted, updated and added Secrets all reconciled");
  t.ok((await counter(h, "relists", { reason: "watch_expired" })) >= 1, "counted as a watch_expired relist");
});

t.test("403 on one namespace: an error location and one log line; the others are read", async (t) => {
  const h = await startHarness(t, { secrets: { namespaces: { include: NAMESPACES } } });
  await seed(h.api);
  h.api.forbid({ resource: "secrets", namespace: "b" });
  await h.source.start();
  let r = await converge(h, { forbidden: ["b"] });
  t.same(r.actual, r.expected, "a and c read, b one forbidden location");
  const entry = h.inventory.get({ source: "secret", namespace: "b", name: "", key: "" })!;
  t.match(entry.error?.message, /cannot list secrets in the namespace "b"/);
  await new Promise((r) => setTimeout(r, 300)); // several retries happen meanwhile
  const lines = h.logs.filter((l) => l.reason === "forbidden");
  t.equal(lines.length, 1, "one log line however often it is retried");
  t.match(lines[0]!.err, /missing permission: cannot list secrets in the namespace "b"; grant list and watch on secrets with a Role in "b"/);
  t.ok(h.api.countRequests({ verb: "list", namespace: "b" }) > 1, "retried with backoff");
  t.equal(h.api.countRequests({ verb: ["list", "watch"], namespace: null }), 0, "literal includes: no cluster-wide request");

  h.api.clearFaults();
  r = await converge(h);
  t.same(r.actual, r.expected, "permission granted later: b read, its error gone");
});

t.test("namespaced RBAC: cluster-wide list forbidden", async (t) => {
  const api = (await startHarness(t)).api; // a double to share
  await seed(api);
  api.forbid({ resource: "secrets", namespace: null });

  const clusterWide = await startHarness(t, { server: api });
  await clusterWide.source.start();
  let r = await converge(clusterWide, { forbidden: [""], include: ["none"] });
  t.same(r.actual, r.expected, "cluster-wide mode: one forbidden location at namespace \"\"");
  t.match(clusterWide.inventory.get({ source: "secret", namespace: "", name: "", key: "" })?.error?.message, /cannot list secrets at the cluster scope.*ClusterRole/);

  const perNamespace = await startHarness(t, { server: api, secrets: { namespaces: { include: ["a", "c"] } } });
  await perNamespace.source.start();
  r = await converge(perNamespace, { include: ["a", "c"] });
  t.same(r.actual, r.expected, "literal includes: read per namespace with a namespaced Role");
  await clusterWide.close();
  await perNamespace.close();
});

t.test("429 with Retry-After on list and watch", async (t) => {
  const h = await startHarness(t, { kubernetes: { pageSize: 5 } });
  const pool = await seed(h.api);
  h.api.tooManyRequests(2, 1, { verb: "list" });
  await h.source.start();
  let r = await converge(h);
  t.same(r.actual, r.expected);
  const lists = h.api.requests({ verb: "list" });
  const refused = lists.findIndex((x) => x.status === 429);
  t.ok(lists[refused + 2]!.time - lists[refused + 1]!.time >= 950, "Retry-After honoured");
  h.api.tooManyRequests(1, 1, { verb: "watch" });
  h.api.closeWatches();
  mutate(h.api, pool, 3);
  r = await converge(h, {}, 1000);
  t.same(r.actual, r.expected);
  t.ok((await counter(h, "watchRestarts", { reason: "throttled" })) >= 1);
});

t.test("500 on list pages and on the watch: backoff, resume", async (t) => {
  const h = await startHarness(t, { kubernetes: { pageSize: 5 } });
  const pool = await seed(h.api);
  h.api.internalError(2, { verb: "list", query: { continue: true } });
  await h.source.start();
  let r = await converge(h);
  t.same(r.actual, r.expected);
  t.equal(await counter(h, "relists", {}), 0, "a failed page is retried with its continue token, not relisted");
  h.api.internalError(3, { verb: "watch" });
  h.api.closeWatches();
  mutate(h.api, pool, 4);
  r = await converge(h);
  t.same(r.actual, r.expected);
  t.ok((await counter(h, "watchRestarts", { reason: "server_error" })) >= 3);
});

t.test("connection reset in the middle of a page", async (t) => {
  const h = await startHarness(t, { kubernetes: { pageSize: 5 } });
  await seed(h.api);
  h.api.resetNextList({ count: 2 });
  await h.source.start();
  const r = await converge(h);
  t.same(r.actual, r.expected);
  t.equal(h.api.requests({ verb: "list" }).filter((x) => x.status === 0).length, 2, "two pages were cut");
});

t.test("a watch that stops sending is restarted", async (t) => {
  const { h, pool } = await started(t, { kubernetes: { watchTimeout: "1s" } });
  h.api.silenceWatches({ open: true });
  mutate(h.api, pool, 5);
  const r = await converge(h);
  t.same(r.actual, r.expected);
  t.ok((await counter(h, "watchRestarts", { reason: "silent" })) >= 1);
  t.ok(h.logs.some((l) => l.msg === "watch silent for too long; restarting it"));
});

t.test("server down, changes meanwhile, server up", async (t) => {
  const { h, pool } = await started(t);
  await h.api.stop();
  mutate(h.api, pool, 6);
  t.ok(await eventually(() => h.logs.some((l) => l.msg === "watch failed; resuming after backoff")), "the watch failed");
  await new Promise((r) => setTimeout(r, 300));
  t.equal((await h.health.sourceUp.get()).values[0]?.value, 0, "source down while the API is");
  await h.api.restart();
  const r = await converge(h);
  t.same(r.actual, r.expected);
  let up = 0;
  for (let i = 0; i < 200 && up !== 1; i++) {
    up = (await h.health.sourceUp.get()).values[0]?.value ?? 0;
    if (up !== 1) await new Promise((r) => setTimeout(r, 20));
  }
  t.equal(up, 1, "source up again");
});

t.test("periodic resync reconciles what silent watches missed", async (t) => {
  const { h, pool } = await started(t, { kubernetes: { resyncInterval: "600ms", watchTimeout: "1h" } });
  h.api.silenceWatches({ open: true, next: 1000 });
  mutate(h.api, pool, 7);
  const r = await converge(h);
  t.same(r.actual, r.expected);
  t.ok((await counter(h, "relists", { reason: "resync" })) >= 1);
});

t.test("a list page over kubernetes.maxPageBytes is asked for again with fewer objects", async (t) => {
  const h = await startHarness(t, { kubernetes: { pageSize: 500, maxPageBytes: "1MiB" } });
  const pool = await certPool(8);
  // PEM allows text around its blocks: 100 KiB of it in each Secret makes the 30 of them a 4 MiB page.
  const padding = `${"x".repeat(1023)}\n`.repeat(100);
  for (let i = 0; i < 30; i++) h.api.putSecret("big", `s-${i}`, { "tls.crt": padding + pool[i % 8]!.pem }, { type: "kubernetes.io/tls" });
  await h.source.start();
  const r = await converge(h);
  t.same(r.actual, r.expected, "every Secret is read");
  const limits = h.api.requests({ verb: "list" }).map((req) => Number(req.query.limit));
  t.equal(limits[0], 500, "the first page asked for the configured page size");
  t.ok(Math.min(...limits) < 10, `then fewer (${[...new Set(limits)].join(", ")})`);
  t.ok(h.logs.some((l) => l.msg === "a list page was too large; asking for smaller pages"), "and said so");
});
