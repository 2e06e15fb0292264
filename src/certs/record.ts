/** The facts kept about one certificate: never its bytes, never a key. */
export interface CertRecord {
  /** notBefore, Unix seconds. */
  notBefore: number;
  /** notAfter, Unix seconds. */
  notAfter: number;
  /** Subject distinguished name in RFC 4514 form. */
  subject: string;
  /** First subject commonName, or "" when there is none. */
  subjectCN: string;
  issuer: string;
  issuerCN: string;
  /** Serial number, lowercase hex without separators. */
  serial: string;
  /**
   * Subject alternative names as "DNS:x", "IP:x", "email:x", "URI:x". Through the parse cache, text
   * fields are cut to limits.maxLabelValueLength (certs/truncate.ts), and SANs whose joined label
   * would be longer are kept as that one cut value.
   */
  sans: string[];
  /** basicConstraints cA. */
  isCA: boolean;
  /**
   * keyUsage bits, named bit n as 1 << n (digitalSignature 1, keyCertSign 32, decipherOnly 256);
   * 0 when the extension is absent.
   */
  keyUsage: number;
  /**
   * extendedKeyUsage purposes as dotted OIDs, sorted and joined with ","; "" when absent. Shared
   * between records with the same purposes (decode.ts).
   */
  extendedKeyUsage: string;
  /** SHA-256 of the DER encoding, lowercase hex. */
  fingerprintSha256: string;
  /** "RSA", "ECDSA", "Ed25519", "Ed448", or the algorithm's OID when unknown. */
  keyAlgorithm: string;
  /** Modulus size for RSA, curve size for EC, 256/456 for EdDSA, 0 when unknown. */
  keyBits: number;
  /** Signature algorithm, e.g. "sha256WithRSAEncryption", "ecdsa-with-SHA384", "Ed25519". */
  signatureAlgorithm: string;
}

/**
 * The facts kept about one CRL (RFC 5280 §5): its dates, its issuer and how many certificates it
 * revokes. Never the list of revoked serials, never its bytes.
 */
export interface CrlRecord {
  /** thisUpdate, Unix seconds. */
  thisUpdate: number;
  /** nextUpdate, Unix seconds; absent when the CRL sets none (allowed by X.509, forbidden by RFC 5280). */
  nextUpdate?: number;
  /** Issuer distinguished name in RFC 4514 form. */
  issuer: string;
  /** First issuer commonName, or "" when there is none. */
  issuerCN: string;
  /** Entries in revokedCertificates; 0 when the CRL has none. */
  revoked: number;
}

/** What a parse yields: the certificates, in input order, with the CRLs beside them when there are any. */
export type CertList = readonly CertRecord[] & { readonly crls?: readonly CrlRecord[] };
