/**
 * Decodes one DER X.509 certificate into a CertRecord with the light reader in der.ts.
 * Only the fields the record needs are read; signatures are not verified (that is the TLS
 * prober's job), so this is a reader of facts, not a validator.
 */
import { hash } from "node:crypto";
import type { CertRecord } from "./record.js";
import { DerError, TAG, type Tlv, asBuffer, children, decodeOid, decodeTime, expect, hex, readTlv } from "./der.js";
import { type DecodedName, decodeName, decodeString } from "./dn.js";

const SIGNATURE_ALGORITHMS: Record<string, string> = {
  "1.2.840.113549.1.1.2": "md2WithRSAEncryption",
  "1.2.840.113549.1.1.4": "md5WithRSAEncryption",
  "1.2.840.113549.1.1.5": "sha1WithRSAEncryption",
  "1.3.14.3.2.29": "sha1WithRSAEncryption",
  "1.2.840.113549.1.1.11": "sha256WithRSAEncryption",
  "1.2.840.113549.1.1.12": "sha384WithRSAEncryption",
  "1.2.840.113549.1.1.13": "sha512WithRSAEncryption",
  "1.2.840.113549.1.1.14": "sha224WithRSAEncryption",
  "1.2.840.10045.4.1": "ecdsa-with-SHA1",
  "1.2.840.10045.4.3.1": "ecdsa-with-SHA224",
  "1.2.840.10045.4.3.2": "ecdsa-with-SHA256",
  "1.2.840.10045.4.3.3": "ecdsa-with-SHA384",
  "1.2.840.10045.4.3.4": "ecdsa-with-SHA512",
  "1.3.101.112": "Ed25519",
  "1.3.101.113": "Ed448",
  "1.2.840.10040.4.3": "dsa-with-SHA1",
  "2.16.840.1.101.3.4.3.1": "dsa-with-SHA224",
  "2.16.840.1.101.3.4.3.2": "dsa-with-SHA256",
};

const RSASSA_PSS = "1.2.840.113549.1.1.10";

const HASHES: Record<string, string> = {
  "1.3.14.3.2.26": "SHA1",
  "2.16.840.1.101.3.4.2.4": "SHA224",
  "2.16.840.1.101.3.4.2.1": "SHA256",
  "2.16.840.1.101.3.4.2.2": "SHA384",
  "2.16.840.1.101.3.4.2.3": "SHA512",
};

const CURVE_BITS: Record<string, number> = {
  "1.2.840.10045.3.1.1": 192, // P-192
  "1.3.132.0.33": 224, // P-224
  "1.2.840.10045.3.1.7": 256, // P-256
  "1.3.132.0.34": 384, // P-384
  "1.3.132.0.35": 521, // P-521
  "1.3.132.0.10": 256, // secp256k1
  "1.3.36.3.3.2.8.1.1.7": 256, // brainpoolP256r1
  "1.3.36.3.3.2.8.1.1.11": 384, // brainpoolP384r1
  "1.3.36.3.3.2.8.1.1.13": 512, // brainpoolP512r1
  "1.2.156.10197.1.301": 256, // SM2
};

const RSA = "1.2.840.113549.1.1.1";
const EC = "1.2.840.10045.2.1";
const ED25519 = "1.3.101.112";
const ED448 = "1.3.101.113";

const EXT_BASIC_CONSTRAINTS = "2.5.29.19";
const EXT_SAN = "2.5.29.17";
const EXT_KEY_USAGE = "2.5.29.15";
const EXT_EXTENDED_KEY_USAGE = "2.5.29.37";

/** Readable name of an AlgorithmIdentifier used for signing. RSASSA-PSS names its hash: "RSASSA-PSS-SHA256". */
function signatureName(buf: Uint8Array, algId: Tlv): string {
  const oidTlv = expect(buf, algId.contentStart, algId.contentEnd, TAG.OID, "signatureAlgorithm");
  const oid = decodeOid(buf, oidTlv);
  const known = SIGNATURE_ALGORITHMS[oid];
  if (known) return known;
  if (oid !== RSASSA_PSS) return oid;
  // RSASSA-PSS-params ::= SEQUENCE { hashAlgorithm [0] EXPLICIT AlgorithmIdentifier DEFAULT sha1, ... }
  let hash = "SHA1";
  if (oidTlv.end < algId.contentEnd) {
    const params = readTlv(buf, oidTlv.end, algId.contentEnd);
    if (params.tag === TAG.SEQUENCE) {
      const first = params.contentStart < params.contentEnd ? readTlv(buf, params.contentStart, params.contentEnd) : undefined;
      if (first?.tag === 0xa0) {
        const hashAlg = expect(buf, first.contentStart, first.contentEnd, TAG.SEQUENCE, "RSASSA-PSS hash");
        const hashOid = decodeOid(buf, expect(buf, hashAlg.contentStart, hashAlg.contentEnd, TAG.OID, "RSASSA-PSS hash"));
        hash = HASHES[hashOid] ?? hashOid;
      }
    }
  }
  return `RSASSA-PSS-${hash}`;
}

/** Bit length of an unsigned big-endian INTEGER's content (leading zero bytes ignored). */
function integerBits(buf: Uint8Array, tlv: Tlv): number {
  let i = tlv.contentStart;
  while (i < tlv.contentEnd && buf[i] === 0) i++;
  if (i === tlv.contentEnd) return 0;
  return (tlv.contentEnd - i - 1) * 8 + (32 - Math.clz32(buf[i]!));
}

function publicKey(buf: Uint8Array, spki: Tlv): { keyAlgorithm: string; keyBits: number } {
  const algId = expect(buf, spki.contentStart, spki.contentEnd, TAG.SEQUENCE, "subjectPublicKeyInfo");
  const key = expect(buf, algId.end, spki.contentEnd, TAG.BIT_STRING, "subjectPublicKey");
  const oidTlv = expect(buf, algId.contentStart, algId.contentEnd, TAG.OID, "subjectPublicKeyInfo algorithm");
  const oid = decodeOid(buf, oidTlv);
  if (oid === RSA || oid === RSASSA_PSS) {
    // BIT STRING: one unused-bits octet, then RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }
    const rsaKey = expect(buf, key.contentStart + 1, key.contentEnd, TAG.SEQUENCE, "RSA public key");
    const modulus = expect(buf, rsaKey.contentStart, rsaKey.contentEnd, TAG.INTEGER, "RSA modulus");
    return { keyAlgorithm: "RSA", keyBits: integerBits(buf, modulus) };
  }
  if (oid === EC) {
    let bits = 0;
    if (oidTlv.end < algId.contentEnd) {
      const params = readTlv(buf, oidTlv.end, algId.contentEnd);
      if (params.tag === TAG.OID) bits = CURVE_BITS[decodeOid(buf, params)] ?? 0;
    }
    if (bits === 0) {
      // Unknown or explicit curve: derive the field size from an uncompressed point (04 || X || Y).
      const pointLen = key.contentEnd - key.contentStart - 1;
      if (pointLen > 1 && buf[key.contentStart + 1] === 0x04) bits = ((pointLen - 1) / 2) * 8;
    }
    return { keyAlgorithm: "ECDSA", keyBits: bits };
  }
  if (oid === ED25519) return { keyAlgorithm: "Ed25519", keyBits: 256 };
  if (oid === ED448) return { keyAlgorithm: "Ed448", keyBits: 456 };
  return { keyAlgorithm: oid, keyBits: 0 };
}

function formatIp(buf: Uint8Array, s: number, e: number): string {
  const n = e - s;
  if (n === 4) return `${buf[s]}.${buf[s + 1]}.${buf[s + 2]}.${buf[s + 3]}`;
  if (n !== 16) return hex(buf, s, e);
  const groups: number[] = [];
  for (let i = s; i < e; i += 2) groups.push((buf[i]! << 8) | buf[i + 1]!);
  // RFC 5952: compress the longest run (length >= 2) of zero groups, first one on a tie.
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const h = groups.map((g) => g.toString(16));
  if (bestStart < 0) return h.join(":");
  return `${h.slice(0, bestStart).join(":")}::${h.slice(bestStart + bestLen).join(":")}`;
}

/**
 * SANs decoded per certificate. Real certificates carry at most a few hundred; past this the rest
 * are counted, not decoded, so a crafted extension of a hundred thousand names costs little.
 */
const MAX_SANS = 1000;

/** GeneralNames: dNSName, iPAddress, rfc822Name and URI; other name forms are not exported. */
function subjectAltNames(buf: Uint8Array, value: Tlv): string[] {
  const seq = expect(buf, value.contentStart, value.contentEnd, TAG.SEQUENCE, "subjectAltName");
  const out: string[] = [];
  let skipped = 0;
  for (let p = seq.contentStart; p < seq.contentEnd; ) {
    const gn = readTlv(buf, p, seq.contentEnd);
    p = gn.end;
    if (out.length >= MAX_SANS) {
      skipped++;
      continue;
    }
    switch (gn.tag) {
      case 0x81: // [1] rfc822Name, IA5String
        out.push("email:" + decodeString(buf, gn));
        break;
      case 0x82: // [2] dNSName
        out.push("DNS:" + decodeString(buf, gn));
        break;
      case 0x86: // [6] uniformResourceIdentifier
        out.push("URI:" + decodeString(buf, gn));
        break;
      case 0x87: // [7] iPAddress
        out.push("IP:" + formatIp(buf, gn.contentStart, gn.contentEnd));
        break;
      default:
        break;
    }
  }
  if (skipped > 0) out.push(`…${skipped} more`);
  return out;
}

function basicConstraintsCA(buf: Uint8Array, value: Tlv): boolean {
  const seq = expect(buf, value.contentStart, value.contentEnd, TAG.SEQUENCE, "basicConstraints");
  if (seq.contentStart === seq.contentEnd) return false;
  const first = readTlv(buf, seq.contentStart, seq.contentEnd);
  return first.tag === TAG.BOOLEAN && first.contentEnd > first.contentStart && buf[first.contentStart] !== 0;
}

/** keyUsage names bits 0 (digitalSignature) to 8 (decipherOnly); later bits mean nothing and are not read. */
const KEY_USAGE_BITS = 9;

/** KeyUsage ::= BIT STRING: named bit n as 1 << n, the encoding's unused trailing bits left out. */
function keyUsageBits(buf: Uint8Array, value: Tlv): number {
  const bits = expect(buf, value.contentStart, value.contentEnd, TAG.BIT_STRING, "keyUsage");
  const octets = bits.contentEnd - bits.contentStart - 1;
  if (octets < 0) throw new DerError("keyUsage: empty BIT STRING");
  const present = Math.min(KEY_USAGE_BITS, octets * 8 - buf[bits.contentStart]!);
  let usage = 0;
  for (let n = 0; n < present; n++) if ((buf[bits.contentStart + 1 + (n >> 3)]! & (0x80 >> (n & 7))) !== 0) usage |= 1 << n;
  return usage;
}

/**
 * Purposes read per certificate. Real certificates name a handful; past this the rest are counted,
 * not decoded, so a crafted extension of thousands of OIDs costs little.
 */
const MAX_EXTENDED_KEY_USAGES = 32;

/**
 * Purpose lists by their text: most certificates name one of a few lists (serverAuth, serverAuth
 * and clientAuth), which their records then share instead of holding a copy each.
 */
const purposeLists = new Map<string, string>();
const MAX_PURPOSE_LISTS = 1024;
/** A list longer than this (only a crafted one) is kept by its record alone, never as a key. */
const MAX_SHARED_PURPOSE_LIST = 512;

/** ExtKeyUsageSyntax ::= SEQUENCE OF KeyPurposeId: the set of purposes, as CertRecord.extendedKeyUsage holds it. */
function extendedKeyUsages(buf: Uint8Array, value: Tlv): string {
  const seq = expect(buf, value.contentStart, value.contentEnd, TAG.SEQUENCE, "extendedKeyUsage");
  const purposes: string[] = [];
  let skipped = 0;
  for (let p = seq.contentStart; p < seq.contentEnd; ) {
    const purpose = readTlv(buf, p, seq.contentEnd);
    p = purpose.end;
    if (purposes.length >= MAX_EXTENDED_KEY_USAGES) {
      skipped++;
      continue;
    }
    if (purpose.tag !== TAG.OID) throw new DerError("extendedKeyUsage: not an OBJECT IDENTIFIER");
    purposes.push(decodeOid(buf, purpose));
  }
  // A set: the order they are listed in and repeats say nothing.
  const list = [...new Set(purposes)].sort().join(",") + (skipped > 0 ? `,…${skipped} more` : "");
  if (list.length > MAX_SHARED_PURPOSE_LIST) return list;
  const shared = purposeLists.get(list);
  if (shared !== undefined) return shared;
  if (purposeLists.size >= MAX_PURPOSE_LISTS) purposeLists.clear();
  purposeLists.set(list, list);
  return list;
}

/**
 * A usage extension's value, or `absent` when it is malformed: the usages only group a location's
 * certificates (src/superseded.ts), so a bad one must not cost the certificate its expiry series.
 */
function usageOrAbsent<T>(read: () => T, absent: T): T {
  try {
    return read();
  } catch (err) {
    if (err instanceof DerError) return absent;
    throw err;
  }
}

/**
 * Serial number as lowercase hex of the INTEGER's content octets as encoded, except the single
 * 0x00 octet DER adds so a positive number whose top bit is set stays positive: that octet is a
 * sign marker, not part of the number, and OpenSSL, Go and Node all print serials without it.
 */
function serialHex(buf: Uint8Array, tlv: Tlv): string {
  let s = tlv.contentStart;
  if (tlv.contentEnd - s > 1 && buf[s] === 0 && buf[s + 1]! >= 0x80) s++;
  return hex(buf, s, tlv.contentEnd);
}

/**
 * Issuer names by their DER: a few issuers sign thousands of certificates, whose records then share
 * one decoded name instead of holding a copy each.
 */
const issuerNames = new Map<string, DecodedName>();
const MAX_ISSUER_NAMES = 1024;
/** Real issuer names are a few hundred bytes; a crafted huge one is decoded, never kept as a key. */
const MAX_CACHED_ISSUER_BYTES = 2048;

function issuerName(buf: Uint8Array, tlv: Tlv): DecodedName {
  if (tlv.end - tlv.start > MAX_CACHED_ISSUER_BYTES) return decodeName(buf, tlv);
  const der = asBuffer(buf).toString("latin1", tlv.start, tlv.end);
  let name = issuerNames.get(der);
  if (!name) {
    name = decodeName(buf, tlv);
    if (issuerNames.size >= MAX_ISSUER_NAMES) issuerNames.clear();
    issuerNames.set(der, name);
  }
  return name;
}

/**
 * Decodes the Certificate element `cert` of `bytes`; `fingerprintSha256` when the caller already
 * hashed its DER. Throws DerError when it is not a certificate.
 */
export function decodeCertificate(bytes: Uint8Array, cert: Tlv, fingerprintSha256?: string): CertRecord {
  if (cert.tag !== TAG.SEQUENCE) throw new DerError("certificate: not a SEQUENCE");
  // One Buffer view for the whole certificate, rather than one per string decoded.
  const buf = asBuffer(bytes);
  const tbs = expect(buf, cert.contentStart, cert.contentEnd, TAG.SEQUENCE, "tbsCertificate");
  const sigAlg = expect(buf, tbs.end, cert.contentEnd, TAG.SEQUENCE, "signatureAlgorithm");
  expect(buf, sigAlg.end, cert.contentEnd, TAG.BIT_STRING, "signatureValue");

  let p = tbs.contentStart;
  const end = tbs.contentEnd;
  let t = readTlv(buf, p, end);
  if (t.tag === 0xa0) {
    // [0] EXPLICIT version
    p = t.end;
    t = readTlv(buf, p, end);
  }
  if (t.tag !== TAG.INTEGER) throw new DerError("serialNumber: not an INTEGER");
  if (t.contentEnd === t.contentStart) throw new DerError("serialNumber: empty");
  const serial = serialHex(buf, t);
  const innerSig = expect(buf, t.end, end, TAG.SEQUENCE, "signature");
  const issuerTlv = readTlv(buf, innerSig.end, end);
  const validity = expect(buf, issuerTlv.end, end, TAG.SEQUENCE, "validity");
  const subjectTlv = readTlv(buf, validity.end, end);
  const spki = expect(buf, subjectTlv.end, end, TAG.SEQUENCE, "subjectPublicKeyInfo");

  const notBeforeTlv = readTlv(buf, validity.contentStart, validity.contentEnd);
  const notAfterTlv = readTlv(buf, notBeforeTlv.end, validity.contentEnd);
  const notBefore = decodeTime(buf, notBeforeTlv);
  const notAfter = decodeTime(buf, notAfterTlv);

  const issuer = issuerName(buf, issuerTlv);
  const subject = decodeName(buf, subjectTlv);
  const { keyAlgorithm, keyBits } = publicKey(buf, spki);

  let isCA = false;
  let keyUsage = 0;
  let extendedKeyUsage = "";
  let sans: string[] = [];
  p = spki.end;
  while (p < end) {
    t = readTlv(buf, p, end);
    p = t.end;
    if (t.tag !== 0xa3) continue; // [1] issuerUniqueID, [2] subjectUniqueID
    const exts = expect(buf, t.contentStart, t.contentEnd, TAG.SEQUENCE, "extensions");
    for (const ext of children(buf, exts)) {
      if (ext.tag !== TAG.SEQUENCE) throw new DerError("extension: not a SEQUENCE");
      const idTlv = expect(buf, ext.contentStart, ext.contentEnd, TAG.OID, "extension id");
      let v = readTlv(buf, idTlv.end, ext.contentEnd);
      if (v.tag === TAG.BOOLEAN) v = readTlv(buf, v.end, ext.contentEnd); // critical
      if (v.tag !== TAG.OCTET_STRING) throw new DerError("extension value: not an OCTET STRING");
      const id = decodeOid(buf, idTlv);
      if (id === EXT_BASIC_CONSTRAINTS) isCA = basicConstraintsCA(buf, v);
      else if (id === EXT_SAN) sans = subjectAltNames(buf, v);
      else if (id === EXT_KEY_USAGE) keyUsage = usageOrAbsent(() => keyUsageBits(buf, v), 0);
      else if (id === EXT_EXTENDED_KEY_USAGE) extendedKeyUsage = usageOrAbsent(() => extendedKeyUsages(buf, v), "");
    }
  }

  return {
    notBefore,
    notAfter,
    subject: subject.dn,
    subjectCN: subject.cn,
    issuer: issuer.dn,
    issuerCN: issuer.cn,
    serial,
    sans,
    isCA,
    keyUsage,
    extendedKeyUsage,
    fingerprintSha256: fingerprintSha256 ?? hash("sha256", buf.subarray(cert.start, cert.end), "hex"),
    keyAlgorithm,
    keyBits,
    signatureAlgorithm: signatureName(buf, sigAlg),
  };
}
