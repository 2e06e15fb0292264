import t from "tap";
import { validateConfig } from "../src/config.js";
import { configErrorOf } from "./helpers/config-error.js";
import { fnv1a64, jumpHash, ordinalFromHostname, resolveShard, shardOf, shardOwns } from "../src/shard.js";

t.test("FNV-1a 64 matches the published test vectors", async (t) => {
  t.equal(fnv1a64("").toString(16), "cbf29ce484222325");
  t.equal(fnv1a64("a").toString(16), "af63dc4c8601ec8c");
  t.equal(fnv1a64("foobar").toString(16), "85944171f73967e8");
});

t.test("jump hash matches the reference C++ implementation of Lamping and Veach", async (t) => {
  // Computed with the paper's code (JumpConsistentHash, uint64_t key) for buckets 1, 2, 3, 10, 100, 1000.
  const reference: [bigint, number[]][] = [
    [0n, [0, 0, 0, 0, 0, 0]],
    [0xdeadbeefn, [0, 1, 2, 5, 87, 285]],
    [1n, [0, 0, 0, 6, 55, 549]],
    [0xcbf29ce484222325n, [0, 1, 1, 1, 90, 266]],
    [0xebada5168620c5fen, [0, 0, 2, 4, 48, 461]],
    [0x799eff3fa02c1887n, [0, 1, 1, 9, 69, 285]],
    [0xf83ee1a6f92e7c9dn, [0, 1, 1, 9, 37, 192]],
  ];
  for (const [key, buckets] of reference) {
    t.same([1, 2, 3, 10, 100, 1000].map((n) => jumpHash(key, n)), buckets, `key ${key.toString(16)}`);
  }
  t.throws(() => jumpHash(1n, 0), RangeError);
});

t.test("the key-to-replica mapping is a fixed contract (golden values)", async (t) => {
  // Changing these moves namespaces between replicas of a running StatefulSet: only on purpose.
  const golden: Record<string, [number, number, number]> = {
    default: [0, 2, 4],
    "kube-system": [1, 1, 1],
    monitoring: [1, 1, 9],
    "team-a": [0, 2, 2],
    "example.com:443": [1, 1, 9],
    "ünïcödé": [1, 2, 7],
  };
  for (const [key, [of2, of3, of10]] of Object.entries(golden)) {
    t.same([shardOf(key, 2), shardOf(key, 3), shardOf(key, 10)], [of2, of3, of10], key);
  }
});

const keys = Array.from({ length: 10_000 }, (_, i) => `namespace-${i}`);

t.test("every key is owned by exactly one replica, and the split is even", async (t) => {
  for (const count of [1, 2, 3, 5, 8]) {
    const owned = new Array<number>(count).fill(0);
    const notOwnedOnce: string[] = [];
    for (const key of keys) {
      const owners = Array.from({ length: count }, (_, index) => index).filter((index) => shardOwns(key, { index, count }));
      if (owners.length !== 1) notOwnedOnce.push(`${key}: ${owners.join(",")}`);
      else owned[owners[0] as number]! += 1;
    }
    t.same(notOwnedOnce, [], `count ${count}: each of ${keys.length} keys has exactly one owner`);
    const expected = keys.length / count;
    for (const n of owned) t.ok(Math.abs(n - expected) < expected * 0.1, `count ${count}: ${owned.join("/")} within 10 % of ${expected}`);
  }
});

t.test("growing from n to n+1 replicas moves keys only to the new replica, about 1/(n+1) of them", async (t) => {
  for (const n of [1, 2, 4, 7]) {
    let moved = 0;
    for (const key of keys) {
      const before = shardOf(key, n);
      const after = shardOf(key, n + 1);
      if (before === after) continue;
      moved++;
      if (after !== n) t.fail(`${key} moved from ${before} to ${after}, not to the new replica ${n}`);
    }
    const expected = keys.length / (n + 1);
    t.ok(Math.abs(moved - expected) < expected * 0.15, `${n} → ${n + 1}: ${moved} moved, about ${Math.round(expected)} expected`);
  }
});

t.test("the StatefulSet ordinal comes from the host name", async (t) => {
  t.equal(ordinalFromHostname("cert-expiry-exporter-0"), 0);
  t.equal(ordinalFromHostname("cert-expiry-exporter-12"), 12);
  t.equal(ordinalFromHostname("cert-expiry-exporter-3.cert-expiry-exporter.monitoring.svc"), 3);
  t.equal(ordinalFromHostname("cert-expiry-exporter-6d9f7c8b5-x2x4q"), undefined);
  t.equal(ordinalFromHostname("worker"), undefined);
});

t.test("resolveShard: explicit index, ordinal from the host name, or an error naming shard.index", async (t) => {
  const single = resolveShard(validateConfig({}).shard, "anything");
  t.same([single.index, single.count], [0, 1]);
  t.ok(keys.every((key) => single.owns(key)), "one replica owns everything");

  const explicit = resolveShard(validateConfig({ shard: { index: 1, count: 3 } }).shard, "cert-expiry-exporter-2");
  t.same([explicit.index, explicit.count], [1, 3], "an explicit index wins over the host name");

  const fromOrdinal = resolveShard(validateConfig({ shard: { count: 3 } }).shard, "cert-expiry-exporter-2");
  t.same([fromOrdinal.index, fromOrdinal.count], [2, 3]);
  t.equal(fromOrdinal.owns("default"), shardOf("default", 3) === 2);

  t.throws(() => resolveShard(validateConfig({ shard: { count: 3 } }).shard, "cert-expiry-exporter-6d9f7c8b5-x2x4q"), {
    name: "ConfigError",
    message: /^shard\.index: not set, and the host name "cert-expiry-exporter-6d9f7c8b5-x2x4q" does not end in a StatefulSet ordinal/,
  });
  t.throws(() => resolveShard(validateConfig({ shard: { count: 3 } }).shard, "cert-expiry-exporter-3"), {
    name: "ConfigError",
    message: /^shard\.index: 3 is not below shard\.count 3 \(ordinal of host name/,
  });
});

t.test("the shard config key is validated with its path", async (t) => {
  t.same(validateConfig({}).shard, { count: 1 });
  t.equal(configErrorOf({ shard: { index: 3, count: 3 } }), "shard.index: must be below shard.count");
  t.equal(configErrorOf({ shard: { count: 0 } }), "shard.count: Too small: expected number to be >=1");
  t.equal(configErrorOf({ shard: { index: -1, count: 2 } }), "shard.index: Too small: expected number to be >=0");
  t.equal(configErrorOf({ shard: { ordinal: 1 } }), "shard.ordinal: unknown key");
});

t.test("sharded replicas of the Secrets source read disjoint namespaces that together are everything", async (t) => {
  const { FakeApiServer } = await import("./k8s/apiserver.js");
  const { actualLocations, certPool, expectedLocations, putTls, startHarness } = await import("./k8s/exporter-harness.js");
  const api = await FakeApiServer.start({ bookmarkIntervalMs: 200 });
  t.teardown(() => api.close());
  const certs = await certPool(4);
  for (let i = 0; i < 12; i++) putTls(api, `team-${i}`, `tls-${i}`, [certs[i % 4]!]);
  const count = 3;
  const replicas = await Promise.all(
    Array.from({ length: count }, (_, index) => startHarness(t, { server: api, shard: resolveShard({ count, index }) })),
  );
  await Promise.all(replicas.map((h) => h.source.start()));
  const union: Record<string, string> = {};
  for (const [index, h] of replicas.entries()) {
    const held = actualLocations(h.inventory);
    t.ok(Object.keys(held).length > 0, `replica ${index} holds a share`);
    for (const [id, value] of Object.entries(held)) {
      t.equal(shardOf(id.split("/")[0] as string, count), index, `${id} belongs to replica ${index}`);
      t.notOk(id in union, `${id} is held once`);
      union[id] = value;
    }
  }
  t.same(union, expectedLocations(api), "together the replicas hold exactly the server's Secrets");
  const sharded = await startHarness(t, { server: api, shard: resolveShard({ count, index: 1 }), secrets: { namespaces: { include: ["team-0", "team-1", "team-2", "team-3"] } } });
  await sharded.source.start();
  const lists = api.requests({ verb: "list", resource: "secrets" }).map((r) => r.namespace);
  t.notOk(lists.includes(null as never), "literal includes: no cluster-wide list needed");
  const owned = ["team-0", "team-1", "team-2", "team-3"].filter((ns) => shardOf(ns, count) === 1);
  for (const ns of ["team-0", "team-1", "team-2", "team-3"]) {
    t.equal(lists.includes(ns), owned.includes(ns), `${ns} is listed only by its owner`);
  }
});

t.test("sharded replicas of a cluster-scoped kind (CSRs) keep disjoint objects, keyed by name, that together are everything", async (t) => {
  const { FakeApiServer } = await import("./k8s/apiserver.js");
  const { certPool, startKubeHarness } = await import("./k8s/exporter-harness.js");
  const { csrsSource } = await import("../src/sources/csrs.js");
  const api = await FakeApiServer.start({ bookmarkIntervalMs: 200 });
  t.teardown(() => api.close());
  const certs = await certPool(4);
  const names = Array.from({ length: 12 }, (_, i) => `csr-${i}`);
  for (const [i, name] of names.entries()) {
    api.put({
      apiVersion: "certificates.k8s.io/v1",
      kind: "CertificateSigningRequest",
      metadata: { name },
      spec: { signerName: "kubernetes.io/kubelet-serving" },
      status: { certificate: Buffer.from(certs[i % 4]!.pem).toString("base64") },
    });
  }
  const count = 3;
  const replicas = await Promise.all(
    Array.from({ length: count }, (_, index) =>
      startKubeHarness(t, { server: api, shard: resolveShard({ count, index }), sources: { csrs: { enabled: true } }, build: (config, ctx, kubeConfig) => csrsSource(config.sources.csrs, kubeConfig, config.kubernetes, ctx) }),
    ),
  );
  await Promise.all(replicas.map((h) => h.source.start()));
  const held = replicas.map((h) => [...h.inventory.entries()].map((e) => e.location.name).sort());
  for (const [index, own] of held.entries()) {
    t.ok(own.length > 0, `replica ${index} holds a share`);
    t.ok(own.every((name) => shardOf(name, count) === index), `replica ${index} holds only the CSRs it owns`);
  }
  t.same(held.flat().sort(), [...names].sort(), "together the replicas hold every CSR exactly once");
});

t.test("sharded endpoint sources probe disjoint targets, keyed by host:port", async (t) => {
  const { EndpointSource } = await import("../src/sources/endpoints.js");
  const { SourceContext } = await import("../src/sources/source.js");
  const { Inventory } = await import("../src/inventory.js");
  const { Health } = await import("../src/health.js");
  const { ParseCache } = await import("../src/certs/cache.js");
  const { createLogger } = await import("../src/log.js");
  // Closed loopback ports: every probe fails fast, which is enough to see who probes what.
  const targets = Array.from({ length: 20 }, (_, i) => ({ address: `127.0.0.1:${1 + i}` }));
  const count = 2;
  const names = new Set<string>();
  for (let index = 0; index < count; index++) {
    const inventory = new Inventory();
    const ctx = new SourceContext(inventory, new ParseCache(10), new Health(inventory), createLogger("silent"), { shard: resolveShard({ count, index }) });
    const source = new EndpointSource(targets, { intervalSeconds: 3600, jitter: 0, concurrency: 4, timeout: 2, connectTimeout: 1, maxFileSize: 1024 * 1024 }, ctx);
    await source.scanOnce();
    for (const entry of inventory.entries()) {
      t.equal(shardOf(entry.location.name, count), index, `${entry.location.name} probed by its owner`);
      t.notOk(names.has(entry.location.name), "probed once across replicas");
      names.add(entry.location.name);
    }
    await source.stop();
  }
  t.equal(names.size, targets.length, "every target is probed by one replica");
});
