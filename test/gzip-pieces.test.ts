import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { crc32, gunzipSync } from "node:zlib";
import t from "tap";
import type { CertRecord } from "../src/certs/record.js";
import { crc32Combine, deflatePieceSync, GZIP_HEADER, GzipTrailer, PieceCompressor, type DeflatedPiece } from "../src/gzip-pieces.js";
import { Health } from "../src/health.js";
import { Inventory } from "../src/inventory.js";
import { MetricsRenderer } from "../src/metrics.js";
import type { Location } from "../src/model.js";
import { DEFAULT_SELECTION, FULL_SELECTION, type SeriesSelection } from "../src/series-selection.js";
import { record } from "./helpers/records.js";

/** A whole gzip /metrics body. */
async function gzipBody(renderer: MetricsRenderer): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of renderer.stream("prometheus", "gzip")) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/**
 * The certificate and location series of a body, without the exporter's own metrics and the days
 * left, which change between two renders.
 */
const inventorySeries = (body: string): string[] => body.split("\n").filter((line) => /^(# (HELP|TYPE) )?cert_(?!expiry_exporter_|expires_in_days\{)/.test(line));

/** Whether two bodies have the same inventory series, in the same order; compared as text, which a diff of 30,000 lines is too slow for. */
const sameSeries = (a: string, b: string): boolean => inventorySeries(a).join("\n") === inventorySeries(b).join("\n");

const secret = (i: number, key = "tls.crt"): Location => ({ source: "secret", namespace: `ns-${i % 13}`, name: `tls-${i}`, key });

/** A record whose serial counts its reads: every per-certificate line reads it once. */
function counted(overrides: Parameters<typeof record>[0], reads: { count: number }): CertRecord {
  const base = record(overrides);
  const serial = base.serial;
  return Object.defineProperty(base, "serial", {
    get: () => {
      reads.count++;
      return serial;
    },
  });
}

function setup(selection: () => SeriesSelection = () => DEFAULT_SELECTION) {
  const inventory = new Inventory();
  const renderer = new MetricsRenderer(inventory, new Health(inventory), { selection });
  return { inventory, renderer };
}

t.test("crc32Combine gives the CRC-32 of the two inputs joined, for any lengths", async (t) => {
  const lengths = [0, 1, 2, 3, 7, 8, 255, 256, 4096, 65_537, 1_000_003];
  let checked = 0;
  for (const a of lengths) {
    for (const b of lengths) {
      const left = randomBytes(a);
      const right = randomBytes(b);
      t.equal(crc32Combine(crc32(left), crc32(right), b), crc32(Buffer.concat([left, right])), `${a} + ${b} bytes`);
      checked++;
    }
  }
  t.equal(checked, lengths.length ** 2);
});

t.test("pieces compressed apart make one gzip member that gzip(1) and zlib read back", async (t) => {
  const parts: Buffer[] = [Buffer.from("# HELP x y\n"), Buffer.from("x{a=\"1\"} 1\n".repeat(20_000)), randomBytes(70_000), Buffer.from("é東京\n")];
  const trailer = new GzipTrailer();
  const body: Uint8Array[] = [GZIP_HEADER];
  const compressor = new PieceCompressor(1);
  // Given at once, as a body gives several before awaiting the first; the long part in chunks.
  const pieces: (DeflatedPiece | Promise<DeflatedPiece>)[] = [deflatePieceSync(parts[0] as Buffer, 1), ...[[parts[1]], [parts[2]], [parts[3]]].map((chunks) => compressor.compress(chunks as Buffer[]))];
  pieces.push(compressor.compress([(parts[1] as Buffer).subarray(0, 100_000), (parts[1] as Buffer).subarray(100_000)]));
  parts.push(parts[1] as Buffer);
  // Closed before its pieces are out, as the compressor of a body abandoned midway is: they still come out whole, none final.
  compressor.close();
  for (const [i, pending] of pieces.entries()) {
    const piece = await pending;
    t.equal(piece.length, (parts[i] as Buffer).length);
    trailer.add(piece);
    body.push(piece.deflated);
  }
  body.push(trailer.end());
  const whole = Buffer.concat(body);
  const expected = Buffer.concat(parts);
  t.ok(gunzipSync(whole).equals(expected), "zlib");
  // gzip(1) checks the CRC and the length in the trailer.
  t.ok(execFileSync("gzip", ["-dc"], { input: whole, maxBuffer: 1 << 24 }).equals(expected), "gzip -dc");
  t.doesNotThrow(() => execFileSync("gzip", ["-t"], { input: whole }), "gzip -t");
  const corrupt = Buffer.from(whole);
  corrupt.writeUInt32LE((corrupt.readUInt32LE(corrupt.length - 8) ^ 1) >>> 0, corrupt.length - 8);
  t.throws(() => execFileSync("gzip", ["-t"], { input: corrupt, stdio: ["pipe", "ignore", "ignore"] }), "a wrong CRC is noticed, so the one above was checked");
});

t.test("a gzip body has the plain body's series, with every family and label, over many segments", async (t) => {
  const { inventory, renderer } = setup(() => FULL_SELECTION);
  for (let i = 0; i < 3000; i++) {
    inventory.replace(secret(i), { certificates: [record({ subjectCN: `host-${i}.test`, serial: i.toString(16), daysLeft: i - 30 }), record({ isCA: true, subjectCN: "CA" })], keyPair: "match", chain: { problem: "none", links: { notBefore: 0, notAfter: 4e9 } } });
    inventory.replace(secret(i, "ca.crt"), { certificates: [record({ isCA: true, subjectCN: "Root" })] });
  }
  inventory.replace({ source: "file", namespace: "", name: '/odd/"quoted"\\name\n.pem', key: "" }, { certificates: [], error: { reason: "corrupt_certificate", message: "x" } });
  // One location with more certificates than a segment holds: it still goes whole into one.
  inventory.replace(secret(9999), { certificates: Array.from({ length: 2100 }, (_, i) => record({ serial: `b${i}` })) });
  const plain = Buffer.concat(await renderer.render()).toString("utf8");
  const gzip = await gzipBody(renderer);
  const gunzipped = execFileSync("gzip", ["-dc"], { input: gzip, maxBuffer: 1 << 28 }).toString("utf8");
  t.ok(sameSeries(gunzipped, plain), "the same lines in the same order");
  t.equal(inventorySeries(gunzipped).filter((line) => line.startsWith("cert_info{")).length, 3000 * 3 + 2100);
  t.equal(gunzipped.match(/^# TYPE cert_not_after_timestamp_seconds gauge$/gm)?.length, 1, "one header per family");
  t.match(gunzipped, /cert_expiry_exporter_build_info/, "the exporter's own metrics follow");
  t.ok(sameSeries(execFileSync("gzip", ["-dc"], { input: await gzipBody(renderer), maxBuffer: 1 << 28 }).toString("utf8"), plain), "and again from the kept pieces");
});

t.test("a gzip scrape renders again only the segments whose locations changed, and shows the change", async (t) => {
  const reads = { count: 0 };
  const { inventory, renderer } = setup();
  const count = 5000;
  for (let i = 0; i < count; i++) inventory.replace(secret(i), { certificates: [counted({ subjectCN: `host-${i}.test`, serial: `s${i}` }, reads)] });
  await gzipBody(renderer);
  // The default families (notAfter, notBefore, cert_info) each write every certificate once.
  const perCertificate = reads.count / count;
  t.ok(perCertificate >= 3, `the first gzip scrape renders every line: ${perCertificate} reads per certificate`);

  reads.count = 0;
  const same = gunzipSync(await gzipBody(renderer)).toString("utf8");
  t.equal(reads.count, 0, "nothing changed: nothing rendered");
  t.equal(inventorySeries(same).filter((line) => line.startsWith("cert_info{")).length, count);

  reads.count = 0;
  inventory.replace(secret(1234), { certificates: [counted({ subjectCN: "renewed.test", serial: "new1234" }, reads)] });
  inventory.remove(secret(77));
  inventory.replace(secret(count), { certificates: [counted({ subjectCN: "added.test", serial: "added" }, reads)] });
  const changed = gunzipSync(await gzipBody(renderer)).toString("utf8");
  // Each change renders its own segment again, and the next one when it moved a boundary.
  t.ok(reads.count > 0 && reads.count <= 3 * 2 * 1024 * perCertificate, `three changes re-render at most six segments' lines: ${reads.count} reads`);
  t.ok(reads.count < count, "far from the whole inventory");
  const infos = inventorySeries(changed).filter((line) => line.startsWith("cert_info{"));
  t.equal(infos.length, count, "one removed, one added");
  t.ok(infos.some((line) => line.includes('subject_cn="renewed.test"')));
  t.notOk(infos.some((line) => line.includes('subject_cn="host-1234.test"')), "the replaced certificate is gone");
  t.notOk(infos.some((line) => line.includes('name="tls-77"')), "the removed location is gone");
  t.ok(infos.some((line) => line.includes('subject_cn="added.test"')));
  t.ok(sameSeries(changed, Buffer.concat(await renderer.render()).toString("utf8")), "the same body as a plain render");

  reads.count = 0;
  inventory.setStale(secret(5), true);
  const stale = gunzipSync(await gzipBody(renderer)).toString("utf8");
  t.match(stale, /cert_location_stale\{source="secret",namespace="ns-5",name="tls-5",key="tls.crt"\} 1/, "a location marked stale is a change too");
});

t.test("warm renders and keeps every piece without sending any: the gzip scrape after it renders nothing", async (t) => {
  const reads = { count: 0 };
  const { inventory, renderer } = setup();
  const count = 5000;
  for (let i = 0; i < count; i++) inventory.replace(secret(i), { certificates: [counted({ subjectCN: `host-${i}.test`, serial: `s${i}` }, reads)] });
  await renderer.warm(new AbortController().signal);
  t.ok(reads.count >= 3 * count, `warm rendered every line: ${reads.count} reads`);
  reads.count = 0;
  const body = gunzipSync(await gzipBody(renderer)).toString("utf8");
  t.equal(reads.count, 0, "the scrape after it rendered nothing");
  t.equal(inventorySeries(body).filter((line) => line.startsWith("cert_info{")).length, count);
  t.ok(sameSeries(body, Buffer.concat(await renderer.render()).toString("utf8")), "the same body as a plain render");
});

t.test("a gzip scrape during a warm shares its pieces: together they render each line once", async (t) => {
  const reads = { count: 0 };
  const { inventory, renderer } = setup();
  const count = 20_000;
  for (let i = 0; i < count; i++) inventory.replace(secret(i), { certificates: [counted({ subjectCN: `host-${i}.test`, serial: `s${i}` }, reads)] });
  await renderer.render();
  const full = reads.count;
  reads.count = 0;
  const warming = renderer.warm(new AbortController().signal);
  const [body] = await Promise.all([gzipBody(renderer), warming]);
  t.equal(reads.count, full, "one render's reads between them");
  t.equal(inventorySeries(gunzipSync(body).toString("utf8")).filter((line) => line.startsWith("cert_info{")).length, count, "and the scrape's body is whole");
});

t.test("an aborted warm stops at its next piece, and the next scrape renders what it left", async (t) => {
  const reads = { count: 0 };
  const { inventory, renderer } = setup();
  const count = 20_000;
  const controller = new AbortController();
  let armed = false;
  const aborting = { get count() { return reads.count; }, set count(value: number) {
    reads.count = value;
    if (armed && value === 1000) controller.abort();
  } };
  for (let i = 0; i < count; i++) inventory.replace(secret(i), { certificates: [counted({ subjectCN: `host-${i}.test`, serial: `s${i}` }, aborting)] });
  await renderer.render();
  const full = reads.count;
  reads.count = 0;
  const before = new AbortController();
  before.abort();
  await renderer.warm(before.signal);
  t.equal(reads.count, 0, "aborted before it started: nothing rendered");
  armed = true;
  await renderer.warm(controller.signal);
  const warmed = reads.count;
  t.ok(warmed >= 1000 && warmed < full / 10, `stopped soon after the abort: ${warmed} reads of ${full}`);
  reads.count = 0;
  const body = gunzipSync(await gzipBody(renderer)).toString("utf8");
  t.equal(inventorySeries(body).filter((line) => line.startsWith("cert_info{")).length, count, "the next body is whole");
  t.ok(reads.count < full, `and rendered only what the warm left: ${reads.count} reads`);
});

t.test("lines that read the clock are rendered again once they may have changed", async (t) => {
  const { inventory, renderer } = setup(() => ({ ...DEFAULT_SELECTION, certificateFamilies: [...DEFAULT_SELECTION.certificateFamilies, "cert_expires_in_days", "cert_expired"] }));
  // Far enough ahead for the first scrape to come before it on a loaded machine.
  const soon = Date.now() / 1000 + 3;
  inventory.replace(secret(1), { certificates: [record({ subjectCN: "expiring.test", notAfter: soon })], chain: { problem: "none", links: { notBefore: 0, notAfter: soon } } });
  for (let i = 2; i < 600; i++) inventory.replace(secret(i), { certificates: [record({ subjectCN: `host-${i}.test` })] });
  const value = (body: string, family: string) => Number(body.split("\n").find((line) => line.startsWith(`${family}{`) && line.includes("expiring.test"))?.split(" ").at(-1));
  const problem = (body: string) => /cert_chain_problem\{[^}]*name="tls-1"[^}]*problem="([a-z_]+)"\}/.exec(body)?.[1];
  const before = gunzipSync(await gzipBody(renderer)).toString("utf8");
  t.equal(value(before, "cert_expired"), 0);
  t.equal(problem(before), "none");
  await sleep(Math.max(0, soon * 1000 - Date.now()) + 500);
  const after = gunzipSync(await gzipBody(renderer)).toString("utf8");
  t.equal(value(after, "cert_expired"), 1, "expired once notAfter passed, though the location did not change");
  t.equal(problem(after), "expired_link", "a chain whose link expired says so");
  t.ok(value(after, "cert_expires_in_days") < value(before, "cert_expires_in_days"), "days left are the scrape's own");
  t.ok(sameSeries(after, Buffer.concat(await renderer.render()).toString("utf8")), "the same body as a plain render");
});

t.test("a new series selection (a reload) is the next gzip scrape's, not the kept pieces'", async (t) => {
  let selection: SeriesSelection = DEFAULT_SELECTION;
  const { inventory, renderer } = setup(() => selection);
  for (let i = 0; i < 300; i++) inventory.replace(secret(i), { certificates: [record({ subjectCN: `host-${i}.test` }), record({ isCA: true, subjectCN: "CA" })] });
  const full = gunzipSync(await gzipBody(renderer)).toString("utf8");
  t.equal(inventorySeries(full).filter((line) => line.startsWith("cert_info{")).length, 600);
  t.notMatch(full, /sans="/);
  selection = { ...FULL_SELECTION, leafOnly: true };
  const leaves = gunzipSync(await gzipBody(renderer)).toString("utf8");
  t.equal(inventorySeries(leaves).filter((line) => line.startsWith("cert_info{")).length, 300, "leaf-only applies at once");
  t.match(leaves, /sans="DNS:example.test"/, "and so do the info labels");
  t.match(leaves, /^cert_expires_in_days\{/m, "and the families");
});

t.test("a gzip scrape cut off midway keeps the pieces it compressed, so the next one renders only the rest", async (t) => {
  const reads = { count: 0 };
  const { inventory, renderer } = setup();
  const count = 20_000;
  for (let i = 0; i < count; i++) inventory.replace(secret(i), { certificates: [counted({ subjectCN: `host-${i}.test`, serial: `s${i}` }, reads)] });
  const body = renderer.stream("prometheus", "gzip");
  let received = 0;
  for await (const chunk of body) {
    received += (chunk as Buffer).length;
    if (received > 64 * 1024) break; // leaves the loop: the stream is destroyed, as when a scraper hangs up
  }
  const cutOff = reads.count;
  t.ok(cutOff > 0, `the cut-off scrape rendered something: ${cutOff} reads`);
  reads.count = 0;
  const next = gunzipSync(await gzipBody(renderer)).toString("utf8");
  t.equal(inventorySeries(next).filter((line) => line.startsWith("cert_info{")).length, count, "the next body is whole");
  const full = reads.count;
  reads.count = 0;
  await gzipBody(new MetricsRenderer(inventory, new Health(inventory)));
  t.ok(full < reads.count, `and cost less than a body from nothing: ${full} reads instead of ${reads.count}`);
});
