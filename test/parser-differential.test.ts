/**
 * Differential test of our certificate reader (src/certs/parse.ts on der.ts, dn.ts, decode.ts)
 * against two independent readers, @peculiar/x509 (asn1js underneath) and node:crypto's
 * X509Certificate (OpenSSL underneath), over a few thousand certificates generated from a fixed seed.
 * Where the libraries disagree with each other or with us, `openssl x509` decides; every case it
 * decided is kept below as a named regression case with the reasoning.
 *
 * Certificates are built here, DER byte by byte (a small encoder of this file's own, independent of
 * the reader under test), and really signed with node:crypto by a small pool of keys made once:
 * that is what lets a case choose each string type (BMPString, TeletexString, …), each time encoding,
 * serials of every length and sign, every GeneralName form and critical unknown extensions, which no
 * certificate library lets a caller choose.
 *
 * Fairness of the comparisons (each side brought to one form, nothing else forgiven):
 * - Times: Unix seconds. @peculiar/x509 gives Dates, node:crypto gives OpenSSL's "Mon DD HH:MM:SS
 *   YYYY GMT" text, parsed here.
 * - Serial: ours as exported (lowercase hex of the magnitude as encoded, without DER's sign octet).
 *   node:crypto prints the number in uppercase hex; @peculiar/x509 the content octets, sign octet
 *   included. Both are compared as numbers; ours is compared as text with `openssl x509 -serial`.
 * - Names: each side becomes a list of RDNs in encoding order, each RDN the sorted list of
 *   `OID=value` with the value unescaped (RFC 4514 escapes, OpenSSL's \XX escapes) and a "#hex" value
 *   decoded from its DER. Ours is read from our RFC 4514 string (so its escaping is checked too),
 *   node:crypto's from its one-RDN-per-line text, @peculiar/x509's from its JSON. Order of the RDNs
 *   matters (ours is reversed, as RFC 4514 wants); order inside a multi-valued RDN does not.
 * - CN: the first commonName in encoding order; node:crypto's from its subject text.
 * - SANs: we export dNSName, iPAddress, rfc822Name and URI only, in order: the libraries' lists are
 *   filtered to those four forms. IP addresses are compared as addresses; ours must also be the RFC
 *   5952 form, which the WHATWG URL parser's IPv6 serialiser writes.
 * - Key: algorithm and bits from node:crypto's KeyObject details and @peculiar/x509's algorithm.
 * - Signature algorithm: @peculiar/x509's name and hash (node:crypto on Node 20 has none); OpenSSL's
 *   text on the sample.
 * - Fingerprint: node:crypto's fingerprint256 and @peculiar/x509's SHA-256 thumbprint.
 * - Key usage: @peculiar/x509's KeyUsagesExtension flags (node:crypto reads none). Extended key
 *   usage: the purposes' OIDs as a sorted set, from node:crypto's keyUsage (its name for them) and
 *   @peculiar/x509's ExtendedKeyUsageExtension.
 */
import { spawnSync } from "node:child_process";
import { X509Certificate as NodeX509, generateKeyPairSync, sign as cryptoSign, constants, type KeyObject } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AsnConvert } from "@peculiar/asn1-schema";
import { RSAPublicKey } from "@peculiar/asn1-rsa";
import { SubjectPublicKeyInfo } from "@peculiar/asn1-x509";
import t from "tap";
import { x509 } from "../scripts/certgen.js";
import { parseCertificates } from "../src/certs/parse.js";
import type { CertRecord } from "../src/certs/record.js";

const SEED = 0xd1ff_2050;
/** Generated certificates. */
const CERTIFICATES = Number(process.env.DIFF_CERTIFICATES ?? 1000);
/** Of which this many (spread over the run) are also read by `openssl x509`. */
const OPENSSL_SAMPLE = Number(process.env.DIFF_OPENSSL_SAMPLE ?? 12);

// ---------------------------------------------------------------------------------------------
// Deterministic PRNG (mulberry32) and helpers.

class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0;
  }
  next(): number {
    this.#s = (this.#s + 0x6d2b79f5) >>> 0;
    let z = this.#s;
    z = Math.imul(z ^ (z >>> 15), z | 1);
    z ^= z + Math.imul(z ^ (z >>> 7), z | 61);
    return ((z ^ (z >>> 14)) >>> 0) / 4294967296;
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = Math.floor(this.next() * 256);
    return b;
  }
}

// ---------------------------------------------------------------------------------------------
// A DER encoder, just enough to write certificates.

function lengthOctets(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const out: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) out.unshift(v & 0xff);
  return Buffer.from([0x80 | out.length, ...out]);
}

function tlv(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), lengthOctets(body.length), body]);
}

const seq = (...c: Buffer[]) => tlv(0x30, ...c);
/** DER SET OF: elements sorted by their encodings. */
const set = (...c: Buffer[]) => tlv(0x31, ...[...c].sort(Buffer.compare));
const octets = (b: Buffer) => tlv(0x04, b);
const bool = (v: boolean) => tlv(0x01, Buffer.from([v ? 0xff : 0x00]));
const explicit = (n: number, inner: Buffer) => tlv(0xa0 | n, inner);

function oid(dotted: string): Buffer {
  const arcs = dotted.split(".").map((a) => BigInt(a));
  const values = [arcs[0]! * 40n + arcs[1]!, ...arcs.slice(2)];
  const out: number[] = [];
  for (const v of values) {
    const digits: number[] = [];
    let x = v;
    do {
      digits.unshift(Number(x & 0x7fn));
      x >>= 7n;
    } while (x > 0n);
    for (let i = 0; i < digits.length - 1; i++) digits[i]! |= 0x80;
    out.push(...digits);
  }
  return tlv(0x06, Buffer.from(out));
}

/** An INTEGER with the given content octets, as they are (so a case can write any encoding). */
const integerRaw = (content: Buffer) => tlv(0x02, content);

function bitString(b: Buffer): Buffer {
  return tlv(0x03, Buffer.from([0]), b);
}

// ---------------------------------------------------------------------------------------------
// Keys: a small pool made once per run, since key generation is the cost.

type KeyKind = "rsa-2048" | "rsa-3072" | "rsa-4096" | "ec-p256" | "ec-p384" | "ec-p521" | "ed25519" | "ed448";

interface PoolKey {
  kind: KeyKind;
  privateKey: KeyObject;
  spki: Buffer;
  algorithm: string;
  bits: number;
}

function makeKey(kind: KeyKind): PoolKey {
  let pair: { privateKey: KeyObject; publicKey: KeyObject };
  let algorithm: string;
  let bits: number;
  if (kind.startsWith("rsa-")) {
    bits = Number(kind.slice(4));
    pair = generateKeyPairSync("rsa", { modulusLength: bits });
    algorithm = "RSA";
  } else if (kind.startsWith("ec-")) {
    const curve = { "ec-p256": "P-256", "ec-p384": "P-384", "ec-p521": "P-521" }[kind as "ec-p256"];
    bits = { "ec-p256": 256, "ec-p384": 384, "ec-p521": 521 }[kind as "ec-p256"];
    pair = generateKeyPairSync("ec", { namedCurve: curve });
    algorithm = "ECDSA";
  } else if (kind === "ed25519") {
    pair = generateKeyPairSync("ed25519");
    algorithm = "Ed25519";
    bits = 256;
  } else {
    pair = generateKeyPairSync("ed448");
    algorithm = "Ed448";
    bits = 456;
  }
  return { kind, privateKey: pair.privateKey, spki: pair.publicKey.export({ type: "spki", format: "der" }), algorithm, bits };
}

const POOL_KINDS: KeyKind[] = ["rsa-2048", "rsa-2048", "rsa-3072", "rsa-4096", "ec-p256", "ec-p256", "ec-p384", "ec-p384", "ec-p521", "ed25519", "ed25519", "ed448"];

// ---------------------------------------------------------------------------------------------
// Signature algorithms per signing key, and the names we export for them.

interface SigAlg {
  /** Our export (decode.ts) for it. */
  name: string;
  /** AlgorithmIdentifier DER. */
  der: Buffer;
  sign(tbs: Buffer, key: KeyObject): Buffer;
}

const NULL = tlv(0x05);
const HASH_OIDS = { sha1: "1.3.14.3.2.26", sha256: "2.16.840.1.101.3.4.2.1", sha384: "2.16.840.1.101.3.4.2.2", sha512: "2.16.840.1.101.3.4.2.3" };

function rsaPkcs1(hash: "sha1" | "sha256" | "sha384" | "sha512", oidLast: number): SigAlg {
  return {
    name: `${hash}WithRSAEncryption`,
    der: seq(oid(`1.2.840.113549.1.1.${oidLast}`), NULL),
    sign: (tbs, key) => cryptoSign(hash, tbs, key),
  };
}

function rsaPss(hash: "sha256" | "sha384" | "sha512"): SigAlg {
  const hashAlg = seq(oid(HASH_OIDS[hash]), NULL);
  const saltLength = { sha256: 32, sha384: 48, sha512: 64 }[hash];
  const params = seq(explicit(0, hashAlg), explicit(1, seq(oid("1.2.840.113549.1.1.8"), hashAlg)), explicit(2, tlv(0x02, Buffer.from([saltLength]))));
  return {
    name: `RSASSA-PSS-${hash.toUpperCase()}`,
    der: seq(oid("1.2.840.113549.1.1.10"), params),
    sign: (tbs, key) => cryptoSign(hash, tbs, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength }),
  };
}

function ecdsa(hash: "sha256" | "sha384" | "sha512", oidLast: number): SigAlg {
  return { name: `ecdsa-with-${hash.toUpperCase()}`, der: seq(oid(`1.2.840.10045.4.3.${oidLast}`)), sign: (tbs, key) => cryptoSign(hash, tbs, key) };
}

const SIG_ALGS: Record<"rsa" | "ec" | "ed25519" | "ed448", SigAlg[]> = {
  rsa: [rsaPkcs1("sha256", 11), rsaPkcs1("sha384", 12), rsaPkcs1("sha512", 13), rsaPkcs1("sha1", 5), rsaPss("sha256"), rsaPss("sha384")],
  ec: [ecdsa("sha256", 2), ecdsa("sha384", 3), ecdsa("sha512", 4)],
  ed25519: [{ name: "Ed25519", der: seq(oid("1.3.101.112")), sign: (tbs, key) => cryptoSign(null, tbs, key) }],
  ed448: [{ name: "Ed448", der: seq(oid("1.3.101.113")), sign: (tbs, key) => cryptoSign(null, tbs, key) }],
};

function sigFamily(kind: KeyKind): keyof typeof SIG_ALGS {
  return kind.startsWith("rsa") ? "rsa" : kind.startsWith("ec") ? "ec" : (kind as "ed25519" | "ed448");
}

// ---------------------------------------------------------------------------------------------
// Names: attribute types, every DirectoryString type, multi-valued and empty RDNs.

const ATTRIBUTE_TYPES = [
  "2.5.4.3", "2.5.4.3", "2.5.4.3", "2.5.4.10", "2.5.4.11", "2.5.4.6", "2.5.4.7", "2.5.4.8", "2.5.4.9", "2.5.4.5", "2.5.4.12",
  "2.5.4.42", "2.5.4.4", "0.9.2342.19200300.100.1.25", "0.9.2342.19200300.100.1.1", "1.2.840.113549.1.9.1", "2.5.4.97",
  "2.5.4.17", "2.5.4.15", "2.5.4.43", "2.5.4.46", "2.5.4.65",
] as const;

const PRINTABLE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?";
/** ASCII with every character RFC 4514 or OpenSSL escapes somewhere. */
const ASCII_SPECIAL = "abcXYZ019 ,+\"\\<>;#=/'@!$%&*()[]{}|~^`_.-:?";
const NON_ASCII_BMP = ["é", "ü", "ß", "Ø", "東", "京", "Ж", "ж", "ω", "€", "ñ", "ą", "ł", "ש", "ع", "한", "ー", "\u00a0", "\u2028"];
const ASTRAL = ["😀", "𝄞", "𠀋"];
const LATIN1_HIGH = "éüßØñÅæ×÷¿¡©®°±µ¶·¼½¾ÿ";

/**
 * What the certificate being generated holds that @peculiar/x509 is known to misread (decided by
 * OpenSSL, see the regression cases): its names are then compared with node:crypto and OpenSSL only.
 */
const peculiarBlindSpots = { universalAstral: false, bigArc: false };

type StringKind = "utf8" | "printable" | "ia5" | "bmp" | "teletex" | "universal" | "numeric" | "visible";

interface DirString {
  kind: StringKind;
  der: Buffer;
  /** What the value means, as a JS string. */
  text: string;
}

function randomText(rng: Rng, alphabet: readonly string[], min: number, max: number): string {
  let s = "";
  const n = rng.int(min, max);
  for (let i = 0; i < n; i++) s += rng.pick(alphabet);
  return s;
}

function dirString(rng: Rng, forceKind?: StringKind): DirString {
  const kind: StringKind = forceKind ?? rng.pick(["utf8", "utf8", "utf8", "printable", "printable", "ia5", "bmp", "teletex", "universal", "numeric"] as const);
  const lengthMax = rng.chance(0.05) ? 200 : 24;
  const min = rng.chance(0.03) ? 0 : 1;
  switch (kind) {
    case "printable": {
      const text = randomText(rng, [...PRINTABLE], min, lengthMax);
      return { kind, text, der: tlv(0x13, Buffer.from(text, "latin1")) };
    }
    case "numeric": {
      const text = randomText(rng, [..."0123456789 "], min, lengthMax);
      return { kind, text, der: tlv(0x12, Buffer.from(text, "latin1")) };
    }
    case "ia5":
    case "visible": {
      const text = randomText(rng, [...ASCII_SPECIAL, ...PRINTABLE], min, lengthMax);
      return { kind, text, der: tlv(kind === "ia5" ? 0x16 : 0x1a, Buffer.from(text, "latin1")) };
    }
    case "teletex": {
      // ISO-8859-1 bytes, as most T.61 in the wild is; the decided case below covers UTF-8 in it.
      const text = randomText(rng, [...PRINTABLE, ...LATIN1_HIGH], min, lengthMax);
      return { kind, text, der: tlv(0x14, Buffer.from(text, "latin1")) };
    }
    case "bmp": {
      const text = randomText(rng, [...PRINTABLE, ...NON_ASCII_BMP, ...ASCII_SPECIAL], min, lengthMax);
      return { kind, text, der: tlv(0x1e, Buffer.from(text, "utf16le").swap16()) };
    }
    case "universal": {
      const text = randomText(rng, [...PRINTABLE, ...NON_ASCII_BMP, ...ASTRAL], min, lengthMax);
      const cps = [...text].map((c) => c.codePointAt(0)!);
      if (cps.some((cp) => cp > 0xffff)) peculiarBlindSpots.universalAstral = true;
      const b = Buffer.alloc(cps.length * 4);
      cps.forEach((cp, i) => b.writeUInt32BE(cp, i * 4));
      return { kind, text, der: tlv(0x1c, b) };
    }
    default: {
      const text = randomText(rng, [...PRINTABLE, ...ASCII_SPECIAL, ...NON_ASCII_BMP, ...ASTRAL], min, lengthMax);
      return { kind, text, der: tlv(0x0c, Buffer.from(text, "utf8")) };
    }
  }
}

function attributeValue(rng: Rng, type: string): DirString {
  // countryName is a two-letter PrintableString; DC and emailAddress are IA5String.
  if (type === "2.5.4.6") {
    const text = randomText(rng, [..."ABCDEFGHIJKLMNOPQRSTUVWXYZ"], 2, 2);
    return { kind: "printable", text, der: tlv(0x13, Buffer.from(text, "latin1")) };
  }
  if (type === "0.9.2342.19200300.100.1.25" || type === "1.2.840.113549.1.9.1") return dirString(rng, "ia5");
  return dirString(rng);
}

/** An attribute type of a private arc (unknown to every reader): a random OID, sometimes UUID-sized. */
function unknownAttributeType(rng: Rng): string {
  if (rng.chance(0.2)) {
    peculiarBlindSpots.bigArc = true;
    return `2.25.${BigInt("0x" + rng.bytes(16).toString("hex")).toString()}`;
  }
  return `1.3.6.1.4.1.55555.${rng.int(1, 9)}.${rng.int(0, 300)}`;
}

function randomName(rng: Rng): Buffer {
  const rdnCount = rng.chance(0.08) ? 0 : rng.int(1, rng.chance(0.1) ? 12 : 5);
  const rdns: Buffer[] = [];
  for (let i = 0; i < rdnCount; i++) {
    const attrCount = rng.chance(0.12) ? rng.int(2, 4) : 1;
    const atvs: Buffer[] = [];
    for (let k = 0; k < attrCount; k++) {
      const type = rng.chance(0.06) ? unknownAttributeType(rng) : rng.pick(ATTRIBUTE_TYPES);
      atvs.push(seq(oid(type), attributeValue(rng, type).der));
    }
    rdns.push(set(...atvs));
  }
  return seq(...rdns);
}

// ---------------------------------------------------------------------------------------------
// Times around the UTCTime/GeneralizedTime switch (RFC 5280: UTCTime through 2049), leap days,
// the end of time (99991231235959Z) and the start of UTCTime's range.

const ANCHORS = [
  "2049-12-31T23:59:59Z", "2050-01-01T00:00:00Z", "2049-12-31T23:59:59Z", "2050-01-01T00:00:00Z", "1950-01-01T00:00:00Z",
  "1949-12-31T23:59:59Z", "2000-02-29T12:00:00Z", "2024-02-29T23:59:59Z", "2100-02-28T23:59:59Z", "1970-01-01T00:00:00Z",
  "9999-12-31T23:59:59Z", "2038-01-19T03:14:07Z", "2025-06-30T23:59:59Z",
].map((s) => Date.parse(s) / 1000);

const pad = (n: number, w: number) => String(n).padStart(w, "0");

/** DER time for Unix seconds `s`: UTCTime for 1950-2049 unless `generalized`, else GeneralizedTime. */
function encodeTime(s: number, generalized: boolean): Buffer {
  const d = new Date(s * 1000);
  const y = d.getUTCFullYear();
  const rest = pad(d.getUTCMonth() + 1, 2) + pad(d.getUTCDate(), 2) + pad(d.getUTCHours(), 2) + pad(d.getUTCMinutes(), 2) + pad(d.getUTCSeconds(), 2) + "Z";
  if (!generalized && y >= 1950 && y <= 2049) return tlv(0x17, Buffer.from(pad(y % 100, 2) + rest, "latin1"));
  return tlv(0x18, Buffer.from(pad(y, 4) + rest, "latin1"));
}

function randomInstant(rng: Rng): number {
  const anchor = rng.pick(ANCHORS);
  const r = rng.next();
  const offset = r < 0.3 ? 0 : r < 0.6 ? rng.int(-2, 2) : rng.int(-3 * 86_400, 3 * 86_400);
  return Math.min(anchor + offset, Date.parse("9999-12-31T23:59:59Z") / 1000);
}

// ---------------------------------------------------------------------------------------------
// Serials: 1 to 20 octets, the top bit set (DER's sign octet added), zero, a leading zero nibble.

function randomSerial(rng: Rng): Buffer {
  const r = rng.next();
  if (r < 0.03) return Buffer.from([0]);
  const n = r < 0.1 ? 20 : rng.int(1, 20);
  const b = rng.bytes(n);
  if (r < 0.05) b.fill(0xff);
  if (rng.chance(0.1)) b[0] = rng.int(1, 0x0f);
  if (b[0] === 0 && n > 1) b[0] = 1;
  if (b[0]! >= 0x80) return Buffer.concat([Buffer.from([0]), b]);
  return b;
}

// ---------------------------------------------------------------------------------------------
// Subject alternative names of every GeneralName form.

const LABEL_CHARS = [..."abcdefghijklmnopqrstuvwxyz0123456789-"];

function dnsName(rng: Rng): string {
  const labels = Array.from({ length: rng.int(1, 5) }, () => randomText(rng, LABEL_CHARS, 1, rng.chance(0.05) ? 63 : 12));
  return (rng.chance(0.15) ? "*." : "") + labels.join(".");
}

function ipv6(rng: Rng): Buffer {
  const b = Buffer.alloc(16);
  const r = rng.next();
  if (r < 0.05) return b; // ::
  if (r < 0.1) {
    b[15] = 1; // ::1
    return b;
  }
  if (r < 0.15) {
    b[10] = 0xff;
    b[11] = 0xff;
    rng.bytes(4).copy(b, 12); // ::ffff:a.b.c.d
    return b;
  }
  for (let g = 0; g < 8; g++) {
    if (rng.chance(0.4)) continue; // a zero group, so that runs of them form
    b.writeUInt16BE(rng.chance(0.5) ? rng.int(1, 0xff) : rng.int(1, 0xffff), g * 2);
  }
  return b;
}

interface San {
  der: Buffer;
  /** Our export for it, or undefined for the forms we do not export. */
  exported?: string;
}

function randomSan(rng: Rng): San {
  const r = rng.next();
  if (r < 0.4) {
    const name = dnsName(rng);
    return { der: tlv(0x82, Buffer.from(name, "latin1")), exported: `DNS:${name}` };
  }
  if (r < 0.55) {
    const ip = rng.bytes(4);
    return { der: tlv(0x87, ip), exported: `IP:${[...ip].join(".")}` };
  }
  if (r < 0.67) return { der: tlv(0x87, ipv6(rng)), exported: "IP6" };
  if (r < 0.75) {
    const email = `${randomText(rng, LABEL_CHARS, 1, 10)}.${randomText(rng, LABEL_CHARS, 1, 5)}@${dnsName(rng)}`;
    return { der: tlv(0x81, Buffer.from(email, "latin1")), exported: `email:${email}` };
  }
  if (r < 0.83) {
    const uri = `${rng.pick(["https", "http", "spiffe", "urn"])}://${dnsName(rng)}/${randomText(rng, [...LABEL_CHARS, "/", "?", "=", "&", ",", "%"], 0, 20)}`;
    return { der: tlv(0x86, Buffer.from(uri, "latin1")), exported: `URI:${uri}` };
  }
  if (r < 0.89) return { der: tlv(0xa4, randomName(rng)) }; // directoryName: [4] EXPLICIT Name
  if (r < 0.95) {
    // otherName: [0] IMPLICIT SEQUENCE { type-id, [0] EXPLICIT value }: a UPN, or a private type.
    const upn = rng.chance(0.5);
    const value = upn ? tlv(0x0c, Buffer.from(`${randomText(rng, LABEL_CHARS, 1, 8)}@${dnsName(rng)}`, "utf8")) : octets(rng.bytes(rng.int(0, 16)));
    return { der: tlv(0xa0, oid(upn ? "1.3.6.1.4.1.311.20.2.3" : `1.3.6.1.4.1.55555.20.${rng.int(0, 9)}`), explicit(0, value)) };
  }
  return { der: tlv(0x88, oid(`1.3.6.1.4.1.55555.30.${rng.int(0, 999)}`).subarray(2)) }; // registeredID: [8] IMPLICIT OID
}

// ---------------------------------------------------------------------------------------------
// Extensions and the certificate.

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return critical ? seq(oid(id), bool(true), octets(value)) : seq(oid(id), octets(value));
}

/** keyUsage's BIT STRING in DER: named bit n as 1 << n, trailing zero bits left out. */
function keyUsageDer(flags: number): Buffer {
  const highest = 31 - Math.clz32(flags);
  const octets = Buffer.alloc((highest >> 3) + 1);
  for (let n = 0; n <= highest; n++) if (flags & (1 << n)) octets[n >> 3]! |= 0x80 >> (n & 7);
  return tlv(0x03, Buffer.from([7 - (highest & 7)]), octets);
}

/** Purposes real certificates name (serverAuth … OCSPSigning, anyExtendedKeyUsage, Microsoft's and Kerberos'). */
const PURPOSES = ["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2", "1.3.6.1.5.5.7.3.3", "1.3.6.1.5.5.7.3.4", "1.3.6.1.5.5.7.3.8", "1.3.6.1.5.5.7.3.9", "2.5.29.37.0", "1.3.6.1.4.1.311.20.2.2", "1.3.6.1.5.2.3.5"];

/** The set of purposes as the record holds it. */
const purposeSet = (oids: readonly string[]): string => [...new Set(oids)].sort().join(",");

interface Generated {
  der: Buffer;
  /** What the generator put in: the facts that have one right answer whatever the reader. */
  truth: { notBefore: number; notAfter: number; isCA: boolean; keyUsage: number; extendedKeyUsage: string; keyAlgorithm: string; keyBits: number; signatureAlgorithm: string; sansExported: string[] };
  label: string;
  /** @peculiar/x509 misreads something in the names (see peculiarBlindSpots). */
  peculiarNamesUnreliable: boolean;
}

function generate(rng: Rng, pool: PoolKey[], index: number): Generated {
  peculiarBlindSpots.universalAstral = false;
  peculiarBlindSpots.bigArc = false;
  const subjectKey = rng.pick(pool);
  const selfSigned = rng.chance(0.3);
  const issuerKey = selfSigned ? subjectKey : rng.pick(pool);
  const sigAlg = rng.pick(SIG_ALGS[sigFamily(issuerKey.kind)]);
  const subject = randomName(rng);
  const issuer = selfSigned ? subject : randomName(rng);

  const a = randomInstant(rng);
  const b = randomInstant(rng);
  const [notBefore, notAfter] = a <= b ? [a, b] : [b, a];
  const validity = seq(encodeTime(notBefore, rng.chance(0.03)), encodeTime(notAfter, rng.chance(0.03)));

  const v1 = rng.chance(0.04);
  // The usage extensions draw from their own generator, so that the rest of the corpus is what the
  // seed made before they had any variety.
  const usageRng = new Rng(SEED ^ Math.imul(index + 1, 0x9e3779b1));
  const exts: Buffer[] = [];
  let isCA = false;
  let keyUsage = 0;
  let purposes: string[] = [];
  const sansExported: string[] = [];
  if (!v1) {
    if (rng.chance(0.8)) {
      isCA = rng.chance(0.4);
      const content = isCA ? (rng.chance(0.5) ? [bool(true), tlv(0x02, Buffer.from([rng.int(0, 5)]))] : [bool(true)]) : [];
      exts.push(extension("2.5.29.19", rng.chance(0.7), seq(...content)));
    }
    if (rng.chance(0.3)) {
      // keyUsage: the usual digitalSignature (+ keyCertSign and cRLSign for a CA), or any of the nine bits.
      keyUsage = usageRng.chance(0.5) ? (isCA ? 0x61 : 0x01) : usageRng.int(1, 0x1ff);
      exts.push(extension("2.5.29.15", usageRng.chance(0.8), keyUsageDer(keyUsage)));
    }
    if (rng.chance(0.75)) {
      const n = rng.chance(0.015) ? rng.int(100, 250) : rng.chance(0.2) ? rng.int(6, 40) : rng.int(1, 5);
      const sans = Array.from({ length: n }, () => randomSan(rng));
      for (const san of sans) if (san.exported) sansExported.push(san.exported);
      exts.push(extension("2.5.29.17", subject.length === 2 || rng.chance(0.1), seq(...sans.map((s) => s.der))));
    }
    if (rng.chance(0.5)) exts.push(extension("2.5.29.14", false, octets(rng.bytes(20))));
    const unknown = rng.chance(0.25) ? rng.int(1, 3) : 0;
    for (let i = 0; i < unknown; i++) {
      const value = rng.chance(0.5) ? seq(tlv(0x0c, Buffer.from("opaque", "latin1")), tlv(0x02, rng.bytes(3))) : octets(rng.bytes(rng.int(0, 40)));
      exts.push(extension(`1.3.6.1.4.1.55555.40.${index}.${i}`, rng.chance(0.8), value));
    }
    // Extensions in any order.
    for (let i = exts.length - 1; i > 0; i--) {
      const j = rng.int(0, i);
      [exts[i], exts[j]] = [exts[j]!, exts[i]!];
    }
    if (usageRng.chance(0.3)) {
      // extendedKeyUsage: known purposes and private ones, repeats included, in any order, anywhere.
      purposes = Array.from({ length: usageRng.int(1, 6) }, () => (usageRng.chance(0.8) ? usageRng.pick(PURPOSES) : `1.3.6.1.4.1.55555.37.${usageRng.int(0, 3)}`));
      exts.splice(usageRng.int(0, exts.length), 0, extension("2.5.29.37", usageRng.chance(0.2), seq(...purposes.map(oid))));
    }
  }

  const tbs = seq(
    ...(v1 ? [] : [explicit(0, tlv(0x02, Buffer.from([2])))]),
    integerRaw(randomSerial(rng)),
    sigAlg.der,
    issuer,
    validity,
    subject,
    subjectKey.spki,
    ...(exts.length > 0 ? [explicit(3, seq(...exts))] : []),
  );
  const der = seq(tbs, sigAlg.der, bitString(sigAlg.sign(tbs, issuerKey.privateKey)));
  return {
    der,
    truth: { notBefore, notAfter, isCA, keyUsage, extendedKeyUsage: purposeSet(purposes), keyAlgorithm: subjectKey.algorithm, keyBits: subjectKey.bits, signatureAlgorithm: sigAlg.name, sansExported },
    label: `certificate ${index} (${subjectKey.kind} signed by ${issuerKey.kind}, ${sigAlg.name})`,
    peculiarNamesUnreliable: peculiarBlindSpots.universalAstral || peculiarBlindSpots.bigArc,
  };
}

// ---------------------------------------------------------------------------------------------
// The readers, each brought to one form (see the header for what is normalised and why).

/** Attribute type names each reader writes, to OIDs: ours (dn.ts), OpenSSL's short names, @peculiar/x509's. */
const TYPE_OIDS: Record<string, string> = {
  CN: "2.5.4.3", SN: "2.5.4.4", serialNumber: "2.5.4.5", C: "2.5.4.6", L: "2.5.4.7", ST: "2.5.4.8", STREET: "2.5.4.9", street: "2.5.4.9",
  O: "2.5.4.10", OU: "2.5.4.11", title: "2.5.4.12", T: "2.5.4.12", businessCategory: "2.5.4.15", postalCode: "2.5.4.17",
  GN: "2.5.4.42", G: "2.5.4.42", initials: "2.5.4.43", I: "2.5.4.43", generationQualifier: "2.5.4.44", dnQualifier: "2.5.4.46",
  pseudonym: "2.5.4.65", organizationIdentifier: "2.5.4.97", UID: "0.9.2342.19200300.100.1.1", DC: "0.9.2342.19200300.100.1.25",
  emailAddress: "1.2.840.113549.1.9.1", E: "1.2.840.113549.1.9.1",
};

const typeOid = (name: string) => TYPE_OIDS[name] ?? (/^\d+(\.\d+)+$/.test(name) ? name : `unknown type name ${name}`);

/** The text of a DER-encoded string value (a "#hex" attribute value). */
function derStringText(hexValue: string): string {
  const b = Buffer.from(hexValue, "hex");
  let p = 1;
  let n = b[p++]!;
  if (n >= 0x80) {
    const k = n & 0x7f;
    n = 0;
    for (let i = 0; i < k; i++) n = n * 256 + b[p++]!;
  }
  const c = b.subarray(p, p + n);
  switch (b[0]) {
    case 0x0c:
      return c.toString("utf8");
    case 0x1e:
      return Buffer.from(c).swap16().toString("utf16le");
    case 0x1c: {
      let s = "";
      for (let i = 0; i + 3 < c.length; i += 4) s += String.fromCodePoint(c.readUInt32BE(i));
      return s;
    }
    default:
      return c.toString("latin1");
  }
}

/**
 * Splits `s` at each unescaped `sep`, leaving escapes in place. RFC 4514 and OpenSSL escape with a
 * backslash and either one character or two hex digits.
 */
function splitUnescaped(s: string, sep: string): string[] {
  const out: string[] = [];
  let cur = "";
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === "\\" && i + 1 < s.length) {
      cur += c + s[i + 1];
      i++;
    } else if (c === sep) {
      out.push(cur);
      cur = "";
    } else {
      cur += c;
    }
  }
  out.push(cur);
  return out;
}

/** An escaped attribute value's text: `\c` is c, `\XX` a UTF-8 byte, an unescaped leading `#` DER hex. */
function unescapeValue(v: string): string {
  if (v.startsWith("#")) return derStringText(v.slice(1));
  const bytes: number[] = [];
  const chars = [...v]; // code points: a surrogate pair is one character
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i]!;
    if (c === "\\" && /^[0-9A-Fa-f]{2}$/.test((chars[i + 1] ?? "") + (chars[i + 2] ?? ""))) {
      bytes.push(parseInt(chars[i + 1]! + chars[i + 2]!, 16));
      i += 2;
    } else if (c === "\\") {
      bytes.push(...Buffer.from(chars[i + 1] ?? "", "utf8"));
      i++;
    } else {
      bytes.push(...Buffer.from(c, "utf8"));
    }
  }
  return Buffer.from(bytes).toString("utf8");
}

/** RDNs in encoding order, each the `OID=value` of its attributes (sorted when compared: see sortedRdns). */
type NormName = string[][];

function normAttribute(typeName: string, value: string): string {
  return `${typeOid(typeName)}=${value}`;
}

/** Our RFC 4514 string: RDNs last first, "," between them, "+" inside one. */
function normRfc4514(dn: string): NormName {
  if (dn === "") return [];
  return splitUnescaped(dn, ",")
    .reverse()
    .map((rdn) =>
      splitUnescaped(rdn, "+")
        .map((atv) => {
          const eq = atv.indexOf("=");
          return normAttribute(atv.slice(0, eq), unescapeValue(atv.slice(eq + 1)));
        }),
    );
}

/** node:crypto's subject or issuer: one RDN per line in encoding order, " + " inside one. */
function normNodeName(text: string | undefined): NormName {
  if (!text) return [];
  return text.split("\n").map((line) =>
    splitUnescaped(line, "+")
      .map((atv, i, all) => {
        // " + " separates; an escaped space at a value's end stays (it is "\ ").
        let part = atv;
        if (i > 0 && part.startsWith(" ")) part = part.slice(1);
        // The separator's space, unless the backslashes before it escape it (an odd number).
        if (i < all.length - 1 && part.endsWith(" ") && (/(\\*) $/.exec(part)![1]!.length % 2 === 0)) part = part.slice(0, -1);
        const eq = part.indexOf("=");
        return normAttribute(part.slice(0, eq), unescapeValue(part.slice(eq + 1)));
      }),
  );
}

/** @peculiar/x509's JSON name: [{ type: [values] }] in encoding order; values unescaped, "#hex" for other types. */
function normPeculiarName(name: x509.Name): NormName {
  return name.toJSON().map((rdn) => {
    const atvs: string[] = [];
    for (const [type, values] of Object.entries(rdn)) {
      for (const v of values) atvs.push(normAttribute(type, /^#[0-9a-f]*$/i.test(v) ? derStringText(v.slice(1)) : v));
    }
    return atvs;
  });
}

/** First commonName in encoding order. */
function cnOf(name: NormName): string {
  for (const rdn of name) for (const atv of rdn) if (atv.startsWith("2.5.4.3=")) return atv.slice("2.5.4.3=".length);
  return "";
}

/** An IPv4 or IPv6 address's 4 or 16 octets in hex, whatever its text form. */
function ipOctets(text: string): string {
  if (!text.includes(":")) return Buffer.from(text.split(".").map(Number)).toString("hex");
  let s = text;
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(s);
  if (v4) s = s.slice(0, v4.index) + ((+v4[1]! << 8) | +v4[2]!).toString(16) + ":" + ((+v4[3]! << 8) | +v4[4]!).toString(16);
  const [head, tail] = s.includes("::") ? s.split("::") : [s, undefined];
  const h = head ? head.split(":") : [];
  const tl = tail === undefined ? [] : tail ? tail.split(":") : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - tl.length).fill("0"), ...tl];
  return groups.map((g: string) => g.padStart(4, "0").toLowerCase()).join("");
}

/** A SAN brought to one form: IP addresses as octets. */
function normSan(san: string): string {
  return san.startsWith("IP:") ? `IP:${ipOctets(san.slice(3))}` : san;
}

/** node:crypto's subjectAltName: "DNS:a, IP Address:b, …", values with special characters JSON-quoted. */
function nodeSans(text: string | undefined): string[] {
  if (!text) return [];
  const entries: string[] = [];
  let i = 0;
  while (i < text.length) {
    const colon = text.indexOf(":", i);
    const type = text.slice(i, colon);
    let value: string;
    let next: number;
    if (text[colon + 1] === '"') {
      // A JSON string: find its closing quote.
      let j = colon + 2;
      while (text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
      value = JSON.parse(text.slice(colon + 1, j + 1)) as string;
      next = j + 1;
    } else {
      const comma = text.indexOf(", ", colon);
      next = comma < 0 ? text.length : comma;
      value = text.slice(colon + 1, next);
    }
    entries.push(`${type}:${value}`);
    i = next + 2;
  }
  const out: string[] = [];
  for (const e of entries) {
    if (e.startsWith("DNS:") || e.startsWith("email:") || e.startsWith("URI:")) out.push(e);
    else if (e.startsWith("IP Address:")) out.push(`IP:${e.slice("IP Address:".length)}`);
  }
  return out;
}

/** OpenSSL's "Mon DD HH:MM:SS YYYY GMT" as Unix seconds. */
function opensslTime(text: string): number {
  const m = /^(\w{3}) +(\d+) (\d\d):(\d\d):(\d\d) (\d+) GMT$/.exec(text.trim());
  if (!m) return NaN;
  const month = "JanFebMarAprMayJunJulAugSepOctNovDec".indexOf(m[1]!) / 3;
  const d = new Date(0);
  d.setUTCFullYear(+m[6]!, month, +m[2]!);
  d.setUTCHours(+m[3]!, +m[4]!, +m[5]!, 0);
  return d.getTime() / 1000;
}

/** Every compared field, as one reader sees it. */
interface View {
  notBefore: number;
  notAfter: number;
  serial: bigint | string;
  subject: NormName;
  issuer: NormName;
  subjectCN: string;
  issuerCN: string;
  sans: string[];
  isCA: boolean;
  keyUsage?: number;
  extendedKeyUsage: string;
  keyAlgorithm: string;
  keyBits: number;
  signatureAlgorithm?: string;
  fingerprintSha256: string;
}

function ourView(r: CertRecord): View {
  return {
    notBefore: r.notBefore,
    notAfter: r.notAfter,
    serial: BigInt("0x" + r.serial),
    subject: normRfc4514(r.subject),
    issuer: normRfc4514(r.issuer),
    subjectCN: r.subjectCN,
    issuerCN: r.issuerCN,
    sans: r.sans.map(normSan),
    isCA: r.isCA,
    keyUsage: r.keyUsage,
    extendedKeyUsage: r.extendedKeyUsage,
    keyAlgorithm: r.keyAlgorithm,
    keyBits: r.keyBits,
    signatureAlgorithm: r.signatureAlgorithm,
    fingerprintSha256: r.fingerprintSha256,
  };
}

function nodeView(der: Buffer): View {
  const c = new NodeX509(der);
  const subject = normNodeName(c.subject);
  const issuer = normNodeName(c.issuer);
  const key = c.publicKey;
  const type = key.asymmetricKeyType;
  const details = key.asymmetricKeyDetails ?? {};
  const curveBits: Record<string, number> = { prime256v1: 256, secp384r1: 384, secp521r1: 521 };
  return {
    notBefore: opensslTime(c.validFrom),
    notAfter: opensslTime(c.validTo),
    serial: BigInt("0x" + c.serialNumber),
    subject,
    issuer,
    subjectCN: cnOf(subject),
    issuerCN: cnOf(issuer),
    sans: nodeSans(c.subjectAltName).map(normSan),
    isCA: c.ca,
    extendedKeyUsage: purposeSet(c.keyUsage ?? []),
    keyAlgorithm: type === "rsa" ? "RSA" : type === "ec" ? "ECDSA" : type === "ed25519" ? "Ed25519" : type === "ed448" ? "Ed448" : String(type),
    keyBits: type === "rsa" ? details.modulusLength! : type === "ec" ? curveBits[details.namedCurve!]! : type === "ed25519" ? 256 : 456,
    fingerprintSha256: c.fingerprint256.replace(/:/g, "").toLowerCase(),
  };
}

const PECULIAR_HASH: Record<string, string> = { "SHA-1": "SHA1", "SHA-256": "SHA256", "SHA-384": "SHA384", "SHA-512": "SHA512" };

function peculiarSignatureName(alg: Algorithm & { hash?: Algorithm; namedCurve?: string }): string {
  // @peculiar/x509 names both EdDSA algorithms "EdDSA" and tells them apart by namedCurve.
  if (alg.name === "EdDSA") return alg.namedCurve ?? alg.name;
  const hash = alg.hash ? PECULIAR_HASH[alg.hash.name] ?? alg.hash.name : "";
  if (alg.name === "RSASSA-PKCS1-v1_5") return `${hash.toLowerCase()}WithRSAEncryption`;
  if (alg.name === "RSA-PSS") return `RSASSA-PSS-${hash}`;
  if (alg.name === "ECDSA") return `ecdsa-with-${hash}`;
  return alg.name;
}

/** RSA modulus bits from the SPKI @peculiar/x509 read, through its own ASN.1 schema. */
function peculiarRsaBits(spki: ArrayBuffer): number {
  const info = AsnConvert.parse(spki, SubjectPublicKeyInfo);
  const key = AsnConvert.parse(info.subjectPublicKey, RSAPublicKey);
  let m = new Uint8Array(key.modulus);
  while (m.length > 0 && m[0] === 0) m = m.subarray(1);
  return m.length === 0 ? 0 : (m.length - 1) * 8 + (32 - Math.clz32(m[0]!));
}

async function peculiarView(der: Buffer): Promise<View> {
  const c = new x509.X509Certificate(new Uint8Array(der));
  const subject = normPeculiarName(c.subjectName);
  const issuer = normPeculiarName(c.issuerName);
  const sanExt = c.getExtension(x509.SubjectAlternativeNameExtension);
  const prefix: Record<string, string> = { dns: "DNS:", ip: "IP:", email: "email:", url: "URI:" };
  const sans = (sanExt?.names.items ?? []).filter((n) => n.type in prefix).map((n) => normSan(prefix[n.type]! + n.value));
  const alg = c.publicKey.algorithm as Algorithm & { namedCurve?: string };
  const curveBits: Record<string, number> = { "P-256": 256, "P-384": 384, "P-521": 521 };
  const keyAlgorithm = alg.name.startsWith("RSA") ? "RSA" : alg.name === "ECDSA" || alg.name === "EC" ? "ECDSA" : alg.name === "EdDSA" ? alg.namedCurve ?? alg.name : alg.name;
  const keyBits = keyAlgorithm === "RSA" ? peculiarRsaBits(c.publicKey.rawData) : keyAlgorithm === "ECDSA" ? curveBits[alg.namedCurve!] ?? 0 : keyAlgorithm === "Ed25519" ? 256 : keyAlgorithm === "Ed448" ? 456 : 0;
  return {
    notBefore: c.notBefore.getTime() / 1000,
    notAfter: c.notAfter.getTime() / 1000,
    serial: BigInt("0x" + c.serialNumber),
    subject,
    issuer,
    subjectCN: cnOf(subject),
    issuerCN: cnOf(issuer),
    sans,
    isCA: c.getExtension(x509.BasicConstraintsExtension)?.ca ?? false,
    keyUsage: c.getExtension(x509.KeyUsagesExtension)?.usages ?? 0,
    extendedKeyUsage: purposeSet((c.getExtension(x509.ExtendedKeyUsageExtension)?.usages ?? []).map(String)),
    keyAlgorithm,
    keyBits,
    signatureAlgorithm: peculiarSignatureName(c.signatureAlgorithm as Algorithm & { hash?: Algorithm; namedCurve?: string }),
    fingerprintSha256: Buffer.from(await c.getThumbprint("SHA-256")).toString("hex"),
  };
}

// ---------------------------------------------------------------------------------------------
// OpenSSL, the arbiter.

interface OpensslView {
  serial: string;
  notBefore: number;
  notAfter: number;
  subject: string;
  issuer: string;
  fingerprintSha256: string;
  signatureAlgorithm: string;
  text: string;
}

let scratch: string | undefined;

function opensslView(der: Buffer): OpensslView {
  scratch ??= mkdtempSync(join(tmpdir(), "parser-differential-"));
  const file = join(scratch, "cert.der");
  writeFileSync(file, der);
  const run = spawnSync("openssl", ["x509", "-inform", "DER", "-in", file, "-noout", "-serial", "-dates", "-subject", "-issuer", "-fingerprint", "-sha256", "-nameopt", "RFC2253,-esc_msb", "-text"], { encoding: "utf8" });
  if (run.status !== 0) throw new Error(`openssl x509 failed: ${run.stderr}`);
  const line = (prefix: string) => run.stdout.split("\n").find((l) => l.startsWith(prefix))?.slice(prefix.length) ?? "";
  return {
    serial: line("serial="),
    notBefore: opensslTime(line("notBefore=")),
    notAfter: opensslTime(line("notAfter=")),
    subject: line("subject="),
    issuer: line("issuer="),
    fingerprintSha256: line("sha256 Fingerprint=").replace(/:/g, "").toLowerCase(),
    signatureAlgorithm: /Signature Algorithm: (\S+)/.exec(run.stdout)?.[1] ?? "",
    text: run.stdout,
  };
}

const FIELDS: (keyof View)[] = ["notBefore", "notAfter", "serial", "subject", "issuer", "subjectCN", "issuerCN", "sans", "isCA", "keyUsage", "extendedKeyUsage", "keyAlgorithm", "keyBits", "signatureAlgorithm", "fingerprintSha256"];

const same = (a: unknown, b: unknown) => JSON.stringify(a, (_k, v: unknown) => (typeof v === "bigint" ? v.toString(16) : v)) === JSON.stringify(b, (_k, v: unknown) => (typeof v === "bigint" ? v.toString(16) : v));

interface Disagreement {
  label: string;
  field: keyof View;
  ours: unknown;
  node: unknown;
  peculiar: unknown;
  der: Buffer;
}

/** Order inside a multi-valued RDN is free (RFC 4514 §2.2: "in any order"). */
const sortedRdns = (name: NormName): NormName => name.map((rdn) => [...rdn].sort());

/** keyUsage's keyCertSign bit, as the record holds it. */
const KEY_CERT_SIGN = 1 << 5;

const NAME_FIELDS = new Set<keyof View>(["subject", "issuer", "subjectCN", "issuerCN"]);

function compare(label: string, der: Buffer, ours: View, node: View, peculiar: View, peculiarNamesUnreliable: boolean): Disagreement[] {
  const out: Disagreement[] = [];
  for (const field of FIELDS) {
    // node:crypto on Node 20 reads no signature algorithm and no key usage bits, and its `ca` is
    // OpenSSL's X509_check_ca: basicConstraints cA, but false when a keyUsage leaves out keyCertSign.
    const norm = (v: unknown) => (field === "subject" || field === "issuer" ? sortedRdns(v as NormName) : v);
    const mine = norm(ours[field]);
    const nodeReadsIt = !(field === "signatureAlgorithm" || field === "keyUsage" || (field === "isCA" && ours.keyUsage !== 0 && (ours.keyUsage! & KEY_CERT_SIGN) === 0));
    const nodeValue = norm(nodeReadsIt ? node[field] : ours[field]);
    const peculiarValue = norm(peculiarNamesUnreliable && NAME_FIELDS.has(field) ? ours[field] : peculiar[field]);
    if (!same(mine, nodeValue) || !same(mine, peculiarValue)) out.push({ label, field, ours: mine, node: nodeValue, peculiar: peculiarValue, der });
  }
  return out;
}

/** A value for a test message: JSON, ASCII only (a raw U+2028 or control character would break the TAP stream). */
const show = (v: unknown) =>
  (JSON.stringify(v, (_k, x: unknown) => (typeof x === "bigint" ? x.toString(16) : x)) ?? "undefined").replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);

/** Reads one certificate with our parser, DER or PEM as the seed says: exactly one record. */
function ours(der: Buffer, pem: boolean): CertRecord {
  const input = pem ? Buffer.from(`-----BEGIN CERTIFICATE-----\n${der.toString("base64").replace(/.{64}/g, "$&\n")}\n-----END CERTIFICATE-----\n`) : der;
  const records = parseCertificates(input);
  if (records.length !== 1) throw new Error(`expected one record, got ${records.length}`);
  return records[0]!;
}

t.test(`${CERTIFICATES} generated certificates: every exported field as @peculiar/x509 and node:crypto read it`, async (t) => {
  t.teardown(() => {
    if (scratch) rmSync(scratch, { recursive: true, force: true });
    scratch = undefined;
  });
  const rng = new Rng(SEED);
  const pool = POOL_KINDS.map(makeKey);
  const disagreements: Disagreement[] = [];
  let truthMismatches = 0;
  let opensslChecked = 0;
  const keyUsagesSeen = new Set<number>();
  const purposeSetsSeen = new Set<string>();
  const every = Math.max(1, Math.floor(CERTIFICATES / Math.max(1, OPENSSL_SAMPLE)));
  for (let i = 0; i < CERTIFICATES; i++) {
    const g = generate(rng, pool, i);
    const record = ours(g.der, rng.chance(0.3));
    const mine = ourView(record);
    let nv: View;
    try {
      nv = nodeView(g.der);
    } catch (err) {
      t.fail(`${g.label}: node:crypto refuses it: ${String(err)}`, { der: g.der.toString("base64") });
      continue;
    }
    const pv = await peculiarView(g.der);
    const found = compare(g.label, g.der, mine, nv, pv, g.peculiarNamesUnreliable);
    disagreements.push(...found);
    // The generator's own facts: one right answer whatever the reader.
    const truth = g.truth;
    keyUsagesSeen.add(truth.keyUsage);
    purposeSetsSeen.add(truth.extendedKeyUsage);
    const expectedSans = truth.sansExported.filter((s) => s !== "IP6");
    const mineSans = record.sans.filter((s) => !(s.startsWith("IP:") && s.includes(":", 3)));
    for (const [what, a, b] of [
      ["notBefore", mine.notBefore, truth.notBefore],
      ["notAfter", mine.notAfter, truth.notAfter],
      ["isCA", mine.isCA, truth.isCA],
      ["keyUsage", mine.keyUsage, truth.keyUsage],
      ["extendedKeyUsage", mine.extendedKeyUsage, truth.extendedKeyUsage],
      ["keyAlgorithm", mine.keyAlgorithm, truth.keyAlgorithm],
      ["keyBits", mine.keyBits, truth.keyBits],
      ["signatureAlgorithm", mine.signatureAlgorithm, truth.signatureAlgorithm],
      ["sans (but IPv6)", mineSans, expectedSans],
      ["number of SANs", record.sans.length, truth.sansExported.length],
    ] as const) {
      if (!same(a, b)) {
        truthMismatches++;
        t.fail(`${g.label}: ${what} ${show(a)}, generated ${show(b)}`);
      }
    }
    // Ours is RFC 5952: the WHATWG URL parser's IPv6 serialiser writes the same canonical form.
    for (const san of record.sans) {
      if (san.startsWith("IP:") && san.includes(":", 3)) {
        const canonical = new URL(`http://[${san.slice(3)}]/`).hostname.slice(1, -1);
        if (canonical !== san.slice(3)) t.fail(`${g.label}: ${san} is not RFC 5952 (${canonical})`);
      }
    }
    if (i % every === 0 || found.length > 0) {
      opensslChecked++;
      const o = opensslView(g.der);
      const checks: [string, unknown, unknown][] = [
        ["serial", record.serial, o.serial.toLowerCase()],
        ["notBefore", record.notBefore, o.notBefore],
        ["notAfter", record.notAfter, o.notAfter],
        ["subject", sortedRdns(normRfc4514(record.subject)), sortedRdns(normRfc4514(o.subject))],
        ["issuer", sortedRdns(normRfc4514(record.issuer)), sortedRdns(normRfc4514(o.issuer))],
        ["fingerprint", record.fingerprintSha256, o.fingerprintSha256],
      ];
      for (const [what, a, b] of checks) if (!same(a, b)) t.fail(`${g.label}: ${what} ours ${show(a)}, openssl ${show(b)}`, { der: g.der.toString("base64") });
    }
  }
  for (const d of disagreements.slice(0, 40)) {
    t.fail(`${d.label}: ${d.field}: ours ${show(d.ours)}, node:crypto ${show(d.node)}, @peculiar/x509 ${show(d.peculiar)}`);
  }
  t.equal(disagreements.length, 0, "no field on which a library disagrees with us");
  t.equal(truthMismatches, 0, "no field unlike what was generated");
  t.ok(keyUsagesSeen.size > 50 && purposeSetsSeen.size > 50, `${keyUsagesSeen.size} key usages and ${purposeSetsSeen.size} purpose sets compared`);
  t.ok(opensslChecked >= Math.min(OPENSSL_SAMPLE, CERTIFICATES) / 2, `${opensslChecked} certificates also read by openssl x509`);
});

// ---------------------------------------------------------------------------------------------
// Cases where the readers disagreed, each decided by `openssl x509` and kept as a regression case.

function selfSigned(name: Buffer, key: PoolKey): Buffer {
  const alg = SIG_ALGS[sigFamily(key.kind)][0]!;
  const validity = seq(encodeTime(Date.parse("2049-12-31T23:59:59Z") / 1000, false), encodeTime(Date.parse("2050-01-01T00:00:00Z") / 1000, false));
  const tbs = seq(explicit(0, tlv(0x02, Buffer.from([2]))), integerRaw(Buffer.from([0x00, 0x80, 0x01])), alg.der, name, validity, name, key.spki);
  return seq(tbs, alg.der, bitString(alg.sign(tbs, key.privateKey)));
}

const rdn = (type: string, value: Buffer) => set(seq(oid(type), value));

t.test("decided by OpenSSL", async (t) => {
  const key = makeKey("ed25519");
  t.teardown(() => {
    if (scratch) rmSync(scratch, { recursive: true, force: true });
    scratch = undefined;
  });

  t.test("a type written as a dotted OID has its value as #hex (RFC 4514 §2.4): was the string, now fixed in dn.ts", async (t) => {
    const der = selfSigned(seq(rdn("2.5.4.3", tlv(0x0c, Buffer.from("x"))), rdn("1.3.6.1.4.1.55555.1.1", tlv(0x0c, Buffer.from("a,b")))), key);
    const [r] = parseCertificates(der);
    const o = opensslView(der);
    t.equal(r!.subject, "1.3.6.1.4.1.55555.1.1=#0c03612c62,CN=x");
    t.equal(r!.subject.toLowerCase(), o.subject.toLowerCase(), "openssl -nameopt RFC2253 writes the same (uppercase hex)");
    t.equal(r!.subjectCN, "x");
  });

  t.test("multi-valued RDN: ours in encoding order, OpenSSL reversed; RFC 4514 allows any order, compared as sets", async (t) => {
    const der = selfSigned(seq(set(seq(oid("2.5.4.3"), tlv(0x0c, Buffer.from("a"))), seq(oid("2.5.4.10"), tlv(0x0c, Buffer.from("b"))))), key);
    const [r] = parseCertificates(der);
    t.equal(r!.subject, "CN=a+O=b");
    t.equal(opensslView(der).subject, "O=b+CN=a");
  });

  t.test("@peculiar/x509 misreads astral UniversalString characters and OID arcs past 2^53; ours is OpenSSL's reading", async (t) => {
    const universal = Buffer.alloc(8);
    universal.writeUInt32BE(0x1f600, 0);
    universal.writeUInt32BE(0x41, 4);
    const uuidArc = "2.25.166278134023618656404742912181799716801";
    const der = selfSigned(seq(rdn("2.5.4.3", tlv(0x1c, universal)), rdn(uuidArc, tlv(0x13, Buffer.from("u")))), key);
    const [r] = parseCertificates(der);
    const o = opensslView(der);
    t.equal(r!.subjectCN, "\u{1f600}A");
    t.same(sortedRdns(normRfc4514(r!.subject)), sortedRdns(normRfc4514(o.subject)), "same name as openssl");
    t.equal(r!.subject, `${uuidArc}=#130175,CN=\u{1f600}A`);
    const p = new x509.X509Certificate(new Uint8Array(der));
    t.not(p.subjectName.getField("CN")[0], "\u{1f600}A", "@peculiar/x509 truncates the code point to 16 bits");
    t.notOk(JSON.stringify(p.subjectName.toJSON()).includes(uuidArc), "@peculiar/x509 does not print the UUID arc");
  });

  t.test("VisibleString in a DN: OpenSSL (so node:crypto) refuses the whole certificate; we read it, as for invalid UTF-8", async (t) => {
    const der = selfSigned(seq(rdn("2.5.4.3", tlv(0x1a, Buffer.from("visible")))), key);
    t.equal(parseCertificates(der)[0]!.subjectCN, "visible");
    t.throws(() => new NodeX509(der), "node:crypto refuses it");
    t.throws(() => opensslView(der), "openssl x509 refuses it");
  });

  t.test("TeletexString whose bytes are valid UTF-8: ISO-8859-1 as all three read it; was UTF-8, now fixed in dn.ts", async (t) => {
    const der = selfSigned(seq(rdn("2.5.4.10", tlv(0x14, Buffer.from([0x79, 0xd7, 0xa1, 0x66])))), key);
    t.equal(parseCertificates(der)[0]!.subject, "O=y\u00d7\u00a1f");
    t.same(normRfc4514(opensslView(der).subject), [["2.5.4.10=y\u00d7\u00a1f"]]);
    t.equal(new NodeX509(der).subject, "O=y\u00d7\u00a1f");
  });

  t.test("serial with DER's sign octet: exported without it, as openssl -serial prints it", async (t) => {
    const der = selfSigned(seq(rdn("2.5.4.3", tlv(0x0c, Buffer.from("s")))), key);
    t.equal(parseCertificates(der)[0]!.serial, "8001");
    t.equal(opensslView(der).serial.toLowerCase(), "8001");
    t.equal(new NodeX509(der).serialNumber.toLowerCase(), "8001");
  });
});
