import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { get as httpGet, type IncomingHttpHeaders } from "node:http";
import { connect, type AddressInfo } from "node:net";
import { setTimeout as delay, setImmediate as nextTurn } from "node:timers/promises";
import { gunzipSync } from "node:zlib";
import t, { type Test } from "tap";
import { Exporter } from "../src/app.js";
import type { CertRecord } from "../src/certs/record.js";
import { validateConfig } from "../src/config.js";
import { Health } from "../src/health.js";
import { Inventory } from "../src/inventory.js";
import { createLogger } from "../src/log.js";
import { acceptsGzip, MetricsRenderer } from "../src/metrics.js";
import { NEVER_MS } from "../src/request-deadline.js";
import { ScrapeGate, ScrapeRefusedError } from "../src/scrape-gate.js";
import { buildServer, REQUEST_TIMEOUT_MS, scrapeDeadlineSeconds, type HttpLimits } from "../src/server.js";
import { makeCert } from "../scripts/certgen.js";
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
  return { inventory, health, server, base: address, port: (server.server.address() as AddressInfo).port };
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

/** A certificate that counts how often a render reads its notAfter: once per full render of the default families. */
function countedCertificate(plain: CertRecord = record(), counter = { reads: 0 }): { certificate: CertRecord; reads: () => number } {
  const certificate = Object.defineProperty({ ...plain }, "notAfter", {
    enumerable: true,
    get: () => {
      counter.reads++;
      return plain.notAfter;
    },
  });
  return { certificate, reads: () => counter.reads };
}

/** What Prometheus 2.x sends in Accept, with Accept-Encoding: gzip. */
const PROMETHEUS_ACCEPT = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/** A GET with node:http, which (unlike fetch) neither asks for an encoding nor undoes one by itself. */
function rawGet(base: string, path: string, headers: Record<string, string> = {}, method = "GET"): Promise<{ status: number; headers: IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const request = httpGet(`${base}${path}`, { headers, method, timeout: 30_000 }, (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("end", () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks) }));
      response.on("error", reject);
    });
    request.on("timeout", () => request.destroy(new Error("no answer within 30 s")));
    request.on("error", reject);
  });
}

/**
 * The certificate series of an exposition. The default families are the same in two scrapes a moment
 * apart; only the exporter's own metrics differ.
 */
function certificateSeries(exposition: string): string[] {
  return exposition.split("\n").filter((line) => /^(# (HELP|TYPE) )?cert_/.test(line) && !line.includes("cert_expiry_exporter_"));
}

t.test("a silent client is answered 408 and cut at the request deadline, by our timer, not Node's interval", async (t) => {
  const { server, port } = await listening(t);
  const node = server.server as typeof server.server & { connectionsCheckingInterval: number };
  t.equal(node.headersTimeout, 0, "Node's check is off: it would wake an idle exporter every interval");
  t.equal(node.requestTimeout, 0);
  t.equal(node.connectionsCheckingInterval, NEVER_MS);
  const opened = performance.now();
  const socket = connect({ host: "127.0.0.1", port });
  socket.on("error", () => {});
  const answer = (await readToEnd(socket)).toString("latin1");
  const ms = performance.now() - opened;
  t.match(answer, /^HTTP\/1\.1 408 Request Timeout\r\n/);
  t.ok(ms >= REQUEST_TIMEOUT_MS * 0.9, `cut after ${Math.round(ms)} ms, at the deadline (${REQUEST_TIMEOUT_MS} ms)`);
});

t.test("/metrics answers the Prometheus text format over a real socket", async (t) => {
  const { inventory, base } = await listening(t);
  inventory.replace({ source: "file", namespace: "", name: "/a.pem", key: "" }, { certificates: [record({ subjectCN: "served.test" })] });
  const res = await fetch(`${base}/metrics`);
  t.equal(res.status, 200);
  t.equal(res.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  const body = await res.text();
  t.match(body, /cert_not_after_timestamp_seconds\{[^}]*subject_cn="served.test"[^}]*\} \d/);
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
  // A source a reload turned off before its first scan no longer holds readiness, nor keeps its series.
  health.register("secret");
  t.equal((await fetch(`${base}/readyz`)).status, 503);
  health.unregister("secret");
  t.equal((await fetch(`${base}/readyz`)).status, 200);
  t.notMatch((await health.prometheus.metrics()), 'source="secret"');
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
  t.equal(reads(), 100, "only the GET read the certificates: of the default families one reads notAfter, once each");
});

t.test("/metrics is gzipped for a scraper that accepts it, and gunzips to the same exposition", async (t) => {
  const { inventory, base } = await listening(t);
  for (let i = 0; i < 500; i++) {
    inventory.replace({ source: "secret", namespace: `ns-${i % 7}`, name: `tls-${i}`, key: "tls.crt" }, { certificates: [record({ subjectCN: `host-${i}.test`, serial: i.toString(16), daysLeft: i - 30 })] });
  }
  const compressed = await rawGet(base, "/metrics", { accept: PROMETHEUS_ACCEPT, "accept-encoding": "gzip" });
  const plain = await rawGet(base, "/metrics", { accept: PROMETHEUS_ACCEPT });
  t.equal(compressed.status, 200);
  t.equal(compressed.headers["content-encoding"], "gzip");
  t.equal(compressed.headers.vary, "accept-encoding");
  t.equal(compressed.headers["content-type"], "application/openmetrics-text; version=1.0.0; charset=utf-8");
  t.equal(plain.headers["content-encoding"], undefined, "no Accept-Encoding, no encoding");
  t.equal(plain.headers.vary, "accept-encoding", "a cache must tell the two apart");
  const gunzipped = gunzipSync(compressed.body).toString("utf8");
  t.ok(gunzipped.endsWith("# EOF\n"), "the whole exposition, to its end");
  const series = certificateSeries(gunzipped);
  t.equal(series.filter((line) => line.startsWith("cert_info{")).length, 500);
  t.same(series, certificateSeries(plain.body.toString("utf8")));
  t.ok(compressed.body.length * 5 < plain.body.length, `${compressed.body.length} bytes instead of ${plain.body.length}`);
});

t.test("Accept-Encoding: gzip when named or covered by *, unless its q is 0", async (t) => {
  const cases: [string | undefined, boolean][] = [
    [undefined, false],
    ["", false],
    ["gzip", true],
    ["GZIP", true],
    ["x-gzip", true],
    ["deflate, gzip;q=0.5", true],
    ["gzip;q=0", false],
    ["gzip; q=0.0", false],
    ["gzip;q=0, *", false],
    ["*", true],
    ["*;q=0", false],
    ["identity", false],
    ["br, deflate", false],
    ["gzipx", false],
  ];
  for (const [header, expected] of cases) t.equal(acceptsGzip(header), expected, JSON.stringify(header));
  const { base } = await listening(t);
  for (const [header, expected] of [["gzip;q=0", undefined], ["deflate, gzip;q=0.5", "gzip"]] as const) {
    const res = await rawGet(base, "/metrics", { "accept-encoding": header });
    t.equal(res.headers["content-encoding"], expected, `over HTTP: ${header}`);
  }
});

t.test("curl --compressed gets gzip and reads it", async (t) => {
  const { inventory, base } = await listening(t);
  fill(inventory, 200);
  const curl = spawn("curl", ["-sS", "--max-time", "30", "--compressed", "--include", `${base}/metrics`], { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  let errors = "";
  curl.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  curl.stderr.on("data", (chunk: Buffer) => (errors += chunk.toString()));
  const [code] = (await once(curl, "close")) as [number];
  t.equal(code, 0, errors);
  const end = output.indexOf("\r\n\r\n");
  const headers = output.slice(0, end);
  const body = output.slice(end + 4);
  t.match(headers.toLowerCase(), "content-encoding: gzip");
  t.same(certificateSeries(body), certificateSeries((await rawGet(base, "/metrics")).body.toString("utf8")), "decoded, the same series");
});

t.test("HEAD /metrics with Accept-Encoding: gzip says so, and still renders nothing", async (t) => {
  const { inventory, base } = await listening(t);
  const { certificate, reads } = countedCertificate();
  fill(inventory, 100, certificate);
  const head = await rawGet(base, "/metrics", { "accept-encoding": "gzip" }, "HEAD");
  t.equal(head.status, 200);
  t.equal(head.headers["content-encoding"], "gzip");
  t.equal(head.headers.vary, "accept-encoding");
  t.equal(head.body.length, 0);
  t.equal(reads(), 0);
});

t.test("a gzip scraper that leaves stops the render too, and frees its slot only once stopped", async (t) => {
  const { inventory, port, base } = await listening(t, { maxConcurrentScrapes: 1, maxQueuedScrapes: 1 });
  // Random names, so the compressed body (about 30 MiB) still outgrows the socket buffers many times.
  const counter = { reads: 0 };
  for (let i = 0; i < LARGE; i++) {
    const { certificate } = countedCertificate(record({ subjectCN: randomBytes(200).toString("base64") }), counter);
    inventory.replace({ source: "file", namespace: "", name: `/c${i}.pem`, key: "" }, { certificates: [certificate] });
  }
  const leaving = rawRequest(port, { headers: { "accept-encoding": "gzip" } });
  t.match((await firstBytesThenStall(leaving)).toString("latin1"), /content-encoding: gzip/i);
  leaving.destroy();
  empty(inventory);
  const next = await fetch(`${base}/metrics`);
  t.equal(next.status, 200);
  await next.text();
  const readsWhenFreed = counter.reads;
  t.ok(readsWhenFreed < LARGE, `the render stopped within its first family: ${readsWhenFreed} of the ${3 * LARGE} reads of a full render`);
  for (let i = 0; i < 10; i++) await nextTurn();
  t.equal(counter.reads, readsWhenFreed, "and went no further afterwards");
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

t.test("once the first scans are done, the gzip pieces are rendered ahead of the first scrape", async (t) => {
  const inventory = new Inventory();
  const { certificate, reads } = countedCertificate();
  fill(inventory, 2000, certificate);
  let firstScansDone!: () => void;
  const firstScans = new Promise<void>((resolve) => (firstScansDone = resolve));
  const server = buildServer({ inventory, health: new Health(inventory), log: createLogger("silent"), http: DEFAULT_HTTP, firstScans });
  const base = await server.listen({ host: "127.0.0.1", port: 0 });
  t.teardown(() => server.close());
  await delay(100);
  t.equal(reads(), 0, "nothing rendered while the sources are still scanning");
  firstScansDone();
  // Of the default families one reads notAfter: a full render reads it once per location.
  for (let i = 0; i < 200 && reads() < 2000; i++) await delay(50);
  t.equal(reads(), 2000, "every line rendered once the first scans were done");
  const scrape = await rawGet(base, "/metrics", { accept: PROMETHEUS_ACCEPT, "accept-encoding": "gzip" });
  t.equal(reads(), 2000, "the first scrape rendered nothing: every piece was kept");
  t.equal(certificateSeries(gunzipSync(scrape.body).toString("utf8")).filter((line) => line.startsWith("cert_info{")).length, 2000);
});

t.test("Exporter.serve renders /metrics ahead once every source has scanned, not before", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "cee-warm-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, "one.crt"), (await makeCert({ cn: "warm.test" })).pem);
  const calls: { pending: string[]; certificates: number }[] = [];
  const original = MetricsRenderer.prototype.warm;
  const started: { exporter?: Exporter<Health> } = {};
  MetricsRenderer.prototype.warm = function (this: MetricsRenderer, signal: AbortSignal) {
    calls.push({ pending: started.exporter?.health.pendingSources() ?? ["?"], certificates: started.exporter?.inventory.size ?? -1 });
    return original.call(this, signal);
  };
  t.teardown(() => {
    MetricsRenderer.prototype.warm = original;
  });
  const exporter = await Exporter.create(validateConfig({ listen: { address: "127.0.0.1", port: 0 }, sources: { files: [{ paths: [join(dir, "*.crt")] }] } }), createLogger("silent"));
  started.exporter = exporter;
  t.teardown(() => exporter.close());
  await exporter.serve();
  for (let i = 0; i < 200 && calls.length === 0; i++) await delay(50);
  t.same(calls, [{ pending: [], certificates: 1 }], "once, after the file source's first scan, with its certificate");
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
