import { once } from "node:events";
import type { AddressInfo } from "node:net";
import { setTimeout as delay, setImmediate as nextTurn } from "node:timers/promises";
import t, { type Test } from "tap";
import { Exporter } from "../src/app.js";
import type { CertRecord } from "../src/certs/record.js";
import { validateConfig } from "../src/config.js";
import { Health } from "../src/health.js";
import { Inventory } from "../src/inventory.js";
import { createLogger } from "../src/log.js";
import { ScrapeGate, ScrapeRefusedError } from "../src/scrape-gate.js";
import { buildServer, scrapeDeadlineSeconds, type HttpLimits } from "../src/server.js";
import { firstBytesThenStall, rawRequest, readToEnd } from "./helpers/raw-http.js";
import { record } from "./helpers/records.js";

const DEFAULT_HTTP = validateConfig({}).http;

async function listening(t: Test, http: Partial<HttpLimits> = {}) {
  const inventory = new Inventory();
  const health = new Health(inventory);
  const server = buildServer({ inventory, health, log: createLogger("silent"), http: { ...DEFAULT_HTTP, ...http } });
  const address = await server.listen({ host: "127.0.0.1", port: 0 });
  t.teardown(() => {
    // Stalled test clients would otherwise hold close() until their scrape deadline.
    server.server.closeAllConnections();
    return server.close();
  });
  return { inventory, health, base: address, port: (server.server.address() as AddressInfo).port };
}

/**
 * Locations enough that a body (about 20 MiB) is several times what loopback socket buffers hold
 * (about 4 MiB), so a client that stops reading stops the render too.
 */
const LARGE = 20_000;

function fill(inventory: Inventory, count: number, certificate: CertRecord = record()): void {
  for (let i = 0; i < count; i++) inventory.replace({ source: "file", namespace: "", name: `/c${i}.pem`, key: "" }, { certificates: [certificate] });
}

function empty(inventory: Inventory): void {
  for (const { location } of [...inventory.entries()]) inventory.remove(location);
}

/** A certificate that counts how often a render reads its notAfter: three times per full render. */
function countedCertificate(): { certificate: CertRecord; reads: () => number } {
  let reads = 0;
  const plain = record();
  const certificate = Object.defineProperty({ ...plain }, "notAfter", {
    enumerable: true,
    get: () => {
      reads++;
      return plain.notAfter;
    },
  });
  return { certificate, reads: () => reads };
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
  fill(inventory, 3000);
  const bodies = await Promise.all(Array.from({ length: 8 }, () => fetch(`${base}/metrics`).then((r) => r.text())));
  for (const body of bodies) t.equal(body.split("\n").filter((l) => l.startsWith("cert_info{")).length, 3000);
});

t.test("unknown paths are 404", async (t) => {
  const { base } = await listening(t);
  t.equal((await fetch(`${base}/nope`)).status, 404);
});

t.test("HEAD /metrics answers the headers without rendering anything", async (t) => {
  const { inventory, base } = await listening(t);
  const { certificate, reads } = countedCertificate();
  fill(inventory, 100, certificate);
  const head = await fetch(`${base}/metrics`, { method: "HEAD", headers: { accept: "application/openmetrics-text" } });
  t.equal(head.status, 200);
  t.equal(head.headers.get("content-type"), "application/openmetrics-text; version=1.0.0; charset=utf-8");
  t.equal(await head.text(), "");
  await (await fetch(`${base}/metrics`)).text();
  t.equal(reads(), 3 * 100, "only the GET read the certificates: three families read each notAfter once");
});

t.test("every answer says nosniff; the HTML page carries a strict Content-Security-Policy", async (t) => {
  const { base } = await listening(t);
  for (const [method, path] of [["GET", "/metrics"], ["HEAD", "/metrics"], ["GET", "/healthz"], ["GET", "/readyz"], ["GET", "/"], ["GET", "/nope"]] as const) {
    const res = await fetch(`${base}${path}`, { method });
    await res.arrayBuffer();
    t.equal(res.headers.get("x-content-type-options"), "nosniff", `${method} ${path}`);
    const csp = path === "/" ? "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'" : null;
    t.equal(res.headers.get("content-security-policy"), csp, `${method} ${path}`);
  }
});

t.test("a scrape beyond the render slots and the line is answered 503 with Retry-After", async (t) => {
  const { inventory, port, base } = await listening(t, { maxConcurrentScrapes: 1, maxQueuedScrapes: 0 });
  fill(inventory, LARGE);
  const stalled = rawRequest(port);
  t.teardown(() => stalled.destroy());
  t.match((await firstBytesThenStall(stalled)).toString("latin1"), /^HTTP\/1\.1 200 /, "the first scrape renders, and holds its slot while its client does not read");
  const refused = await fetch(`${base}/metrics`);
  t.equal(refused.status, 503);
  t.equal(refused.headers.get("retry-after"), "5");
  t.equal(refused.headers.get("x-content-type-options"), "nosniff");
  t.match(await refused.text(), "too many scrapes at once: 1 rendering, 0 waiting");
});

t.test("a scrape still waiting in line at its deadline is answered 503", async (t) => {
  const { inventory, port, base } = await listening(t, { maxConcurrentScrapes: 1, maxQueuedScrapes: 1 });
  fill(inventory, LARGE);
  const stalled = rawRequest(port);
  t.teardown(() => stalled.destroy());
  await firstBytesThenStall(stalled);
  const late = await fetch(`${base}/metrics`, { headers: { "x-prometheus-scrape-timeout-seconds": "0.5" } });
  t.equal(late.status, 503);
  t.equal(late.headers.get("retry-after"), "5");
  t.match(await late.text(), "scrape deadline of 1 s passed");
});

t.test("a response still sending at its deadline is cut off, which frees its slot", async (t) => {
  const { inventory, port, base } = await listening(t, { maxConcurrentScrapes: 1, maxQueuedScrapes: 1 });
  fill(inventory, LARGE);
  const stalled = rawRequest(port, { headers: { "x-prometheus-scrape-timeout-seconds": "0.5" } });
  t.teardown(() => stalled.destroy());
  await firstBytesThenStall(stalled);
  empty(inventory);
  const next = await fetch(`${base}/metrics`);
  t.equal(next.status, 200, "the scrape waiting in line got the slot: the stalled one, which could never finish, was cut off");
  await next.text();
  const received = await readToEnd(stalled);
  t.notOk(received.toString("latin1").endsWith("\r\n0\r\n\r\n"), "the stalled client's body ends without its last chunk");
});

t.test("a render stops when its client leaves, and frees its slot only once stopped", async (t) => {
  const { inventory, port, base } = await listening(t, { maxConcurrentScrapes: 1, maxQueuedScrapes: 1 });
  const { certificate, reads } = countedCertificate();
  fill(inventory, LARGE, certificate);
  const leaving = rawRequest(port);
  await firstBytesThenStall(leaving);
  leaving.destroy();
  // The next scrape renders none of the counted certificates, and waits in line for the slot.
  empty(inventory);
  const next = await fetch(`${base}/metrics`);
  t.equal(next.status, 200);
  await next.text();
  const readsWhenFreed = reads();
  t.ok(readsWhenFreed < LARGE, `the render stopped within its first family: ${readsWhenFreed} of the ${3 * LARGE} reads of a full render`);
  for (let i = 0; i < 10; i++) await nextTurn();
  t.equal(reads(), readsWhenFreed, "and went no further afterwards");
});

t.test("a scrape's deadline is the scraper's timeout plus a margin, never beyond http.scrapeTimeout", async (t) => {
  t.equal(scrapeDeadlineSeconds("10", 60), 10.5);
  t.equal(scrapeDeadlineSeconds("59.8", 60), 60);
  t.equal(scrapeDeadlineSeconds(undefined, 60), 60);
  for (const ignored of ["", "0", "-3", "soon", "Infinity"]) t.equal(scrapeDeadlineSeconds(ignored, 60), 60, JSON.stringify(ignored));
  t.equal(scrapeDeadlineSeconds(["5", "7"], 60), 60, "a repeated header is ignored");
});

t.test("ScrapeGate: renders up to the limit, then a first-in-first-out line, then refusal", async (t) => {
  const gate = new ScrapeGate({ maxRunning: 1, maxWaiting: 2 });
  const signal = new AbortController().signal;
  const releaseFirst = await gate.acquire(signal);
  const admitted: string[] = [];
  const second = gate.acquire(signal).then((release) => (admitted.push("second"), release));
  const third = gate.acquire(signal).then((release) => (admitted.push("third"), release));
  await t.rejects(gate.acquire(signal), ScrapeRefusedError, "the line is full");
  releaseFirst();
  releaseFirst();
  const releaseSecond = await second;
  await nextTurn();
  t.same(admitted, ["second"], "a slot is freed once, however often its release is called");
  releaseSecond();
  (await third)();
  t.same(admitted, ["second", "third"]);
});

t.test("ScrapeGate: a waiter whose signal aborts leaves the line at once", async (t) => {
  const gate = new ScrapeGate({ maxRunning: 1, maxWaiting: 1 });
  const release = await gate.acquire(new AbortController().signal);
  const leaving = new AbortController();
  const left = gate.acquire(leaving.signal);
  leaving.abort(new Error("client left"));
  await t.rejects(left, { message: "client left" });
  const next = gate.acquire(new AbortController().signal);
  release();
  t.type(await next, "function", "its place in line, and then the slot, went to the next");
});

t.test("ScrapeGate: close refuses everyone waiting and everyone later", async (t) => {
  const gate = new ScrapeGate({ maxRunning: 1, maxWaiting: 4 });
  const signal = new AbortController().signal;
  const release = await gate.acquire(signal);
  const waiting = gate.acquire(signal);
  gate.close();
  await t.rejects(waiting, ScrapeRefusedError);
  await t.rejects(gate.acquire(signal), ScrapeRefusedError);
  release();
});

t.test("Exporter.close cuts stalled and idle connections by its deadline", async (t) => {
  const config = validateConfig({ listen: { address: "127.0.0.1", port: 0 }, http: { shutdownTimeout: 1 } });
  const exporter = await Exporter.create(config, createLogger("silent"));
  await exporter.serve();
  fill(exporter.inventory, LARGE);
  const stalled = rawRequest(exporter.port);
  t.teardown(() => stalled.destroy());
  await firstBytesThenStall(stalled);
  const idle = rawRequest(exporter.port, { path: "/healthz" });
  await once(idle, "data");
  const idleClosed = once(idle, "close");
  const outcome = await Promise.race([exporter.close().then(() => "closed"), delay(10_000, "still open")]);
  t.equal(outcome, "closed", "close() returned (its deadline is 1 s), though a client never read its scrape");
  await idleClosed;
});
