import t, { type Test } from "tap";
import { Health } from "../src/health.js";
import { Inventory } from "../src/inventory.js";
import { createLogger } from "../src/log.js";
import { buildServer } from "../src/server.js";
import { record } from "./helpers/records.js";

async function listening(t: Test) {
  const inventory = new Inventory();
  const health = new Health(inventory);
  const server = buildServer({ inventory, health, log: createLogger("silent") });
  const address = await server.listen({ host: "127.0.0.1", port: 0 });
  t.teardown(() => server.close());
  return { inventory, health, base: address };
}

t.test("/metrics answers the Prometheus text format over a real socket", async (t) => {
  const { inventory, base } = await listening(t);
  inventory.replace({ source: "file", namespace: "", name: "/a.pem", key: "" }, { certificates: [record({ subjectCN: "served.test" })] });
  const res = await fetch(`${base}/metrics`);
  t.equal(res.status, 200);
  t.equal(res.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  const body = await res.text();
  t.match(body, /cert_expires_in_days\{[^}]*subject_cn="served.test"[^}]*\} \d/);
  t.notMatch(body, "# EOF");
});

t.test("/metrics answers OpenMetrics when the Accept header asks for it", async (t) => {
  const { base } = await listening(t);
  const res = await fetch(`${base}/metrics`, { headers: { accept: "application/openmetrics-text; version=1.0.0" } });
  t.equal(res.headers.get("content-type"), "application/openmetrics-text; version=1.0.0; charset=utf-8");
  t.ok((await res.text()).endsWith("# EOF\n"));
});

t.test("/healthz is up at once; /readyz waits for every source's first scan", async (t) => {
  const { health, base } = await listening(t);
  health.register("file");
  health.register("kubeconfig");
  t.equal((await fetch(`${base}/healthz`)).status, 200);
  let ready = await fetch(`${base}/readyz`);
  t.equal(ready.status, 503);
  t.match(await ready.text(), "file, kubeconfig");
  health.scanSucceeded("file", 0.1);
  ready = await fetch(`${base}/readyz`);
  t.equal(ready.status, 503);
  t.match(await ready.text(), "kubeconfig");
  health.scanFailed("kubeconfig", 0.1);
  t.equal((await fetch(`${base}/readyz`)).status, 503, "a failed first scan is not ready");
  health.scanSucceeded("kubeconfig", 0.1);
  t.equal((await fetch(`${base}/readyz`)).status, 200);
});

t.test("/ lists certificates soonest first, coloured by state, with errors, all escaped", async (t) => {
  const { inventory, base } = await listening(t);
  inventory.replace({ source: "file", namespace: "", name: "/ok.pem", key: "" }, { certificates: [record({ subjectCN: "healthy.test", daysLeft: 300 })] });
  inventory.replace({ source: "file", namespace: "", name: "/old.pem", key: "" }, { certificates: [record({ subjectCN: "<script>alert(1)</script>", daysLeft: -2 })] });
  inventory.replace({ source: "file", namespace: "", name: "/soon.pem", key: "" }, { certificates: [record({ subjectCN: "soon.test", daysLeft: 3 })] });
  inventory.replace({ source: "file", namespace: "", name: "/warn.pem", key: "" }, { certificates: [record({ subjectCN: "warn.test", daysLeft: 20 })] });
  inventory.replace({ source: "file", namespace: "", name: "/bad.pem", key: "" }, { certificates: [], error: { reason: "not_pem_or_der", message: "x" } });
  const res = await fetch(`${base}/`);
  t.equal(res.headers.get("content-type"), "text/html; charset=utf-8");
  const html = await res.text();
  t.notMatch(html, "<script>", "names are escaped");
  t.notMatch(html, /(src|href)="https?:/, "no external assets");
  const order = ["&lt;script&gt;", "soon.test", "warn.test", "healthy.test"].map((name) => html.indexOf(name));
  t.same([...order].sort((a, b) => a - b), order, "sorted by days left");
  t.ok(order.every((i) => i > 0));
  t.match(html, /<tr class="expired">[^\n]*&lt;script&gt;/);
  t.match(html, /<tr class="critical">[^\n]*soon\.test/);
  t.match(html, /<tr class="warning">[^\n]*warn\.test/);
  t.match(html, /<tr class="ok">[^\n]*healthy\.test/);
  t.match(html, /<tr class="error">[^\n]*\/bad\.pem[^\n]*not_pem_or_der/);
});

t.test("concurrent scrapes all get a complete body", async (t) => {
  const { inventory, base } = await listening(t);
  for (let i = 0; i < 3000; i++) inventory.replace({ source: "file", namespace: "", name: `/c${i}.pem`, key: "" }, { certificates: [record()] });
  const bodies = await Promise.all(Array.from({ length: 8 }, () => fetch(`${base}/metrics`).then((r) => r.text())));
  for (const body of bodies) t.equal(body.split("\n").filter((l) => l.startsWith("cert_info{")).length, 3000);
});

t.test("unknown paths are 404", async (t) => {
  const { base } = await listening(t);
  t.equal((await fetch(`${base}/nope`)).status, 404);
});
