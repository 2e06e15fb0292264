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
  /** SHA-256 of the DER encoding, lowercase hex. */
  fingerprintSha256: string;
  /** "RSA", "ECDSA", "Ed25519", "Ed448", or the algorithm's OID when unknown. */
  keyAlgorithm: string;
  /** Modulus size for RSA, curve size for EC, 256/456 for EdDSA, 0 when unknown. */
  keyBits: number;
  /** Signature algorithm, e.g. "sha256WithRSAEncryption", "ecdsa-with-SHA384", "Ed25519". */
  signatureAlgorithm: string;
}
