/**
 * Mutation fuzz of the certificate reader (parseCertificates, the function every source calls):
 * real certificates, raw DER and PEM-wrapped, with bit flips, byte changes, truncations, length-octet
 * changes, insertions and deletions, and nested length bombs. Every call either returns records or
 * throws a CertReadError whose reason is one of READ_ERROR_REASONS: never another exception. Each
 * reader step is bounded by the input, so no case can hang; there are no timing assertions.
 * Deterministic: one fixed seed; a failure names its case and mutation.
 */
import t from "tap";
import { makeCert, makeChain } from "../scripts/certgen.js";
import { parseCertificates, type CertFormat } from "../src/certs/parse.js";
import { CertReadError, READ_ERROR_REASONS } from "../src/errors.js";

const SEED = 0xf022_2050;
const MUTATIONS = Number(process.env.FUZZ_MUTATIONS ?? 20000);

class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0;
  }
  next(): number {
    // xorshift32
    let x = this.#s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.#s = x >>> 0;
    return this.#s / 4294967296;
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
}

const pem = (der: Uint8Array) => Buffer.from(`-----BEGIN CERTIFICATE-----\n${Buffer.from(der).toString("base64").replace(/.{64}/g, "$&\n")}\n-----END CERTIFICATE-----\n`);

/** Offsets of every length octet that a DER header carries, so mutations hit structure as well as content. */
function headerOffsets(der: Buffer): number[] {
  const out: number[] = [];
  const walk = (start: number, end: number, depth: number) => {
    let p = start;
    while (p + 2 <= end && depth < 20) {
      const tag = der[p]!;
      const first = der[p + 1]!;
      out.push(p + 1);
      let len = first;
      let hl = 2;
      if (first & 0x80) {
        const n = first & 0x7f;
        if (n === 0 || n > 4) return;
        len = 0;
        for (let i = 0; i < n; i++) len = len * 256 + der[p + 2 + i]!;
        hl = 2 + n;
      }
      if (p + hl + len > end) return;
      if (tag & 0x20) walk(p + hl, p + hl + len, depth + 1);
      p += hl + len;
    }
  };
  walk(0, der.length, 0);
  return out;
}

function mutate(rng: Rng, src: Buffer, headers: number[]): { bytes: Buffer; what: string } {
  const b = Buffer.from(src);
  const kind = rng.int(0, 8);
  const at = rng.int(0, b.length - 1);
  switch (kind) {
    case 0: {
      const bits = rng.int(1, 8);
      for (let i = 0; i < bits; i++) b[rng.int(0, b.length - 1)]! ^= 1 << rng.int(0, 7);
      return { bytes: b, what: `${bits} bit flips` };
    }
    case 1:
      b[at] = rng.int(0, 255);
      return { bytes: b, what: `byte ${at} changed` };
    case 2:
      return { bytes: b.subarray(0, at), what: `truncated at ${at}` };
    case 3: {
      const h = headers[rng.int(0, headers.length - 1)]!;
      const choices = [0x00, 0x7f, 0x80, 0x81, 0x82, 0x84, 0x85, 0xff, b[h]! + 1, b[h]! - 1];
      b[h] = choices[rng.int(0, choices.length - 1)]! & 0xff;
      return { bytes: b, what: `length octet ${h} changed` };
    }
    case 4: {
      const h = headers[rng.int(0, headers.length - 1)]!;
      // A long-form length claiming up to 4 GiB.
      return { bytes: Buffer.concat([b.subarray(0, h), Buffer.from([0x84, 0xff, 0xff, 0xff, rng.int(0, 255)]), b.subarray(h + 1)]), what: `length bomb at ${h}` };
    }
    case 5: {
      const n = rng.int(1, 16);
      return { bytes: Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + n))]), what: `${n} bytes deleted at ${at}` };
    }
    case 6: {
      const n = rng.int(1, 16);
      const ins = Buffer.alloc(n);
      for (let i = 0; i < n; i++) ins[i] = rng.int(0, 255);
      return { bytes: Buffer.concat([b.subarray(0, at), ins, b.subarray(at)]), what: `${n} bytes inserted at ${at}` };
    }
    case 7: {
      // Nested indefinite-length or huge definite-length SEQUENCEs in front of, or inside, the certificate.
      const depth = rng.int(1, 200);
      const unit = rng.int(0, 1) === 0 ? Buffer.from([0x30, 0x80]) : Buffer.from([0x30, 0x84, 0x7f, 0xff, 0xff, 0xff]);
      const bomb = Buffer.concat(Array.from({ length: depth }, () => unit));
      const h = headers[rng.int(0, headers.length - 1)]! - 1;
      return { bytes: Buffer.concat([b.subarray(0, h), bomb, b.subarray(h)]), what: `${depth}-deep nesting bomb at ${h}` };
    }
    default: {
      const n = rng.int(1, 8);
      for (let i = 0; i < n; i++) {
        const h = headers[rng.int(0, headers.length - 1)]!;
        b[h] = rng.int(0, 255);
      }
      return { bytes: b, what: `${n} length octets randomised` };
    }
  }
}

t.test(`${MUTATIONS} mutations of real certificates: records or a typed read error, nothing else`, async (t) => {
  const { root, intermediate, leaf } = await makeChain("fuzz.example.com");
  const rich = await makeCert({ key: "rsa-2048", subject: "CN=rich.example.com, O=Fuzz, C=DE", sans: ["a.example.com", "IP:192.0.2.1", "IP:2001:db8::1", "email:x@example.com", "URI:https://example.com/x"], serial: "80aa55" });
  const ed = await makeCert({ key: "ed25519", cn: "ed.example.com", ca: true });
  const bases = [root, intermediate, leaf, rich, ed].map((c) => c.der);
  const chain = Buffer.concat(bases.slice(0, 3));
  const rng = new Rng(SEED);
  const reasons = new Set(Object.keys(READ_ERROR_REASONS));
  const outcome = new Map<string, number>();
  let bad = 0;
  const formats: CertFormat[] = ["auto", "der", "pem", "pkcs7"];
  for (let i = 0; i < MUTATIONS; i++) {
    const pick = rng.int(0, bases.length);
    const base = pick === bases.length ? chain : bases[pick]!;
    const { bytes, what } = mutate(rng, base, headerOffsets(base));
    const wrapped = rng.int(0, 2) === 0;
    const input = wrapped ? pem(bytes) : bytes;
    const format = formats[rng.int(0, formats.length - 1)]!;
    try {
      const records = parseCertificates(input, format);
      if (!Array.isArray(records)) throw new Error("not an array");
      outcome.set("records", (outcome.get("records") ?? 0) + 1);
    } catch (err) {
      if (err instanceof CertReadError && reasons.has(err.reason)) {
        outcome.set(err.reason, (outcome.get(err.reason) ?? 0) + 1);
      } else {
        bad++;
        if (bad <= 20) t.fail(`case ${i} (${what}, ${wrapped ? "PEM" : "DER"}, format ${format}): threw ${String(err)}`, { input: Buffer.from(input).toString("base64") });
      }
    }
  }
  t.equal(bad, 0, "no exception but CertReadError with a known reason");
  t.ok((outcome.get("records") ?? 0) > 0 && (outcome.get("corrupt_certificate") ?? 0) > 0, `outcomes: ${JSON.stringify(Object.fromEntries(outcome))}`);
});

t.test("length bombs alone: deep nesting and 4 GiB lengths", async (t) => {
  const inputs: Buffer[] = [
    Buffer.concat(Array.from({ length: 100_000 }, () => Buffer.from([0x30, 0x80]))),
    Buffer.concat([Buffer.from([0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x30, 0x84, 0xff, 0xff, 0xff, 0xff])]),
    Buffer.concat([Buffer.from([0x30, 0x88]), Buffer.alloc(8, 0xff)]),
    Buffer.concat(Array.from({ length: 50_000 }, () => Buffer.from([0x30, 0x84, 0x7f, 0xff, 0xff, 0xff]))),
  ];
  for (const [i, bytes] of inputs.entries()) {
    for (const input of [bytes, pem(bytes)]) {
      try {
        parseCertificates(input);
        t.pass(`bomb ${i}: records`);
      } catch (err) {
        t.ok(err instanceof CertReadError && err.reason in READ_ERROR_REASONS, `bomb ${i}: ${err instanceof CertReadError ? err.reason : String(err)}`);
      }
    }
  }
});
