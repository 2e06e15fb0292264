/**
 * What the exporter holds per object for as long as the object lives: with 100,000 TLS Secrets every
 * byte of it counts 100,000 times (bench/secrets.ts). The location keys of an object's state are one
 * array shared by every object with the same keys, and a location's records sit in an array of their
 * own length, not in the 17-slot array push leaves behind.
 */
import { runInNewContext } from "node:vm";
import { setFlagsFromString } from "node:v8";
import t from "tap";
import { ParseCache } from "../src/certs/cache.js";
import { makeCert } from "../scripts/certgen.js";
import { KubeCertificateSource, sharedKeys } from "../src/sources/kube-certificates.js";
import { putTls, startHarness } from "./k8s/exporter-harness.js";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

t.test("Secrets with the same keys share one frozen key list in their states", async (t) => {
  const [a, b, ca] = [await makeCert({ cn: "a" }), await makeCert({ cn: "b" }), await makeCert({ cn: "ca", ca: true })];
  const h = await startHarness(t);
  putTls(h.api, "default", "one", [a], ca);
  putTls(h.api, "team-a", "two", [b], ca);
  putTls(h.api, "team-a", "three", [b]);
  await h.source.start();
  const states = (h.source as KubeCertificateSource).collections[0]!.states() as { name: string; keys: readonly string[] }[];
  const byName = new Map(states.map((s) => [s.name, s.keys]));
  t.same(byName.get("one"), ["ca.crt", "tls.crt"]);
  t.equal(byName.get("one"), byName.get("two"), "one array for both");
  t.ok(Object.isFrozen(byName.get("one")), "shared, so frozen");
  t.same(byName.get("three"), ["tls.crt"]);
  t.not(byName.get("three"), byName.get("one"));
});

t.test("sharedKeys: equal lists give one array; lists past the bound are still copies of their own", async (t) => {
  const list = ["x", "y"];
  const shared = sharedKeys(list);
  t.equal(sharedKeys(["x", "y"]), shared);
  t.not(shared, list, "a copy, not the caller's array");
  list.push("z");
  t.same(shared, ["x", "y"], "the caller's later changes do not reach it");
  for (let i = 0; i < 2000; i++) sharedKeys([`k${i}`]);
  const late = sharedKeys(["late"]);
  t.same(late, ["late"]);
  t.ok(Object.isFrozen(late));
});

t.test("a location's records are held in an array of their own length", async (t) => {
  // 20,000 distinct inputs holding the same certificate: one record, 20,000 arrays kept by the cache
  // (as the inventory keeps them). What each costs beyond the record is the array, its entry and key.
  const leaf = await makeCert({ cn: "held" });
  const count = 20_000;
  const inputs = Array.from({ length: count }, (_, i) => Buffer.from(`input ${i}\n${leaf.pem}`));
  const cache = new ParseCache(count);
  const held: unknown[] = [];
  for (const input of inputs) held.push(cache.parse(input));
  t.equal(held.length, count);
  // What the held arrays cost: the heap with them, less the heap once they are let go.
  gc();
  gc();
  const holding = process.memoryUsage().heapUsed;
  held.length = 0;
  cache.clear();
  gc();
  gc();
  const perInput = (holding - process.memoryUsage().heapUsed) / count;
  // An exactly sized array of one record is 24 + 32 bytes; the one push made was 152 + 32. With the
  // cache's entry, key and map slot, measured 368 bytes before and 240 after on Node 20.
  t.ok(perInput < 300, `${perInput.toFixed(0)} bytes held per parsed input`);
});
