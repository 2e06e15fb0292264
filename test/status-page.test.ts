import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import type { Readable, Writable } from "node:stream";
import t, { type Test } from "tap";
import type { CertRecord } from "../src/certs/record.js";
import { READ_ERROR_REASONS } from "../src/errors.js";
import { Inventory } from "../src/inventory.js";
import type { Location } from "../src/model.js";
import { renderStatusPage } from "../src/status-page.js";
import { ROOT } from "./helpers/build.js";
import { record } from "./helpers/records.js";

const DAY = 86_400;
/** The page is rendered for this instant, so days left are exact. */
const NOW = 1_900_000_000;

function cert(subjectCN: string, daysLeft: number, overrides: Partial<CertRecord> = {}): CertRecord {
  return record({ subjectCN, notBefore: NOW - DAY, notAfter: NOW + Math.round(daysLeft * DAY), ...overrides });
}

const file = (name: string): Location => ({ source: "file", namespace: "", name, key: "" });
const secret = (namespace: string, name: string, key = "tls.crt"): Location => ({ source: "secret", namespace, name, key });

function render(inventory: Inventory, query: Record<string, unknown> = {}, rows = 10) {
  return renderStatusPage(inventory, { version: "test", query, rows, now: NOW });
}

/** A query string parsed as the server's framework does: a repeated name gives an array. */
function queryOf(search: string): Record<string, string | string[]> {
  const query: Record<string, string | string[]> = {};
  for (const [name, value] of new URLSearchParams(search)) {
    const previous = query[name];
    query[name] = previous === undefined ? value : [previous, value].flat();
  }
  return query;
}

interface TableRow {
  state: string;
  cells: string[];
}

/** The body rows of the certificates or read-errors table (one line each), or undefined when the table is absent. */
function tableRows(html: string, id: "certificates" | "read-errors"): TableRow[] | undefined {
  const start = html.indexOf(`<table class="rows" id="${id}">`);
  if (start < 0) return undefined;
  const table = html.slice(start, html.indexOf("</table>", start));
  return [...table.matchAll(/<tr class="([a-z_]+)">(.*)<\/tr>/g)].map((m) => ({
    state: m[1] as string,
    cells: [...(m[2] as string).matchAll(/<td[^>]*>(.*?)<\/td>/g)].map((c) => c[1] as string),
  }));
}

/** The query of a pager link ("next", "previous", "first", "last") of one table. */
function pagerLink(html: string, table: "certificate" | "read error", label: string): Record<string, string | string[]> | undefined {
  const nav = /<nav class="pager" aria-label="([^"]+) pages">(.*?)<\/nav>/g;
  for (const [, noun, links] of html.matchAll(nav)) {
    if (noun !== table) continue;
    const link = new RegExp(`<a href="\\?([^"#]*)#[a-z-]+"[^>]*>${label}</a>`).exec(links as string);
    return link ? queryOf((link[1] as string).replaceAll("&amp;", "&")) : undefined;
  }
  return undefined;
}

/** The count the summary table shows for a state, and the query its link leads to. */
function summaryCount(html: string, state: string): { count: number; query: Record<string, string | string[]> } {
  const row = new RegExp(`<tr class="${state}"><td>[^<]*</td><td>[^<]*</td><td class="num"><a href="\\?([^"]*)"[^>]*>([\\d,]+)</a></td></tr>`).exec(html);
  if (!row) throw new Error(`no summary row for ${state}`);
  return { count: Number((row[2] as string).replaceAll(",", "")), query: queryOf((row[1] as string).replaceAll("&amp;", "&")) };
}

/** A small PRNG, so the 100,000 expiries are the same on every run. */
function lcg(seed: number): () => number {
  let state = seed;
  return () => (state = (state * 48271) % 2147483647) / 2147483647;
}

t.test("shows exactly `rows` certificates out of 100,000, the soonest, and pages through them in order", async (t) => {
  const inventory = new Inventory();
  const random = lcg(7);
  const all: { cn: string; notAfter: number; order: number }[] = [];
  for (let l = 0; l < 10_000; l++) {
    const certificates = Array.from({ length: 10 }, (_, i) => {
      // Whole days, so many certificates share a notAfter and the tie order is exercised.
      const c = cert(`c${l}-${i}`, Math.floor(random() * 430) - 30);
      all.push({ cn: c.subjectCN, notAfter: c.notAfter, order: all.length });
      return c;
    });
    inventory.replace(secret(`ns-${l % 40}`, `s-${l}`), { certificates });
  }
  const expected = all.sort((a, b) => a.notAfter - b.notAfter || a.order - b.order).map((c) => c.cn);

  const first = render(inventory, {}, 200);
  t.equal(first.status, 200);
  const rows = tableRows(first.body, "certificates") ?? [];
  t.equal(rows.length, 200, "exactly `rows` rows");
  t.same(rows.map((r) => r.cells[2]), expected.slice(0, 200), "the soonest 200, soonest first");
  t.match(first.body, "1–200 of 100,000. Page 1 of 500.");
  t.ok(first.body.length < 200_000, `the page stays small: ${first.body.length} bytes`);

  let query = pagerLink(first.body, "certificate", "next");
  for (let page = 2; page <= 3; page++) {
    t.same(query, { page: String(page) });
    const next = render(inventory, query, 200).body;
    t.same(tableRows(next, "certificates")?.map((r) => r.cells[2]), expected.slice((page - 1) * 200, page * 200), `page ${page} continues where the last stopped`);
    query = pagerLink(next, "certificate", "next");
  }
  const last = render(inventory, pagerLink(first.body, "certificate", "last"), 200).body;
  t.same(tableRows(last, "certificates")?.map((r) => r.cells[2]), expected.slice(99_800), "the last page holds the latest");
  t.equal(pagerLink(last, "certificate", "next"), undefined, "no next page after the last");
  t.same(pagerLink(last, "certificate", "previous"), { page: "499" });
});

t.test("paging keeps the filters, and certificates and errors page independently", async (t) => {
  const inventory = new Inventory();
  for (let i = 0; i < 25; i++) inventory.replace(file(`/etc/pki/f${String(i).padStart(2, "0")}.pem`), { certificates: [cert(`f${i}`, 100 + i)] });
  for (let i = 0; i < 5; i++) inventory.replace(secret("team-a", `s${i}`), { certificates: [cert(`s${i}`, 50 + i)] });
  for (let i = 0; i < 23; i++) inventory.replace(file(`/etc/pki/bad${String(i).padStart(2, "0")}.pem`), { certificates: [], error: { reason: "not_pem_or_der", message: "x" } });

  const page2 = render(inventory, { source: "file", page: "2" });
  t.same(tableRows(page2.body, "certificates")?.map((r) => r.cells[2]), ["f10", "f11", "f12", "f13", "f14", "f15", "f16", "f17", "f18", "f19"]);
  t.match(page2.body, "11–20 of 25. Page 2 of 3.");
  t.same(pagerLink(page2.body, "certificate", "next"), { source: "file", page: "3" });
  t.same(pagerLink(page2.body, "certificate", "previous"), { source: "file" }, "page 1 is the default, left out of the link");
  t.same(pagerLink(page2.body, "read error", "next"), { source: "file", page: "2", errors_page: "2" }, "the errors' pager keeps the certificates' page");
  const errorsPage2 = render(inventory, pagerLink(page2.body, "read error", "next")).body;
  const errorsPage3 = render(inventory, pagerLink(errorsPage2, "read error", "next")).body;
  t.equal(tableRows(errorsPage3, "read-errors")?.length, 3, "23 errors: the third page holds 3");
  t.equal(tableRows(errorsPage3, "certificates")?.length, 10, "the certificates stay on their page");
  t.match(errorsPage3, /<a href="\?source=file&amp;page=2&amp;errors_page=2#read-errors" rel="prev">previous<\/a>/, "links are escaped and jump to their table");

  const pastTheEnd = render(inventory, { page: "9" });
  t.equal(pastTheEnd.status, 200);
  t.same(tableRows(pastTheEnd.body, "certificates"), []);
  t.match(pastTheEnd.body, "Page 9 is past the last page, 3.");
  t.same(pagerLink(pastTheEnd.body, "certificate", "previous"), { page: "3" }, "previous leads back to the last page");
  t.match(render(new Inventory()).body, "No certificates.");
});

t.test("filters by state, source and namespace through a plain GET form; counts follow source and namespace", async (t) => {
  const inventory = new Inventory();
  inventory.replace(file("/old.pem"), { certificates: [cert("old", -2)] });
  inventory.replace(file("/soon.pem"), { certificates: [cert("soon", 3)] });
  inventory.replace(secret("team-a", "web"), { certificates: [cert("web-a", 20), cert("ca-a", 300)] });
  inventory.replace(secret("team-b", "web"), { certificates: [cert("web-b", 5)] });
  inventory.replace(secret("team-b", "broken"), { certificates: [], error: { reason: "bad_base64", message: "x" } });
  inventory.replace(file("/bad.pem"), { certificates: [], error: { reason: "not_pem_or_der", message: "x" } });

  const everything = render(inventory).body;
  t.same(tableRows(everything, "certificates")?.map((r) => `${r.state}:${r.cells[2]}`), ["expired:old", "critical:soon", "critical:web-b", "warning:web-a", "ok:ca-a"]);
  t.equal(tableRows(everything, "read-errors")?.length, 2);
  t.match(everything, /<form class="filters" method="get">/, "a plain GET form, no script");
  t.match(everything, /<select name="state"><option value="" selected>any<\/option>/);
  t.match(everything, /<button type="submit">/);
  t.same(summaryCount(everything, "critical"), { count: 2, query: { state: "critical" } });
  t.same(summaryCount(everything, "error"), { count: 2, query: { state: "error" } });

  const critical = render(inventory, { state: "critical" }).body;
  t.same(tableRows(critical, "certificates")?.map((r) => r.cells[2]), ["soon", "web-b"]);
  t.equal(tableRows(critical, "read-errors"), undefined, "a certificate state hides the errors");
  t.match(critical, '<option value="critical" selected>critical</option>');

  const errorsOnly = render(inventory, { state: "error" }).body;
  t.equal(tableRows(errorsOnly, "certificates"), undefined, "state=error shows the errors alone");
  t.same(tableRows(errorsOnly, "read-errors")?.map((r) => r.cells[2]), ["not_pem_or_der", "bad_base64"], "sorted by location: file before secret");

  const teamB = render(inventory, { source: "secret", namespace: "team-b" }).body;
  t.same(tableRows(teamB, "certificates")?.map((r) => r.cells[2]), ["web-b"]);
  t.same(tableRows(teamB, "read-errors")?.map((r) => r.cells[1]), ["team-b / broken / tls.crt"]);
  t.same(summaryCount(teamB, "critical"), { count: 1, query: { state: "critical", source: "secret", namespace: "team-b" } }, "counts and their links keep source and namespace");
  t.equal(summaryCount(teamB, "ok").count, 0);
  t.match(teamB, '<input name="namespace" value="team-b"');
  t.match(teamB, '<option value="secret" selected>secret</option>');

  const combined = render(inventory, { state: "ok", namespace: "team-a", page: "1" }).body;
  t.same(tableRows(combined, "certificates")?.map((r) => r.cells[2]), ["ca-a"]);
});

t.test("refuses malformed values of known parameters with 400, never echoing them; ignores unknown ones", async (t) => {
  const inventory = new Inventory();
  inventory.replace(file("/a.pem"), { certificates: [cert("a", 10)] });
  const refused: [Record<string, unknown>, string][] = [
    [{ state: "bogus" }, '"state" must be one of: expired, not_yet_valid, critical, warning, ok, error'],
    [{ state: "<script>alert(1)</script>" }, '"state" is longer than 13 characters'],
    [{ state: ["ok", "ok"] }, '"state" may be given once'],
    [{ source: "x".repeat(10_000) }, '"source" is longer than 10 characters'],
    [{ source: "File" }, '"source" must be one of'],
    [{ namespace: "Team_A" }, '"namespace" must be a Kubernetes namespace name'],
    [{ namespace: "-a" }, '"namespace" must be a Kubernetes namespace name'],
    [{ namespace: "a".repeat(64) }, '"namespace" is longer than 63 characters'],
    [{ page: "0" }, '"page" must be a whole number from 1 to 999999'],
    [{ page: "-1" }, '"page" must be a whole number'],
    [{ page: "1e3" }, '"page" must be a whole number'],
    [{ page: " 2" }, '"page" must be a whole number'],
    [{ page: "1000000" }, '"page" is longer than 6 characters'],
    [{ errors_page: "two" }, '"errors_page" must be a whole number'],
  ];
  for (const [query, message] of refused) {
    const page = render(inventory, query);
    t.equal(page.status, 400, JSON.stringify(query).slice(0, 80));
    t.match(page.body, `The query parameter ${message.replaceAll('"', "&quot;")}`);
    t.notMatch(page.body, "<script>");
    t.notMatch(page.body, "xxxxxxxxxx", "the value is never echoed");
  }
  for (const query of [{ utm_source: "mail", "": "x", other: ["a", "b"] }, { state: "", source: "", namespace: "", page: "" }]) {
    const page = render(inventory, query);
    t.equal(page.status, 200, `${JSON.stringify(query)} is accepted`);
    t.equal(tableRows(page.body, "certificates")?.length, 1);
  }
});

t.test("escapes hostile names: markup, quotes, control and bidi characters, 10 kB names", async (t) => {
  const inventory = new Inventory();
  const huge = "x".repeat(10_240);
  inventory.replace(file('/srv/<img src=x onerror="alert(1)">.pem'), {
    certificates: [
      cert('<script>alert("x")</script>', 1, { issuerCN: "</td></tr></table><b>issuer</b>" }),
      cert("it's \"quoted\" & <b>bold</b>", 2),
      cert("line\nbreak\r\u2028and\ttab", 3),
      cert("\u202egnp.exe", 4),
      cert(huge, 5),
      cert(`${"y".repeat(255)}😀tail`, 6),
    ],
  });
  const { status, body } = render(inventory);
  t.equal(status, 200);
  t.notMatch(body, /<script|<img|<b>/i, "no markup from a name reaches the page");
  t.match(body, "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;");
  t.match(body, "&lt;/td&gt;&lt;/tr&gt;&lt;/table&gt;&lt;b&gt;issuer&lt;/b&gt;");
  t.match(body, "it&#39;s &quot;quoted&quot; &amp; &lt;b&gt;bold&lt;/b&gt;");
  t.match(body, "/srv/&lt;img src=x onerror=&quot;alert(1)&quot;&gt;.pem");
  const rows = tableRows(body, "certificates") ?? [];
  t.equal(rows.length, 6, "a newline in a name keeps its row on one line");
  t.equal(rows[2]?.cells[2], "line\\nbreak\\r\\u2028and\\ttab", "control characters are shown as escapes");
  t.equal(rows[3]?.cells[2], "\\u202egnp.exe", "a bidi override cannot reverse the text");
  t.equal(rows[4]?.cells[2], `${"x".repeat(256)}…<small> (10240 characters)</small>`, "a 10 kB name is cut, with its length");
  t.equal(rows[5]?.cells[2], `${"y".repeat(255)}…<small> (261 characters)</small>`, "a cut never splits a surrogate pair");
  t.ok(body.length < 20_000, `the page stays small: ${body.length} bytes`);
});

t.test("a certificate whose notBefore is ahead is not_yet_valid, unless it has already expired", async (t) => {
  const inventory = new Inventory();
  inventory.replace(file("/future.pem"), { certificates: [cert("future", 100, { notBefore: NOW + 2 * DAY })] });
  inventory.replace(file("/future-soon.pem"), { certificates: [cert("future-soon", 3, { notBefore: NOW + DAY })] });
  inventory.replace(file("/backwards.pem"), { certificates: [cert("backwards", -1, { notBefore: NOW + DAY })] });
  inventory.replace(file("/now.pem"), { certificates: [cert("valid-from-now", 100, { notBefore: NOW })] });
  const body = render(inventory).body;
  t.same(tableRows(body, "certificates")?.map((r) => `${r.state}:${r.cells[1]}:${r.cells[2]}`), [
    "expired:expired:backwards",
    "not_yet_valid:not yet valid:future-soon",
    "not_yet_valid:not yet valid:future",
    "ok:ok:valid-from-now",
  ]);
  t.equal(summaryCount(body, "not_yet_valid").count, 2);
  t.match(body, /<td>not yet valid<\/td><td>notBefore is still ahead<\/td>/, "the legend explains it");
  t.match(body, "tr.not_yet_valid td{background:", "it has its own colour");
  t.same(tableRows(render(inventory, { state: "not_yet_valid" }).body, "certificates")?.map((r) => r.cells[2]), ["future-soon", "future"]);
  t.match(tableRows(body, "certificates")?.[2]?.cells[6], new Date((NOW + 2 * DAY) * 1000).toISOString(), "notBefore is shown");
});

t.test("a last-known certificate of a location its source can no longer read is marked so", async (t) => {
  const inventory = new Inventory();
  const refused: Location = { source: "secret", namespace: "team-a", name: "web-tls", key: "tls.crt" };
  inventory.replace(refused, { certificates: [cert("kept", 5)] });
  inventory.replace(file("/current.pem"), { certificates: [cert("current", 6)] });
  inventory.setStale(refused, true);
  const marked = (html: string) => tableRows(html, "certificates")?.map((r) => `${r.cells[2]}:${r.cells[3]?.includes("(last known: access lost)")}`);
  t.same(marked(render(inventory).body), ["kept:true", "current:false"], "only the stale location is marked, and it keeps its place by expiry");
  inventory.setStale(refused, false);
  t.same(marked(render(inventory).body), ["kept:false", "current:false"], "current again: unmarked");
});

t.test("read errors show the reason and its fixed description, never the stored message", async (t) => {
  const inventory = new Inventory();
  const leak = "-----BEGIN PRIVATE KEY----- MIIEvQ <script>";
  inventory.replace(file("/etc/pki/garbage.pem"), { certificates: [], error: { reason: "not_pem_or_der", message: leak } });
  inventory.replace(secret("team-a", "p12", "keystore.p12"), { certificates: [], error: { reason: "wrong_passphrase", message: leak } });
  inventory.replace({ source: "endpoint", namespace: "", name: "db.internal:5432", key: "" }, {
    certificates: [cert("db.internal", 40)],
    probe: { success: false, chainVerified: false, verifyError: "", hostnameMatch: false, tlsVersion: "", cipher: "", durationSeconds: 5, reason: "client_cert_required", message: leak },
  });
  const body = render(inventory).body;
  t.notMatch(body, "PRIVATE KEY");
  t.notMatch(body, "MIIEvQ");
  const rows = tableRows(body, "read-errors") ?? [];
  t.same(
    rows.map((r) => r.cells),
    [
      ["endpoint", "db.internal:5432", "client_cert_required", READ_ERROR_REASONS.client_cert_required],
      ["file", "/etc/pki/garbage.pem", "not_pem_or_der", READ_ERROR_REASONS.not_pem_or_der],
      ["secret", "team-a / p12 / keystore.p12", "wrong_passphrase", READ_ERROR_REASONS.wrong_passphrase],
    ].map((cells) => cells.map((c) => c.replaceAll("'", "&#39;"))),
  );
  t.same(tableRows(body, "certificates")?.map((r) => r.cells[2]), ["db.internal"], "a failed probe's certificates stay listed");
  t.ok(rows.every((r) => r.state === "error"));
});

t.test("the page states its thresholds, when it was generated, and is self-contained and readable on a phone", async (t) => {
  const inventory = new Inventory();
  inventory.replace(secret("team-a", "own"), { certificates: [cert("own-thresholds", 30)], thresholds: { warningDays: 60, criticalDays: 14 } });
  inventory.replace(secret("team-a", "default"), { certificates: [cert("default-thresholds", 30)] });
  inventory.replace(secret("team-a", "half"), { certificates: [cert("half-own", 10)], thresholds: { criticalDays: 12 } });
  const body = render(inventory).body;
  t.match(body, '<meta name="viewport" content="width=device-width, initial-scale=1">');
  t.match(body, '<time datetime="2030-03-17T17:46:40.000Z">2030-03-17T17:46:40.000Z</time>', "generated at, ISO 8601 UTC");
  t.match(body, "<td>critical</td><td>7 days or fewer left</td>");
  t.match(body, "<td>warning</td><td>28 days or fewer left</td>");
  t.match(body, "<td>ok</td><td>more than 28 days left</td>");
  t.match(body, "<code>cert-expiry-exporter.io/warning-days</code> and <code>cert-expiry-exporter.io/critical-days</code>");
  const rows = tableRows(body, "certificates") ?? [];
  t.same(
    rows.map((r) => `${r.state}|${r.cells[1]}|${r.cells[2]}`),
    ["critical|critical<br><small>own thresholds: warning ≤ 28 d, critical ≤ 12 d</small>|half-own", "warning|warning<br><small>own thresholds: warning ≤ 60 d, critical ≤ 14 d</small>|own-thresholds", "ok|ok|default-thresholds"],
    "a Secret's annotations decide its state, and the row says so",
  );
  t.notMatch(body, /<script|<link|<img|<iframe|src=|url\(|@import/i, "no scripts, no external assets");
  for (const [, target] of body.matchAll(/href="([^"]*)"/g)) t.match(target, /^(\?|\/[a-z]|#)/, `relative link ${target}`);
  t.match(body, /@media \(max-width:760px\)\{.*\.more\{display:none\}/, "less important columns go on narrow screens");
  t.match(body, "overflow-wrap:anywhere");
});

/** Chromium on PATH, as Debian's package installs it. */
function findChromium(): string {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    const candidate = join(dir, "chromium");
    if (dir && existsSync(candidate)) return candidate;
  }
  throw new Error("chromium is not installed: this test needs a real browser. Install it with `apt-get install -y chromium` (CI installs it).");
}

const PROTOCOL_DEADLINE_MS = 30_000;

interface ProtocolMessage {
  id?: number;
  method?: string;
  sessionId?: string;
  params?: Record<string, unknown>;
  result?: Record<string, unknown>;
  error?: { message: string };
}

/**
 * Headless Chromium driven through the DevTools protocol over --remote-debugging-pipe (fd 3 in,
 * fd 4 out, NUL-separated JSON): no WebSocket client and no debugging port. Every wait has a deadline.
 */
class Chromium {
  readonly #child: ChildProcess;
  readonly #profile: string;
  readonly #pending = new Map<number, { resolve: (m: ProtocolMessage) => void; reject: (e: Error) => void }>();
  readonly #listeners = new Set<(m: ProtocolMessage) => void>();
  #nextId = 1;
  #stderr = "";
  #exited: Promise<void>;

  constructor(executable: string) {
    this.#profile = mkdtempSync(join(tmpdir(), "cee-chromium-"));
    const flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"];
    // Its own process group, so teardown can end the browser and every helper process it started.
    this.#child = spawn(executable, [...flags, `--user-data-dir=${this.#profile}`, "--remote-debugging-pipe", "about:blank"], { stdio: ["ignore", "ignore", "pipe", "pipe", "pipe"], detached: true });
    this.#child.stderr?.on("data", (chunk: Buffer) => (this.#stderr = (this.#stderr + chunk.toString()).slice(-4000)));
    this.#exited = new Promise((resolve) => this.#child.once("exit", () => resolve()));
    void this.#exited.then(() => {
      for (const { reject } of this.#pending.values()) reject(new Error(`chromium exited: ${this.#stderr}`));
      this.#pending.clear();
    });
    let buffered = "";
    const output = this.#child.stdio[4] as Readable;
    output.setEncoding("utf8");
    output.on("data", (chunk: string) => {
      buffered += chunk;
      for (let end = buffered.indexOf("\0"); end >= 0; end = buffered.indexOf("\0")) {
        const message = JSON.parse(buffered.slice(0, end)) as ProtocolMessage;
        buffered = buffered.slice(end + 1);
        const waiter = message.id === undefined ? undefined : this.#pending.get(message.id);
        if (waiter) waiter.resolve(message);
        else for (const listener of this.#listeners) listener(message);
      }
    });
  }

  #deadline<T>(what: string, promise: Promise<T>, cleanup: () => void): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no ${what} within ${PROTOCOL_DEADLINE_MS} ms; chromium said: ${this.#stderr}`)), PROTOCOL_DEADLINE_MS);
    });
    return Promise.race([promise, expired]).finally(() => {
      clearTimeout(timer);
      cleanup();
    });
  }

  async send(method: string, params: Record<string, unknown> = {}, sessionId?: string): Promise<Record<string, unknown>> {
    const id = this.#nextId++;
    const answer = new Promise<ProtocolMessage>((resolve, reject) => this.#pending.set(id, { resolve, reject }));
    (this.#child.stdio[3] as Writable).write(`${JSON.stringify({ id, method, params, sessionId })}\0`);
    const message = await this.#deadline(`answer to ${method}`, answer, () => this.#pending.delete(id));
    if (message.error) throw new Error(`${method}: ${message.error.message}`);
    return message.result ?? {};
  }

  /** Resolves on the next event of that name in the session; call before what causes it. */
  event(method: string, sessionId: string): Promise<void> {
    let listener: (m: ProtocolMessage) => void = () => {};
    const seen = new Promise<void>((resolve) => {
      listener = (m) => {
        if (m.method === method && m.sessionId === sessionId) resolve();
      };
      this.#listeners.add(listener);
    });
    return this.#deadline(method, seen, () => this.#listeners.delete(listener));
  }

  /** A new tab with the given viewport; `mobile` makes the page's viewport meta tag count, as on a phone. */
  async tab(width: number, height: number, mobile: boolean): Promise<string> {
    const { targetId } = await this.send("Target.createTarget", { url: "about:blank" });
    const { sessionId } = (await this.send("Target.attachToTarget", { targetId, flatten: true })) as { sessionId: string };
    await this.send("Page.enable", {}, sessionId);
    await this.send("Emulation.setDeviceMetricsOverride", { width, height, deviceScaleFactor: 1, mobile }, sessionId);
    return sessionId;
  }

  async open(sessionId: string, url: string): Promise<void> {
    const loaded = this.event("Page.loadEventFired", sessionId);
    await this.send("Page.navigate", { url }, sessionId);
    await loaded;
  }

  async evaluate<T>(sessionId: string, expression: string): Promise<T> {
    const { result, exceptionDetails } = (await this.send("Runtime.evaluate", { expression, returnByValue: true }, sessionId)) as { result: { value: T }; exceptionDetails?: unknown };
    if (exceptionDetails) throw new Error(`evaluation failed: ${JSON.stringify(exceptionDetails)}`);
    return result.value;
  }

  async screenshot(sessionId: string, path: string): Promise<void> {
    const { data } = (await this.send("Page.captureScreenshot", { format: "png" }, sessionId)) as { data: string };
    writeFileSync(path, Buffer.from(data, "base64"));
  }

  async close(): Promise<void> {
    if (this.#child.exitCode === null && this.#child.signalCode === null) {
      await this.send("Browser.close").catch(() => undefined);
      const stopped = await Promise.race([this.#exited.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 5_000).unref())]);
      if (!stopped) process.kill(-(this.#child.pid as number), "SIGKILL");
    }
    rmSync(this.#profile, { recursive: true, force: true });
  }
}

/** What the browser measured of the page's layout. */
interface Layout {
  innerWidth: number;
  scrollWidth: number;
  certificateRows: number;
  /** Cells of days left, state and subject CN that were hidden or reached past the viewport's right edge. */
  importantCellsOut: string[];
  /** Any shown table cell that reached past the right edge. */
  cellsOut: string[];
  hiddenColumns: number;
  scripts: number;
}

const MEASURE_LAYOUT = `(() => {
  const width = window.innerWidth;
  const describe = (cell) => cell.closest("table").id + " row " + cell.parentElement.rowIndex + " column " + cell.cellIndex + ": right " + cell.getBoundingClientRect().right;
  const shown = (cell) => getComputedStyle(cell).display !== "none";
  const cells = [...document.querySelectorAll("table td, table th")];
  const important = [...document.querySelectorAll("#certificates tr")].flatMap((row) => [...row.cells].slice(0, 3));
  return {
    innerWidth: width,
    scrollWidth: document.documentElement.scrollWidth,
    certificateRows: document.querySelectorAll("#certificates tbody tr").length,
    importantCellsOut: important.filter((c) => !shown(c) || c.getBoundingClientRect().width === 0 || c.getBoundingClientRect().right > width).map(describe).slice(0, 5),
    cellsOut: cells.filter((c) => shown(c) && c.getBoundingClientRect().right > width).map(describe).slice(0, 5),
    hiddenColumns: [...document.querySelectorAll("#certificates thead th")].filter((c) => !shown(c)).length,
    scripts: document.scripts.length,
  };
})()`;

/** The status page over real HTTP, as the exporter serves it, with hostile and long names. */
async function servePage(t: Test): Promise<string> {
  const inventory = new Inventory();
  const huge = "x".repeat(10_240);
  inventory.replace(secret("a".repeat(63), "n".repeat(253), "k".repeat(200)), { certificates: [cert(huge, -3, { issuerCN: huge })] });
  inventory.replace(file(`/var/lib/${"deep/".repeat(400)}cert.pem`), { certificates: [cert('<script>alert("x")</script>\nsecond line', 2)] });
  inventory.replace(file("/etc/pki/future.pem"), { certificates: [cert("not-yet.example.test", 90, { notBefore: NOW + DAY })] });
  inventory.replace(secret("team-a", "own"), { certificates: [cert("own-thresholds.example.test", 40)], thresholds: { warningDays: 60, criticalDays: 14 } });
  for (let i = 0; i < 120; i++) inventory.replace(secret(`team-${i % 3}`, `web-${i}`), { certificates: [cert(`www-${i}.very-long-subdomain-name.example.test`, i * 3 - 10)] });
  for (let i = 0; i < 4; i++) inventory.replace(file(`/etc/pki/${"broken-".repeat(60)}${i}.pem`), { certificates: [], error: { reason: "corrupt_certificate", message: "x" } });
  inventory.replace(secret("team-b", "p12", "keystore.p12"), { certificates: [], error: { reason: "wrong_passphrase", message: "x" } });

  const server: Server = createServer((request, response) => {
    const url = new URL(request.url ?? "/", "http://127.0.0.1");
    const page = url.pathname === "/" ? renderStatusPage(inventory, { version: "test", query: queryOf(url.search), rows: 50, now: NOW }) : { status: 404, body: "" };
    response.writeHead(page.status, { "content-type": "text/html; charset=utf-8" }).end(page.body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.teardown(() => {
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    // The browser keeps sockets open, some never used for a request; close() alone would wait for them to time out.
    server.closeAllConnections();
    return closed;
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
}

t.test("in a real browser: no sideways scrolling at 420 px, every column at 1400 px, the form filters without scripts", async (t) => {
  const browser = new Chromium(findChromium());
  t.teardown(() => browser.close());
  const url = await servePage(t);
  const artefacts = join(ROOT, ".tap", "artefacts", "status-page");
  mkdirSync(artefacts, { recursive: true });

  const wide = await browser.tab(1400, 1000, false);
  await browser.open(wide, url);
  const wideLayout = await browser.evaluate<Layout>(wide, MEASURE_LAYOUT);
  await browser.screenshot(wide, join(artefacts, "status-page-1400.png"));
  t.equal(wideLayout.innerWidth, 1400);
  t.equal(wideLayout.certificateRows, 50, "one page of rows");
  t.equal(wideLayout.hiddenColumns, 0, "every column is shown when there is room");
  t.same(wideLayout.importantCellsOut, []);
  t.same(wideLayout.cellsOut, []);
  t.ok(wideLayout.scrollWidth <= wideLayout.innerWidth, `no sideways scrolling at 1400 px (scrollWidth ${wideLayout.scrollWidth})`);
  t.equal(wideLayout.scripts, 0, "no script, not even from a hostile name");

  const narrow = await browser.tab(420, 900, true);
  await browser.open(narrow, url);
  const narrowLayout = await browser.evaluate<Layout>(narrow, MEASURE_LAYOUT);
  await browser.screenshot(narrow, join(artefacts, "status-page-420.png"));
  t.equal(narrowLayout.innerWidth, 420, "the viewport meta tag gives a 420 px layout viewport, not a zoomed-out desktop one");
  t.same(narrowLayout.importantCellsOut, [], "days left, state and subject CN are shown inside the viewport in every row");
  t.same(narrowLayout.cellsOut, [], "no table cell reaches past the right edge");
  t.ok(narrowLayout.scrollWidth <= narrowLayout.innerWidth, `no sideways scrolling at 420 px (scrollWidth ${narrowLayout.scrollWidth})`);
  t.ok(narrowLayout.hiddenColumns > 0, "less important columns give way");

  // The test drives the form as a user would; the page itself runs no script.
  await browser.evaluate(narrow, `document.querySelector("select[name=state]").value = "critical"; document.querySelector("input[name=namespace]").value = "team-1"; true`);
  const submitted = browser.event("Page.loadEventFired", narrow);
  await browser.evaluate(narrow, `document.querySelector("form.filters").requestSubmit(); true`);
  await submitted;
  const filtered = await browser.evaluate<{ search: string; states: string[]; locations: string[] }>(
    narrow,
    `({ search: location.search, states: [...document.querySelectorAll("#certificates tbody tr")].map((r) => r.className), locations: [...document.querySelectorAll("#certificates tbody tr")].map((r) => r.cells[3].textContent) })`,
  );
  t.equal(filtered.search, "?state=critical&source=&namespace=team-1");
  t.ok(filtered.states.length > 0 && filtered.states.every((s) => s === "critical"), `only critical rows: ${filtered.states.join(",")}`);
  t.ok(filtered.locations.every((l) => l.startsWith("team-1 / ")), "only namespace team-1");
  t.comment(`screenshots: ${artefacts}`);
});
