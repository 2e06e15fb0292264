/**
 * Did one certificate's key sign another? OpenSSL decides (node:crypto); no I/O. The common
 * algorithms are checked on the signed bytes directly, because building an X509Certificate costs
 * about 130 µs where the verification itself costs 30 (bench/chain.ts); the rest (RSASSA-PSS, DSA,
 * anything newer) go through X509Certificate.verify, which reads the algorithm's parameters itself.
 */
import { X509Certificate, createPublicKey, verify, type KeyObject } from "node:crypto";
import { Lru } from "./lru.js";
import type { SignedParts } from "./signed-parts.js";

/** The digest each signature algorithm OID uses; null for EdDSA, which hashes internally. */
const DIGESTS: Record<string, string | null> = {
  "1.2.840.113549.1.1.5": "sha1",
  "1.2.840.113549.1.1.14": "sha224",
  "1.2.840.113549.1.1.11": "sha256",
  "1.2.840.113549.1.1.12": "sha384",
  "1.2.840.113549.1.1.13": "sha512",
  "1.2.840.10045.4.1": "sha1",
  "1.2.840.10045.4.3.1": "sha224",
  "1.2.840.10045.4.3.2": "sha256",
  "1.2.840.10045.4.3.3": "sha384",
  "1.2.840.10045.4.3.4": "sha512",
  "1.3.101.112": null,
  "1.3.101.113": null,
};

/** A certificate as the chain checks see it: its record (names, dates, fingerprint) and its signed parts. */
export interface SignedCertificate {
  fingerprint: string;
  parts: SignedParts;
  /** The whole DER, for algorithms verified through X509Certificate. */
  der: Uint8Array;
}

/**
 * Verifies signatures and remembers the verdicts, so the intermediate that signs ten thousand
 * Secrets' leaves has its key loaded once, and a pair seen before costs a map lookup. Bounded LRUs.
 */
export class SignatureVerifier {
  readonly #keys: Lru<{ key: KeyObject | null }>;
  readonly #verdicts: Lru<boolean>;
  #verified = 0;

  constructor(maxEntries = 10_000) {
    this.#keys = new Lru(Math.max(1, Math.ceil(maxEntries / 10)));
    this.#verdicts = new Lru(Math.max(1, maxEntries));
  }

  /** Signatures verified so far (remembered verdicts not counted). */
  get verified(): number {
    return this.#verified;
  }

  /** True when `issuer`'s public key verifies `child`'s signature. */
  signedBy(child: SignedCertificate, issuer: SignedCertificate): boolean {
    const id = child.fingerprint + issuer.fingerprint;
    let verdict = this.#verdicts.get(id);
    if (verdict === undefined) {
      verdict = this.#verify(child, issuer);
      this.#verdicts.set(id, verdict);
    }
    return verdict;
  }

  #verify(child: SignedCertificate, issuer: SignedCertificate): boolean {
    this.#verified++;
    const key = this.#publicKey(issuer);
    if (!key) return false;
    try {
      const digest = DIGESTS[child.parts.signatureOid];
      if (digest !== undefined) return verify(digest, child.parts.tbs, key, child.parts.signature);
      return new X509Certificate(child.der).verify(key);
    } catch {
      // A signature OpenSSL cannot even read (wrong length, wrong key type) did not verify.
      return false;
    }
  }

  #publicKey(cert: SignedCertificate): KeyObject | null {
    let entry = this.#keys.get(cert.fingerprint);
    if (!entry) {
      try {
        entry = { key: createPublicKey({ key: Buffer.from(cert.parts.spki), format: "der", type: "spki" }) };
      } catch {
        entry = { key: null };
      }
      this.#keys.set(cert.fingerprint, entry);
    }
    return entry.key;
  }
}
