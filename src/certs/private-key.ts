/**
 * Does a private key belong to a certificate? The key is read only to reach its public half, which
 * is compared with the certificate's: RSA's modulus and exponent, and the EC or EdDSA public point
 * when the key carries it (OpenSSL writes it), as bytes; an EC or EdDSA key without it goes to
 * OpenSSL (node:crypto) to derive it. Measured (bench/chain.ts): OpenSSL's PEM decoder takes about
 * 480 µs for an RSA key, reading the two integers here a few µs. Pure and bounded; the key is never
 * logged, returned or kept, and the copy decoded from PEM is zeroed before returning.
 */
import { createPrivateKey, createPublicKey } from "node:crypto";
import { decodeBase64 } from "./base64.js";
import { DerError, TAG, type Tlv, children, decodeOid, expect, readTlv } from "./der.js";
import { scanPem } from "./parse.js";

/** Every value of `cert_private_key_status`'s `status` label. */
export const KEY_PAIR_STATUSES = ["match", "mismatch", "encrypted", "unreadable", "unsupported", "missing"] as const;

export type KeyPairStatus = (typeof KEY_PAIR_STATUSES)[number];

/** Larger than any real key (an RSA 16384-bit PEM is 13 KiB): longer input is not read. */
export const MAX_PRIVATE_KEY_BYTES = 64 * 1024;

const OID_RSA = "1.2.840.113549.1.1.1";
const OID_RSASSA_PSS = "1.2.840.113549.1.1.10";
const OID_EC = "1.2.840.10045.2.1";
const OID_ED25519 = "1.3.101.112";
const OID_ED448 = "1.3.101.113";

type KeyFormat = "pkcs8" | "pkcs1" | "sec1";

/** The public half a key shows, or what OpenSSL needs to derive it. */
type PublicHalf =
  | { kind: "rsa"; modulus: Uint8Array; exponent: Uint8Array }
  | { kind: "ec"; curve: string | undefined; point: Uint8Array | undefined }
  | { kind: "eddsa"; oid: string; point: Uint8Array | undefined };

/** The key is encrypted, or of a kind not compared: statuses decided before any comparison. */
class Verdict extends Error {
  constructor(readonly status: KeyPairStatus) {
    super(status);
  }
}

/** An INTEGER's content without leading zero octets, so 00-padded and minimal encodings compare equal. */
function unsigned(buf: Uint8Array, tlv: Tlv): Uint8Array {
  let start = tlv.contentStart;
  while (start < tlv.contentEnd - 1 && buf[start] === 0) start++;
  return buf.subarray(start, tlv.contentEnd);
}

/** A BIT STRING's bytes after its unused-bits octet. */
function bits(buf: Uint8Array, tlv: Tlv): Uint8Array {
  if (tlv.contentEnd <= tlv.contentStart) throw new DerError("empty BIT STRING");
  return buf.subarray(tlv.contentStart + 1, tlv.contentEnd);
}

/** RSAPrivateKey and RSAPublicKey both begin with the modulus and the exponent (after a version in the private one). */
function rsaHalf(buf: Uint8Array, seq: Tlv, withVersion: boolean): PublicHalf {
  let p = seq.contentStart;
  if (withVersion) p = expect(buf, p, seq.contentEnd, TAG.INTEGER, "RSA key version").end;
  const modulus = expect(buf, p, seq.contentEnd, TAG.INTEGER, "RSA modulus");
  const exponent = expect(buf, modulus.end, seq.contentEnd, TAG.INTEGER, "RSA exponent");
  return { kind: "rsa", modulus: unsigned(buf, modulus), exponent: unsigned(buf, exponent) };
}

/** ECPrivateKey (SEC1): version, the secret, then optional [0] curve and [1] public point. */
function ecHalf(buf: Uint8Array, seq: Tlv, curve: string | undefined): PublicHalf {
  let point: Uint8Array | undefined;
  for (const field of children(buf, seq).slice(2)) {
    if (field.tag === 0xa0) {
      const params = readTlv(buf, field.contentStart, field.contentEnd);
      if (params.tag === TAG.OID) curve ??= decodeOid(buf, params);
    } else if (field.tag === 0xa1) {
      point = bits(buf, expect(buf, field.contentStart, field.contentEnd, TAG.BIT_STRING, "EC public key"));
    }
  }
  return { kind: "ec", curve, point };
}

/** PrivateKeyInfo / OneAsymmetricKey (PKCS#8): the algorithm, the key, optional [1] public key. */
function pkcs8Half(buf: Uint8Array, seq: Tlv): PublicHalf {
  const version = expect(buf, seq.contentStart, seq.contentEnd, TAG.INTEGER, "PKCS#8 version");
  const algId = expect(buf, version.end, seq.contentEnd, TAG.SEQUENCE, "PKCS#8 algorithm");
  const oidTlv = expect(buf, algId.contentStart, algId.contentEnd, TAG.OID, "PKCS#8 algorithm");
  const oid = decodeOid(buf, oidTlv);
  const privateKey = expect(buf, algId.end, seq.contentEnd, TAG.OCTET_STRING, "PKCS#8 private key");
  const inner = () => readTlv(buf, privateKey.contentStart, privateKey.contentEnd);
  if (oid === OID_RSA || oid === OID_RSASSA_PSS) return rsaHalf(buf, inner(), true);
  if (oid === OID_EC) {
    const params = oidTlv.end < algId.contentEnd ? readTlv(buf, oidTlv.end, algId.contentEnd) : undefined;
    return ecHalf(buf, inner(), params?.tag === TAG.OID ? decodeOid(buf, params) : undefined);
  }
  if (oid === OID_ED25519 || oid === OID_ED448) {
    let point: Uint8Array | undefined;
    for (let p = privateKey.end; p < seq.contentEnd; ) {
      const field = readTlv(buf, p, seq.contentEnd);
      if (field.tag === 0x81) point = bits(buf, field); // [1] IMPLICIT BIT STRING publicKey
      p = field.end;
    }
    return { kind: "eddsa", oid, point };
  }
  throw new Verdict("unsupported");
}

/** Which structure a DER key is, from its first fields; EncryptedPrivateKeyInfo starts with a SEQUENCE. */
function derFormat(buf: Uint8Array, seq: Tlv): KeyFormat {
  const first = readTlv(buf, seq.contentStart, seq.contentEnd);
  if (first.tag === TAG.SEQUENCE) throw new Verdict("encrypted");
  if (first.tag !== TAG.INTEGER) throw new DerError("not a private key");
  const second = readTlv(buf, first.end, seq.contentEnd);
  if (second.tag === TAG.SEQUENCE) return "pkcs8";
  if (second.tag === TAG.OCTET_STRING) return "sec1";
  if (second.tag === TAG.INTEGER) return "pkcs1";
  throw new DerError("not a private key");
}

const PEM_FORMATS: Record<string, KeyFormat | KeyPairStatus> = {
  "PRIVATE KEY": "pkcs8",
  "RSA PRIVATE KEY": "pkcs1",
  "EC PRIVATE KEY": "sec1",
  "ENCRYPTED PRIVATE KEY": "encrypted",
};

/** The DER of the first private key in PEM text, or its verdict (encrypted, not a kind we read). */
function pemKey(text: string): { der: Buffer; format: KeyFormat } {
  const block = scanPem(text).find((b) => b.label.endsWith("PRIVATE KEY"));
  if (!block || block.body === undefined) throw new DerError("no complete private key block");
  const format = PEM_FORMATS[block.label] ?? "unsupported";
  // RFC 1421 headers ("Proc-Type: 4,ENCRYPTED", "DEK-Info: …") are how OpenSSL marks a legacy encrypted key.
  if (format === "encrypted" || /^Proc-Type:.*ENCRYPTED/m.test(block.body)) throw new Verdict("encrypted");
  if (format !== "pkcs8" && format !== "pkcs1" && format !== "sec1") throw new Verdict(format);
  const der = decodeBase64(block.body, false);
  if (!der) throw new DerError("key block is not base64");
  return { der, format };
}

function publicHalf(der: Uint8Array, format: KeyFormat): PublicHalf {
  const seq = expect(der, 0, der.length, TAG.SEQUENCE, "private key");
  if (format === "pkcs8") return pkcs8Half(der, seq);
  if (format === "pkcs1") return rsaHalf(der, seq, true);
  return ecHalf(der, seq, undefined);
}

/** The certificate's public key in the same shape. */
function certificateHalf(spki: Uint8Array): PublicHalf | undefined {
  const seq = expect(spki, 0, spki.length, TAG.SEQUENCE, "subjectPublicKeyInfo");
  const algId = expect(spki, seq.contentStart, seq.contentEnd, TAG.SEQUENCE, "subjectPublicKeyInfo algorithm");
  const oidTlv = expect(spki, algId.contentStart, algId.contentEnd, TAG.OID, "subjectPublicKeyInfo algorithm");
  const oid = decodeOid(spki, oidTlv);
  const key = bits(spki, expect(spki, algId.end, seq.contentEnd, TAG.BIT_STRING, "subjectPublicKey"));
  if (oid === OID_RSA || oid === OID_RSASSA_PSS) return rsaHalf(key, readTlv(key, 0), false);
  if (oid === OID_EC) {
    const params = oidTlv.end < algId.contentEnd ? readTlv(spki, oidTlv.end, algId.contentEnd) : undefined;
    return { kind: "ec", curve: params?.tag === TAG.OID ? decodeOid(spki, params) : undefined, point: key };
  }
  if (oid === OID_ED25519 || oid === OID_ED448) return { kind: "eddsa", oid, point: key };
  return undefined;
}

const same = (a: Uint8Array, b: Uint8Array) => Buffer.compare(a, b) === 0;

/** OpenSSL derives the public key (EC without its point, EdDSA) and compares it with the certificate's. */
function derivedMatch(der: Uint8Array, format: KeyFormat, spki: Uint8Array): KeyPairStatus {
  try {
    // A view, not a copy: the only copy of the key is the one zeroed by keyPairStatus.
    const derived = createPublicKey(createPrivateKey({ key: Buffer.from(der.buffer, der.byteOffset, der.length), format: "der", type: format }));
    return derived.equals(createPublicKey({ key: Buffer.from(spki), format: "der", type: "spki" })) ? "match" : "mismatch";
  } catch {
    return "unreadable";
  }
}

function compare(key: PublicHalf, cert: PublicHalf | undefined, der: Uint8Array, format: KeyFormat, spki: Uint8Array): KeyPairStatus {
  if (!cert || cert.kind !== key.kind) return "mismatch";
  if (key.kind === "rsa" && cert.kind === "rsa") return same(key.modulus, cert.modulus) && same(key.exponent, cert.exponent) ? "match" : "mismatch";
  if (key.kind === "eddsa" && cert.kind === "eddsa" && key.oid !== cert.oid) return "mismatch";
  if (key.kind === "ec" && cert.kind === "ec") {
    if (key.curve && cert.curve && key.curve !== cert.curve) return "mismatch";
    // Without a named curve OpenSSL would have to check explicit parameters: not attempted.
    if (!key.point && !key.curve) return "unsupported";
  }
  const keyPoint = key.kind === "rsa" ? undefined : key.point;
  const certPoint = cert.kind === "rsa" ? undefined : cert.point;
  // Same encoding (both uncompressed, say): bytes decide. Otherwise OpenSSL does.
  if (keyPoint && certPoint && keyPoint.length === certPoint.length && keyPoint[0] === certPoint[0]) return same(keyPoint, certPoint) ? "match" : "mismatch";
  return derivedMatch(der, format, spki);
}

/**
 * Whether `key` (PEM or DER bytes of a private key) is the private half of the certificate whose
 * subjectPublicKeyInfo is `certificateSpki`. Never throws: what cannot be read is `unreadable`.
 */
export function keyPairStatus(key: Uint8Array, certificateSpki: Uint8Array): KeyPairStatus {
  if (key.length === 0) return "missing";
  if (key.length > MAX_PRIVATE_KEY_BYTES) return "unreadable";
  let decoded: Buffer | undefined;
  try {
    let der: Uint8Array = key;
    let format: KeyFormat;
    if (key[0] === TAG.SEQUENCE) {
      format = derFormat(key, readTlv(key, 0));
    } else {
      ({ der: decoded, format } = pemKey(Buffer.from(key.buffer, key.byteOffset, key.length).toString("latin1")));
      der = decoded;
    }
    return compare(publicHalf(der, format), certificateHalf(certificateSpki), der, format, certificateSpki);
  } catch (err) {
    if (err instanceof Verdict) return err.status;
    return "unreadable";
  } finally {
    decoded?.fill(0);
  }
}
