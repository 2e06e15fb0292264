import t from "tap";
import { Inventory } from "../src/inventory.js";
import type { Location } from "../src/model.js";
import { record } from "./helpers/records.js";

const at = (name: string, key = ""): Location => ({ source: "file", namespace: "", name, key });

t.test("replace swaps a location's certificates as a whole", async (t) => {
  const inventory = new Inventory();
  inventory.replace(at("/a.pem"), { certificates: [record({ serial: "01" }), record({ serial: "02" })] });
  inventory.replace(at("/a.pem"), { certificates: [record({ serial: "03" })] });
  t.equal(inventory.size, 1);
  t.same(inventory.get(at("/a.pem"))?.certificates.map((c) => c.serial), ["03"]);
});

t.test("an error replaces the certificates of its location and nothing else", async (t) => {
  const inventory = new Inventory();
  inventory.replace(at("/a.pem"), { certificates: [record()] });
  inventory.replace(at("/b.pem"), { certificates: [record()] });
  inventory.replace(at("/a.pem"), { certificates: [], error: { reason: "corrupt_certificate", message: "x" } });
  t.equal(inventory.get(at("/a.pem"))?.certificates.length, 0);
  t.equal(inventory.get(at("/a.pem"))?.error?.reason, "corrupt_certificate");
  t.equal(inventory.get(at("/b.pem"))?.certificates.length, 1);
  t.equal(inventory.certificateCount(), 1);
});

t.test("remove and prune drop locations and bump the generation", async (t) => {
  const inventory = new Inventory();
  inventory.replace(at("/a.pem"), { certificates: [record()] });
  inventory.replace(at("/b.pem"), { certificates: [record()] });
  inventory.replace({ source: "kubeconfig", namespace: "", name: "/k", key: "users/u" }, { certificates: [record()] });
  const before = inventory.generation;
  t.equal(inventory.remove(at("/a.pem")), true);
  t.equal(inventory.remove(at("/a.pem")), false, "removing twice is a no-op");
  t.ok(inventory.generation > before);
  t.equal(inventory.prune("file", () => false), 1, "only the file source's locations go");
  t.equal(inventory.size, 1);
  t.equal([...inventory.entries()][0]?.location.source, "kubeconfig");
});

t.test("locations differ by every label, including key", async (t) => {
  const inventory = new Inventory();
  inventory.replace(at("/k", "users/a"), { certificates: [record()] });
  inventory.replace(at("/k", "clusters/a"), { certificates: [record()] });
  inventory.replace({ source: "secret", namespace: "ns", name: "/k", key: "users/a" }, { certificates: [record()] });
  t.equal(inventory.size, 3);
});

t.test("a stored location is a copy: mutating the caller's object changes nothing", async (t) => {
  const inventory = new Inventory();
  const location = at("/a.pem");
  inventory.replace(location, { certificates: [record()] });
  location.name = "/elsewhere";
  t.ok(inventory.get(at("/a.pem")));
  t.notOk(inventory.get(at("/elsewhere")));
});

t.test("certificates per source follow every replace, removal, prune and stale mark, and a source without certificates still counts 0", async (t) => {
  const inventory = new Inventory();
  const file = (name: string) => ({ source: "file" as const, namespace: "", name, key: "" });
  const secret = (name: string) => ({ source: "secret" as const, namespace: "ns", name, key: "tls.crt" });
  const counts = () => Object.fromEntries(inventory.certificatesBySource());
  inventory.replace(file("/a.pem"), { certificates: [record(), record()] });
  inventory.replace(file("/b.pem"), { certificates: [record()] });
  inventory.replace(secret("s1"), { certificates: [record()] });
  t.same(counts(), { file: 3, secret: 1 });
  inventory.replace(file("/a.pem"), { certificates: [record()] });
  t.same(counts(), { file: 2, secret: 1 }, "a replace counts the new certificates, not both");
  inventory.setStale(secret("s1"), true);
  t.same(counts(), { file: 2, secret: 1 }, "a stale mark keeps the certificates");
  inventory.replace(file("/b.pem"), { certificates: [], error: { reason: "not_found", message: "gone" } });
  inventory.remove(file("/a.pem"));
  t.same(counts(), { file: 0, secret: 1 }, "a source that holds a location without certificates counts 0");
  t.equal(inventory.prune("secret", () => false), 1);
  t.same(counts(), { file: 0 }, "a source with no location left is gone");
  t.equal(inventory.remove(file("/b.pem")), true);
  t.equal(inventory.remove(file("/b.pem")), false);
  t.same(counts(), {});
  t.equal(inventory.certificateCount(), 0);
});
