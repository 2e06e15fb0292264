/**
 * The parts of a certificate that chain and key checks need and the record does not keep: the signed
 * bytes, the signature and its algorithm, and the subject public key. Pure; views into the input.
 */
import { DerError, TAG, decodeOid, expect, readTlv } from "./der.js";

export interface SignedParts {
  /** The DER of tbsCertificate: what the issuer signed. */
  tbs: Uint8Array;
  /** The signature AlgorithmIdentifier's OID. */
  signatureOid: string;
  /** The signature, without the BIT STRING's unused-bits octet. */
  signature: Uint8Array;
  /** The DER of subjectPublicKeyInfo. */
  spki: Uint8Array;
}

/** Splits one DER certificate; throws DerError when it is not one. */
export function signedParts(der: Uint8Array): SignedParts {
  const cert = readTlv(der, 0);
  if (cert.tag !== TAG.SEQUENCE) throw new DerError("certificate: not a SEQUENCE");
  const tbs = expect(der, cert.contentStart, cert.contentEnd, TAG.SEQUENCE, "tbsCertificate");
  const sigAlg = expect(der, tbs.end, cert.contentEnd, TAG.SEQUENCE, "signatureAlgorithm");
  const signature = expect(der, sigAlg.end, cert.contentEnd, TAG.BIT_STRING, "signatureValue");
  if (signature.contentEnd === signature.contentStart) throw new DerError("signatureValue: empty");
  let t = readTlv(der, tbs.contentStart, tbs.contentEnd);
  if (t.tag === 0xa0) t = readTlv(der, t.end, tbs.contentEnd); // [0] EXPLICIT version
  // serialNumber, signature, issuer, validity, subject, then subjectPublicKeyInfo.
  for (let skip = 0; skip < 5; skip++) t = readTlv(der, t.end, tbs.contentEnd);
  if (t.tag !== TAG.SEQUENCE) throw new DerError("subjectPublicKeyInfo: not a SEQUENCE");
  return {
    tbs: der.subarray(tbs.start, tbs.end),
    signatureOid: decodeOid(der, expect(der, sigAlg.contentStart, sigAlg.contentEnd, TAG.OID, "signatureAlgorithm")),
    signature: der.subarray(signature.contentStart + 1, signature.contentEnd),
    spki: der.subarray(t.start, t.end),
  };
}
