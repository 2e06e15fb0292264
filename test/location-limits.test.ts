/**
 * Per-location limits, enforced where every source's results pass (SourceContext.publish): one
 * object may cost its own location a read error, and nothing else.
 */
import t from "tap";
import { ParseCache } from "../src/certs/cache.js";
import { Health } from "../src/health.js";
import { Inventory } from "../src/inventory.js";
import { createLogger } from "../src/log.js";
import { SourceContext } from "../src/sources/source.js";
import { record } from "./helpers/records.js";

function context(limits: { maxCertificatesPerLocation: number; maxBytesPerLocation: number }) {
  const inventory = new Inventory();
  const ctx = new SourceContext(inventory, new ParseCache(10), new Health(inventory), createLogger("silent"), { limits: { ...limits, pkcs12MaxIterations: 1000 } });
  return { inventory, ctx };
}

const at = (name: string) => ({ source: "endpoint" as const, namespace: "", name, key: "" });

t.test("more certificates than maxCertificatesPerLocation is too_many_certificates, for that location only", async (t) => {
  const { inventory, ctx } = context({ maxCertificatesPerLocation: 3, maxBytesPerLocation: 1e9 });
  // An endpoint's chain is parsed certificate by certificate, so the limit must hold on the whole.
  ctx.publish(at("big:443"), [1, 2, 3, 4].map((i) => record({ subjectCN: `c${i}` })));
  ctx.publish(at("small:443"), [record({ subjectCN: "ok" })]);
  t.same(inventory.get(at("big:443"))?.error?.reason, "too_many_certificates");
  t.same(inventory.get(at("big:443"))?.certificates, []);
  t.equal(inventory.get(at("small:443"))?.certificates.length, 1);
  ctx.publish(at("big:443"), [1, 2, 3].map((i) => record({ subjectCN: `c${i}` })));
  t.equal(inventory.get(at("big:443"))?.certificates.length, 3, "at the limit it is exported");
});

t.test("certificate facts over maxBytesPerLocation is too_large", async (t) => {
  const { inventory, ctx } = context({ maxCertificatesPerLocation: 100, maxBytesPerLocation: 2000 });
  ctx.publish(at("wide:443"), [record({ subjectCN: "x".repeat(1500), sans: ["DNS:" + "y".repeat(600)] })]);
  t.equal(inventory.get(at("wide:443"))?.error?.reason, "too_large");
  t.match(inventory.get(at("wide:443"))?.error?.message, /over limits\.maxBytesPerLocation \(2000\)/);
  ctx.publish(at("narrow:443"), [record({ subjectCN: "x".repeat(100) })]);
  t.equal(inventory.get(at("narrow:443"))?.error, undefined);
});
