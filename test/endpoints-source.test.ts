import { once, EventEmitter } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t, { type Test } from "tap";
import { makeCert, makeChain, privateKeyPem } from "../scripts/certgen.js";
import { ParseCache } from "../src/certs/cache.js";
import type { EndpointTarget } from "../src/config.js";
import { Health } from "../src/health.js";
import { Inventory } from "../src/inventory.js";
import type { Location } from "../src/model.js";
import { createLogger } from "../src/log.js";
import { EndpointSource, endpointLocation, splitHostPort, type EndpointSourceOptions, type ProbeTarget, type TargetProvider } from "../src/sources/endpoints.js";
import { SourceContext } from "../src/sources/source.js";
import { closedPort, silentServer, tlsServer, type TlsTestServer } from "./helpers/tls-servers.js";

const { root, intermediate, leaf } = await makeChain("localhost");
const leafKey = await privateKeyPem(leaf);
const chainPem = leaf.pem + intermediate.pem;

const dir = await mkdtemp(join(tmpdir(), "endpoints-source-"));
t.teardown(() => rm(dir, { recursive: true, force: true }));
const caFile = join(dir, "ca.pem");
await writeFile(caFile, root.pem);

/** A source over a fresh inventory; `published` emits the location name of every publish, in order. */
function harness(t: Test, targets: EndpointTarget[], options: Partial<EndpointSourceOptions> = {}, providers: TargetProvider[] = []) {
  const inventory = new Inventory();
  const health = new Health(inventory);
  const ctx = new SourceContext(inventory, new ParseCache(1000), health, createLogger("silent"));
  const published = new EventEmitter();
  const order: string[] = [];
  const publish = ctx.publish.bind(ctx);
  ctx.publish = (location, result, extra) => {
    publish(location, result, extra);
    order.push(location.name);
    published.emit("publish", location.name);
  };
  const source = new EndpointSource(targets, { intervalSeconds: 3600, jitter: 0, concurrency: 8, timeout: 5, connectTimeout: 2, maxFileSize: 1024 * 1024, ...options }, ctx, providers);
  t.teardown(() => source.stop());
  return { inventory, health, source, ctx, published, order };
}

async function server(t: Test, options: Partial<Parameters<typeof tlsServer>[0]> = {}): Promise<TlsTestServer> {
  const started = await tlsServer({ cert: chainPem, key: leafKey, ...options });
  t.teardown(() => started.close());
  return started;
}

/** Resolves when `names` have all been published. */
function publishedAll(published: EventEmitter, names: string[]): Promise<void> {
  const pending = new Set(names);
  return new Promise((resolve) => {
    const listener = (name: string): void => {
      pending.delete(name);
      if (pending.size === 0) {
        published.off("publish", listener);
        resolve();
      }
    };
    published.on("publish", listener);
  });
}

const loc = (name: string, key = ""): Location => ({ source: "endpoint", namespace: "", name, key });

t.test("addresses and locations", async (t) => {
  t.same(splitHostPort("example.com:443"), { host: "example.com", port: 443 });
  t.same(splitHostPort("[::1]:8443"), { host: "::1", port: 8443 });
  t.same(splitHostPort("10.0.0.1", 443), { host: "10.0.0.1", port: 443 });
  t.same(splitHostPort("fd00::1", 443), { host: "fd00::1", port: 443 });
  t.throws(() => splitHostPort("example.com"));
  t.same(endpointLocation({ namespace: "", address: "[::1]:443" }), loc("[::1]:443"));
  t.same(endpointLocation({ namespace: "", address: "Example.COM:443", serverName: "example.com" }), loc("example.com:443"));
  t.same(endpointLocation({ namespace: "web", address: "10.0.0.1:443", serverName: "app.example" }), { source: "endpoint", namespace: "web", name: "10.0.0.1:443", key: "app.example" });
});

t.test("static targets become inventory entries", async (t) => {
  const good = await server(t);
  const v6leaf = await makeCert({ cn: "v6", issuer: intermediate, sans: ["IP:::1"] });
  const v6 = await server(t, { cert: v6leaf.pem + intermediate.pem, key: await privateKeyPem(v6leaf), host: "::1" });
  const refused = await closedPort();
  const h = harness(t, [
    { address: good.address, serverName: "localhost", caFile },
    { address: v6.address, caFile },
    { address: `127.0.0.1:${refused}` },
    { address: "unresolvable.invalid:443" },
  ]);
  await h.source.scanOnce();
  t.equal(h.inventory.size, 4);

  const ok = h.inventory.get(loc(good.address, "localhost"));
  t.equal(ok?.certificates.length, 2, "leaf and intermediate");
  t.equal(ok?.certificates[0]?.subjectCN, "localhost", "index 0 is the leaf");
  t.equal(ok?.certificates[1]?.subjectCN, "Test Intermediate CA");
  t.match(ok?.probe, { success: true, chainVerified: true, hostnameMatch: true, tlsVersion: "TLSv1.3" });
  t.equal(ok?.error, undefined);

  const six = h.inventory.get(loc(`[::1]:${v6.port}`));
  t.match(six?.probe, { success: true, chainVerified: true, hostnameMatch: true });

  const bad = h.inventory.get(loc(`127.0.0.1:${refused}`));
  t.same(bad?.certificates, []);
  t.equal(bad?.error?.reason, "connection_refused");
  t.match(bad?.probe, { success: false, reason: "connection_refused" });

  t.equal(h.inventory.get(loc("unresolvable.invalid:443"))?.error?.reason, "dns_error");
  const up = (await h.health.sourceUp.get()).values.find((v) => v.labels.source === "endpoint");
  t.equal(up?.value, 1, "per-endpoint failures do not take the source down");
});

t.test("broken chains are still exported; a server demanding a client certificate too", async (t) => {
  const expired = await makeCert({ cn: "localhost", issuer: intermediate, sans: ["localhost"], notBeforeDays: -10, notAfterDays: -1 });
  const expiredServer = await server(t, { cert: expired.pem + intermediate.pem, key: await privateKeyPem(expired) });
  const clientCa = await makeCert({ cn: "Client CA", ca: true });
  const mtls = await server(t, { clientCa: [clientCa.pem] });
  const client = await makeCert({ cn: "prober", issuer: clientCa });
  const certFile = join(dir, "client.pem");
  const keyFile = join(dir, "client-key.pem");
  await writeFile(certFile, client.pem);
  await writeFile(keyFile, await privateKeyPem(client));
  const h = harness(t, [
    { address: expiredServer.address, serverName: "localhost", caFile },
    { address: mtls.address, serverName: "localhost", caFile },
    { address: mtls.address, serverName: "LOCALHOST", caFile, certFile, keyFile },
  ]);
  // Two targets on one address differ by server name only when the name differs; the second mTLS
  // target has the same location and is dropped as a duplicate.
  t.equal(h.source.locations().length, 0, "nothing before the first scan");
  await h.source.scanOnce();
  t.equal(h.inventory.size, 2);
  const gone = h.inventory.get(loc(expiredServer.address, "localhost"));
  t.match(gone?.probe, { success: true, chainVerified: false, verifyError: "CERT_HAS_EXPIRED" });
  t.equal(gone?.certificates.length, 2);
  const demanded = h.inventory.get(loc(mtls.address, "localhost"));
  t.match(demanded?.probe, { success: false, reason: "client_cert_required" });
  t.equal(demanded?.certificates.length, 2, "the presented chain is exported");
  t.equal(demanded?.error, undefined);

  const withCert = harness(t, [{ address: mtls.address, serverName: "localhost", caFile, certFile, keyFile }]);
  await withCert.source.scanOnce();
  t.match(withCert.inventory.get(loc(mtls.address, "localhost"))?.probe, { success: true, chainVerified: true });

  const missing = harness(t, [{ address: mtls.address, caFile: join(dir, "nope.pem") }]);
  await missing.source.scanOnce();
  t.equal(missing.inventory.get(loc(mtls.address))?.error?.reason, "not_found", "a missing CA file is the endpoint's error");
});

t.test("a replaced CA file counts from the next cycle; a removed one is every target's error", async (t) => {
  const a = await server(t);
  const b = await server(t);
  const rotating = join(dir, "rotating-ca.pem");
  const other = await makeCert({ cn: "Unrelated Root", ca: true });
  await writeFile(rotating, other.pem);
  const h = harness(t, [
    { address: a.address, serverName: "localhost", caFile: rotating },
    { address: b.address, serverName: "localhost", caFile: rotating },
  ]);
  await h.source.scanOnce();
  for (const s of [a, b]) t.match(h.inventory.get(loc(s.address, "localhost"))?.probe, { chainVerified: false, verifyError: "UNABLE_TO_GET_ISSUER_CERT_LOCALLY" });
  await writeFile(rotating, root.pem);
  await h.source.scanOnce();
  for (const s of [a, b]) t.match(h.inventory.get(loc(s.address, "localhost"))?.probe, { chainVerified: true, verifyError: "" }, "the new CA verifies the next cycle");
  await rm(rotating);
  await h.source.scanOnce();
  for (const s of [a, b]) t.equal(h.inventory.get(loc(s.address, "localhost"))?.error?.reason, "not_found", "a CA file gone is every target's error");
});

t.test("a target removed from the configuration loses its series", async (t) => {
  const a = await server(t);
  const b = await server(t);
  const h = harness(t, [{ address: a.address }, { address: b.address }]);
  await h.source.start();
  t.ok(h.inventory.get(loc(a.address)));
  t.ok(h.inventory.get(loc(b.address)));
  h.source.setStaticTargets([{ address: a.address }]);
  t.ok(h.inventory.get(loc(a.address)), "kept");
  t.equal(h.inventory.get(loc(b.address)), undefined, "gone");
  t.same(h.source.locations(), [loc(a.address)]);
});

/** A discovery double: the test says what the current list is. */
class FakeDiscovery implements TargetProvider {
  readonly name = "fake";
  targets: ProbeTarget[] = [];
  #onChange: ((targets: readonly ProbeTarget[]) => void) | undefined;
  async start(onChange: (targets: readonly ProbeTarget[]) => void): Promise<void> {
    this.#onChange = onChange;
    onChange(this.targets);
  }
  async list(): Promise<readonly ProbeTarget[]> {
    return this.targets;
  }
  async stop(): Promise<void> {
    this.#onChange = undefined;
  }
  set(targets: ProbeTarget[]): void {
    this.targets = targets;
    this.#onChange?.(targets);
  }
}

t.test("discovered targets: added ones are probed at once, gone ones lose their series, in-flight ones are dropped", async (t) => {
  const a = await server(t);
  const slow = await silentServer();
  t.teardown(() => slow.close());
  const discovery = new FakeDiscovery();
  discovery.targets = [{ namespace: "web", address: a.address, serverName: "localhost" }];
  const h = harness(t, [], { timeout: 30 }, [discovery]);
  await h.source.start();
  const webLoc: Location = { source: "endpoint", namespace: "web", name: a.address, key: "localhost" };
  t.equal(h.inventory.get(webLoc)?.certificates.length, 2, "namespace from the discovered object");

  const b = await server(t);
  const addedB = publishedAll(h.published, [b.address]);
  discovery.set([...discovery.targets, { namespace: "web", address: b.address }]);
  await addedB;
  t.ok(h.inventory.get({ source: "endpoint", namespace: "web", name: b.address, key: "" }), "new target probed without waiting for a cycle");

  // A target whose probe hangs, removed while in flight: it is aborted and never published.
  discovery.set([{ namespace: "web", address: a.address, serverName: "localhost" }, { namespace: "web", address: slow.address }]);
  for (let i = 0; i < 200 && slow.accepted === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
  t.equal(slow.accepted, 1, "the slow target is being probed");
  discovery.set([]);
  t.equal(h.inventory.size, 0, "every discovered target gone");
  await h.source.stop();
  t.notOk(h.order.includes(slow.address), "the aborted probe published nothing");
  t.equal(h.inventory.size, 0);
});

t.test("one slow endpoint does not delay the others", async (t) => {
  const slow = await silentServer();
  t.teardown(() => slow.close());
  const fast = await Promise.all([1, 2, 3, 4].map(() => server(t)));
  const h = harness(t, [{ address: slow.address, timeout: 30 }, ...fast.map((s) => ({ address: s.address }))], { concurrency: 2 });
  const fastDone = publishedAll(h.published, fast.map((s) => s.address));
  const cycle = h.source.scanOnce();
  await fastDone;
  t.same(h.order.slice().sort(), fast.map((s) => s.address).sort(), "all fast endpoints published while the slow one still hangs");
  t.equal(slow.accepted, 1, "the slow one was connected first and still holds its slot");
  // End the slow probe: the server goes away, the probe fails and the cycle completes.
  await slow.close();
  await cycle;
  t.equal(h.order.at(-1), slow.address, "the slow endpoint published last");
  t.equal(h.inventory.get(loc(slow.address))?.probe?.success, false);
});

t.test("the concurrency limit is honoured", async (t) => {
  const total = 9;
  const limit = 3;
  const gated = await server(t, { gate: { limit, total, settleMs: 50 } });
  const targets = Array.from({ length: total }, (_, i) => ({ address: gated.address, serverName: `n${i}.localhost` }));
  const h = harness(t, targets, { concurrency: limit });
  await h.source.scanOnce();
  t.equal(gated.accepted, total);
  t.equal(gated.maxHeld, limit, "exactly the limit was open at once");
  t.equal(h.inventory.size, total);
  for (const entry of h.inventory.entries()) t.equal(entry.probe?.hostnameMatch, false, "names differ from the leaf");
});

t.test("cycles repeat on the interval until stopped", async (t) => {
  const a = await server(t);
  const h = harness(t, [{ address: a.address }], { intervalSeconds: 0.05, jitter: 0.5 });
  await h.source.start();
  for (let i = 0; i < 500 && h.order.length < 3; i++) await once(h.published, "publish");
  t.ok(h.order.length >= 3, "probed again on later cycles");
  await h.source.stop();
  const after = h.order.length;
  await new Promise((resolve) => setTimeout(resolve, 120));
  t.equal(h.order.length, after, "nothing after stop");
});
