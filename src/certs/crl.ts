/**
 * Decodes one DER CertificateList (an X.509 CRL, RFC 5280 §5.1) into a CrlRecord with the light
 * reader in der.ts. Pure: no I/O. Only the TBSCertList fields the record needs are read; the
 * revoked entries are counted, not kept, and the signature is not verified. Work is linear in the
 * input: each element is read once.
 */
import { DerError, TAG, type Tlv, decodeTime, expect, readTlv } from "./der.js";
import { decodeName } from "./dn.js";
import type { CrlRecord } from "./record.js";

const isTime = (tag: number): boolean => tag === TAG.UTC_TIME || tag === TAG.GENERALIZED_TIME;

/**
 * True when `outer` is shaped like a CertificateList rather than a Certificate: its TBS holds
 * [version INTEGER,] AlgorithmIdentifier, Name, then a time (thisUpdate), where a certificate's
 * has a serial and a validity SEQUENCE. Never throws.
 */
export function looksLikeCrl(buf: Uint8Array, outer: Tlv): boolean {
  try {
    if (outer.tag !== TAG.SEQUENCE) return false;
    const tbs = expect(buf, outer.contentStart, outer.contentEnd, TAG.SEQUENCE, "tbsCertList");
    let t = readTlv(buf, tbs.contentStart, tbs.contentEnd);
    if (t.tag === TAG.INTEGER) t = readTlv(buf, t.end, tbs.contentEnd);
    if (t.tag !== TAG.SEQUENCE) return false;
    const issuer = readTlv(buf, t.end, tbs.contentEnd);
    if (issuer.tag !== TAG.SEQUENCE) return false;
    return isTime(readTlv(buf, issuer.end, tbs.contentEnd).tag);
  } catch {
    return false;
  }
}

/** Decodes the CertificateList element `crl` of `bytes`. Throws DerError when it is not one. */
export function decodeCrl(buf: Uint8Array, crl: Tlv): CrlRecord {
  if (crl.tag !== TAG.SEQUENCE) throw new DerError("CRL: not a SEQUENCE");
  const tbs = expect(buf, crl.contentStart, crl.contentEnd, TAG.SEQUENCE, "tbsCertList");
  const sigAlg = expect(buf, tbs.end, crl.contentEnd, TAG.SEQUENCE, "CRL signatureAlgorithm");
  expect(buf, sigAlg.end, crl.contentEnd, TAG.BIT_STRING, "CRL signatureValue");

  const end = tbs.contentEnd;
  let t = readTlv(buf, tbs.contentStart, end);
  if (t.tag === TAG.INTEGER) {
    // version: v2 (1) when present; v1 CRLs omit it.
    if (t.contentEnd - t.contentStart !== 1 || buf[t.contentStart]! > 1) throw new DerError("CRL version: not v1 or v2");
    t = readTlv(buf, t.end, end);
  }
  if (t.tag !== TAG.SEQUENCE) throw new DerError("CRL signature: unexpected ASN.1 tag");
  const issuerTlv = expect(buf, t.end, end, TAG.SEQUENCE, "CRL issuer");
  const thisUpdateTlv = readTlv(buf, issuerTlv.end, end);
  if (!isTime(thisUpdateTlv.tag)) throw new DerError("CRL thisUpdate: not a time");
  const thisUpdate = decodeTime(buf, thisUpdateTlv);

  let nextUpdate: number | undefined;
  let revoked = 0;
  let p = thisUpdateTlv.end;
  if (p < end) {
    t = readTlv(buf, p, end);
    if (isTime(t.tag)) {
      nextUpdate = decodeTime(buf, t);
      p = t.end;
      t = p < end ? readTlv(buf, p, end) : t;
    }
    if (p < end && t.tag === TAG.SEQUENCE) {
      // revokedCertificates: each entry a SEQUENCE (userCertificate, revocationDate, extensions); counted only.
      for (let q = t.contentStart; q < t.contentEnd; revoked++) {
        const entry = readTlv(buf, q, t.contentEnd);
        if (entry.tag !== TAG.SEQUENCE) throw new DerError("CRL revoked entry: not a SEQUENCE");
        q = entry.end;
      }
      p = t.end;
      t = p < end ? readTlv(buf, p, end) : t;
    }
    // What may follow is [0] EXPLICIT crlExtensions, which the record does not need.
    if (p < end && t.tag !== 0xa0) throw new DerError("CRL: unexpected ASN.1 tag after the revoked certificates");
  }

  const issuer = decodeName(buf, issuerTlv);
  const record: CrlRecord = { thisUpdate, issuer: issuer.dn, issuerCN: issuer.cn, revoked };
  if (nextUpdate !== undefined) record.nextUpdate = nextUpdate;
  return record;
}
