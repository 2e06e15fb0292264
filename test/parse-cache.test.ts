import t from "tap";
import { CertReadError } from "../src/errors.js";
import { ParseCache } from "../src/certs/cache.js";
import { Lru } from "../src/certs/lru.js";
import * as parser from "../src/certs/parse.js";
import { makeCert, privateKeyPem } from "../scripts/certgen.js";

const a = Buffer.from((await makeCert({ cn: "a" })).pem);
const b = Buffer.from((await makeCert({ cn: "b" })).pem);
const c = (await makeCert({ cn: "c" })).der;
const keyOnly = Buffer.from(await privateKeyPem(await makeCert({ cn: "k" })));

function thrown(fn: () => unknown): CertReadError {
  try {
    fn();
  } catch (err) {
    if (err instanceof CertReadError) return err;
    throw err;
  }
  throw new Error("expected a CertReadError");
}

t.test("the same bytes are parsed once", async (t) => {
  let calls = 0;
  const { ParseCache: Counted } = await t.mockImport<typeof import("../src/certs/cache.js")>("../src/certs/cache.js", {
    "../src/certs/parse.js": {
      ...parser,
      parseCertificates: (...args: Parameters<typeof parser.parseCertificates>) => {
        calls++;
        return parser.parseCertificates(...args);
      },
    },
  });
  const cache = new Counted(10);
  const first = cache.parse(a);
  for (let i = 0; i < 5; i++) t.equal(cache.parse(a), first, "the cached records are returned");
  t.equal(calls, 1, "parser called once");
  // Equal bytes in a different buffer are the same content.
  t.equal(cache.parse(new Uint8Array(a)), first);
  t.equal(calls, 1);
  t.equal(cache.hits, 6);
  t.equal(cache.misses, 1);
  t.same(first.map((r) => r.subjectCN), ["a"]);
});

t.test("records match an uncached parse and are frozen", async (t) => {
  const cache = new ParseCache();
  const records = cache.parse(c);
  t.same(records, parser.parseCertificates(c));
  t.ok(Object.isFrozen(records));
  t.ok(Object.isFrozen(records[0]));
  t.ok(Object.isFrozen(records[0]!.sans));
});

t.test("the format is part of the key", async (t) => {
  const cache = new ParseCache(10);
  cache.parse(a);
  cache.parse(a, "pem");
  t.equal(cache.misses, 2);
  t.equal(cache.size, 2);
  t.equal(thrown(() => cache.parse(a, "der")).reason, "not_pem_or_der");
  t.equal(cache.misses, 3);
});

t.test("errors are cached too", async (t) => {
  const cache = new ParseCache(10);
  const e1 = thrown(() => cache.parse(keyOnly));
  const e2 = thrown(() => cache.parse(keyOnly));
  t.equal(cache.misses, 1);
  t.equal(cache.hits, 1);
  for (const e of [e1, e2]) {
    t.equal(e.reason, "no_certificate");
    t.same(e.pemLabels, ["PRIVATE KEY"]);
  }
  t.equal(e2.message, e1.message);
  t.not(e2, e1, "each throw is a fresh error object");
  const g1 = thrown(() => cache.parse(Buffer.from("garbage")));
  t.equal(g1.reason, "not_pem_or_der");
  t.equal(thrown(() => cache.parse(Buffer.from("garbage"))).reason, "not_pem_or_der");
  t.equal(cache.misses, 2);
  t.equal(cache.hits, 2);
});

t.test("LRU bound: never more than maxEntries, and the recently used half always kept", async (t) => {
  const cache = new ParseCache(4);
  cache.parse(a);
  cache.parse(b); // a full generation (2): [a, b] become the previous one
  cache.parse(a); // hit: a moves to the current generation
  cache.parse(c); // miss: the current generation [a, c] is full and becomes the previous; b is dropped
  t.same([cache.hits, cache.misses], [1, 3]);
  t.equal(cache.size, 2);
  cache.parse(a);
  t.same([cache.hits, cache.misses], [2, 3], "a survived: it was used after b");
  cache.parse(b);
  t.same([cache.hits, cache.misses], [2, 4], "b was dropped with its generation");
});

t.test("LRU against a model: the bound holds and the last ⌊max/2⌋ keys used are always there", async (t) => {
  const max = 10;
  const lru = new Lru<number>(max);
  const used: string[] = [];
  let state = 7;
  for (let op = 0; op < 5000; op++) {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    const key = `k${state % 37}`;
    if (state % 3 === 0) lru.set(key, state);
    else if (lru.get(key) === undefined) lru.set(key, state);
    used.push(key);
    if (lru.size > max) t.fail(`${lru.size} keys held after operation ${op}`);
    const recent = [...new Set(used.slice(-Math.floor(max / 2)).reverse())];
    for (const kept of recent) if (lru.get(kept) === undefined) t.fail(`${kept}, one of the last ${max / 2} keys used, was dropped at operation ${op}`);
  }
  t.ok(lru.size <= max);
});

t.test("maxEntries 0 disables caching", async (t) => {
  const cache = new ParseCache(0);
  const r1 = cache.parse(a);
  const r2 = cache.parse(a);
  t.not(r1, r2);
  t.same(r1, r2);
  t.equal(thrown(() => cache.parse(keyOnly)).reason, "no_certificate");
  t.same([cache.hits, cache.misses, cache.size], [0, 3, 0]);
});

t.test("clear and bad sizes", async (t) => {
  const cache = new ParseCache(4);
  cache.parse(a);
  cache.clear();
  t.equal(cache.size, 0);
  cache.parse(a);
  t.equal(cache.misses, 2);
  t.throws(() => new ParseCache(-1), RangeError);
  t.throws(() => new ParseCache(1.5), RangeError);
});

t.test("a certificate copied into many bundles is decoded once and held as one record", async (t) => {
  const ca = await makeCert({ cn: "Shared CA", ca: true });
  let decoded = 0;
  const decode = await import("../src/certs/decode.js");
  const { ParseCache: Counted } = await t.mockImport<typeof import("../src/certs/cache.js")>("../src/certs/cache.js", {
    "../src/certs/decode.js": {
      ...decode,
      decodeCertificate: (...args: Parameters<typeof decode.decodeCertificate>) => {
        decoded++;
        return decode.decodeCertificate(...args);
      },
    },
  });
  const cache = new Counted(100);
  const bundles = await Promise.all(
    Array.from({ length: 5 }, async (_, i) => Buffer.from(`# copy ${i}\n${(await makeCert({ cn: `leaf-${i}` })).pem}${ca.pem}`)),
  );
  const results = bundles.map((bundle) => cache.parse(bundle));
  t.equal(cache.misses, 5, "every bundle has other bytes");
  t.equal(decoded, 6, "five leaves and the CA once");
  const caRecords = new Set(results.map((records) => records[1]));
  t.equal(caRecords.size, 1, "one shared record for the CA");
  t.equal([...caRecords][0]?.subjectCN, "Shared CA");
  t.ok(Object.isFrozen([...caRecords][0]), "shared records cannot be changed by one holder");
});

t.test("label limits: every text field is cut to maxLabelValueLength bytes, with a marker and a hash", async (t) => {
  const { truncateLabelValue } = await import("../src/certs/truncate.js");
  t.equal(truncateLabelValue("short", 64), "short", "a value within the limit is unchanged");
  const long = "é".repeat(600); // 1,200 bytes
  const cut = truncateLabelValue(long, 100);
  t.ok(Buffer.byteLength(cut) <= 100, `${Buffer.byteLength(cut)} bytes`);
  t.match(cut, /^é+…#[0-9a-f]{12}$/, "whole characters, then the marker and 12 hex digits of SHA-256");
  t.equal(truncateLabelValue(long, 100), cut, "the same value is always cut the same way");
  t.not(truncateLabelValue(long + "x", 100), cut, "values that share the kept prefix stay distinct");

  const hostile = await import("../scripts/hostile.js");
  const { pem, cn } = await hostile.longCommonName(5000);
  const cache = new ParseCache(10, { maxCertificates: 10, maxLabelValueLength: 256 });
  const [record] = cache.parse(Buffer.from(pem));
  for (const field of ["subject", "subjectCN", "issuer", "issuerCN"] as const) {
    t.ok(Buffer.byteLength(record?.[field] ?? "") <= 256, `${field} cut`);
  }
  t.ok(record?.subjectCN.startsWith(cn.slice(0, 100)), "keeps the beginning");
  const [sans] = cache.parse(hostile.sanFlood(500));
  t.equal(sans?.sans.length, 1, "SANs whose joined label is over the limit are one cut value");
  t.ok(Buffer.byteLength(sans?.sans[0] ?? "") <= 256);
  const eleven = await hostile.manyCertificates(11);
  t.equal(thrown(() => cache.parse(eleven)).reason, "too_many_certificates");
});
