/**
 * Chain health of a presented bundle (a Secret's tls.crt, a certificate file with its key, a
 * kubeconfig user's client certificate): does it start with the leaf, is each certificate signed by
 * the next, and does it end at a trust anchor. Pure: signatures are checked by OpenSSL through
 * SignatureVerifier, nothing is read or logged. README.md, "Chain health", lists the problems.
 */
import type { CertRecord } from "./record.js";
import type { SignatureVerifier, SignedCertificate } from "./signature.js";

/** Every value of `cert_chain_problem`'s `problem` label, in the order they are documented. */
export const CHAIN_PROBLEMS = [
  "none",
  "wrong_order",
  "signature_mismatch",
  "missing_intermediate",
  "untrusted_root",
  "self_signed",
  "unrelated_certificate",
  "expired_link",
] as const;

export type ChainProblem = (typeof CHAIN_PROBLEMS)[number];

/** A certificate of a bundle or a trust bundle: its record and what signature checks need. */
export interface ChainCertificate extends SignedCertificate {
  record: CertRecord;
}

/** What the bundle's structure says; whether a link has expired is decided when read (problemAt). */
export interface ChainHealth {
  problem: Exclude<ChainProblem, "expired_link">;
  /**
   * The validity every certificate after the leaf shares, trust anchor included: the latest
   * notBefore and the earliest notAfter. Absent when the leaf is its own anchor.
   */
  links?: { notBefore: number; notAfter: number };
}

/** Issuers looked at per certificate, so a bundle of a thousand certificates with one name costs a bounded number of signature checks. */
const MAX_CANDIDATES = 8;

/** Certificates trusted as chain ends, found by subject. */
export class TrustAnchors {
  static readonly EMPTY = new TrustAnchors([]);
  readonly #bySubject = new Map<string, ChainCertificate[]>();

  constructor(certificates: Iterable<ChainCertificate>) {
    for (const cert of certificates) {
      const same = this.#bySubject.get(cert.record.subject);
      if (!same) this.#bySubject.set(cert.record.subject, [cert]);
      else if (same.length < MAX_CANDIDATES) same.push(cert);
    }
  }

  /** Anchors whose subject is `name`. */
  named(name: string): readonly ChainCertificate[] {
    return this.#bySubject.get(name) ?? [];
  }
}

/** Whether the chain has a problem now: `expired_link` when a certificate after the leaf is outside its validity (expired as cert_expired counts it). */
export function problemAt(health: ChainHealth, nowSeconds: number): ChainProblem {
  if (health.problem !== "none" || !health.links) return health.problem;
  return nowSeconds < health.links.notBefore || nowSeconds >= health.links.notAfter ? "expired_link" : "none";
}

/** The first time after `nowSeconds` at which problemAt may answer otherwise: when a link's shared validity starts or ends. */
export function problemChangesAt(health: ChainHealth, nowSeconds: number): number {
  if (health.problem !== "none" || !health.links) return Infinity;
  if (nowSeconds < health.links.notBefore) return health.links.notBefore;
  return nowSeconds < health.links.notAfter ? health.links.notAfter : Infinity;
}

type Found = { issuer: ChainCertificate } | { nameOnly: true } | undefined;

/** The first of `candidates` (by name) that signed `cert`; `nameOnly` when some had its issuer's name but none signed it. */
function issuerAmong(cert: ChainCertificate, candidates: Iterable<ChainCertificate>, verifier: SignatureVerifier): Found {
  let named = false;
  let tried = 0;
  for (const candidate of candidates) {
    if (candidate.record.subject !== cert.record.issuer) continue;
    named = true;
    if (verifier.signedBy(cert, candidate)) return { issuer: candidate };
    if (++tried >= MAX_CANDIDATES) break;
  }
  return named ? { nameOnly: true } : undefined;
}

function* anchorsNamed(anchors: readonly TrustAnchors[], name: string): Generator<ChainCertificate> {
  for (const set of anchors) yield* set.named(name);
}

/** True when an anchor has this certificate's subject and public key: the chain is trusted from here on. */
function isAnchor(cert: ChainCertificate, anchors: readonly TrustAnchors[]): boolean {
  for (const anchor of anchorsNamed(anchors, cert.record.subject)) if (Buffer.compare(anchor.parts.spki, cert.parts.spki) === 0) return true;
  return false;
}

/**
 * Walks the bundle from its first certificate: the first problem met is the one reported. Linear in
 * the bundle: every step moves to the next certificate or ends; at most MAX_CANDIDATES signatures
 * are checked for the one certificate whose issuer is not next. Once a certificate of the bundle is
 * itself an anchor (by subject and key: a cross-signed root, whose self-signed twin is trusted), the
 * rest need not reach another anchor, as OpenSSL stops at the first trusted certificate too. A copy
 * of a certificate already in the chain is not an unrelated one. Undefined for an empty bundle.
 */
export function assessChain(bundle: readonly ChainCertificate[], anchors: readonly TrustAnchors[], verifier: SignatureVerifier): ChainHealth | undefined {
  const leaf = bundle[0];
  if (!leaf) return undefined;
  // The leaf is what a server presents: a bundle holding one that does not come first is out of order.
  if (leaf.record.isCA && bundle.some((cert) => !cert.record.isCA)) return { problem: "wrong_order" };
  let links: { notBefore: number; notAfter: number } | undefined;
  const link = (cert: ChainCertificate) => {
    links = { notBefore: Math.max(links?.notBefore ?? -Infinity, cert.record.notBefore), notAfter: Math.min(links?.notAfter ?? Infinity, cert.record.notAfter) };
  };
  const end = (problem: ChainHealth["problem"]): ChainHealth => (links ? { problem, links } : { problem });
  let anchored = false;
  let at = 0;
  for (;;) {
    const cert = bundle[at]!;
    const next = bundle[at + 1];
    anchored ||= isAnchor(cert, anchors);
    if (cert.record.issuer === cert.record.subject && verifier.signedBy(cert, cert)) {
      // A self-signed end: trusted when an anchor holds its name and key.
      if (anchored) break;
      // A self-signed leaf is trusted by pinning, which no bundle shows: its own problem, not paged.
      return end(at === 0 ? "self_signed" : "untrusted_root");
    }
    if (next && next.record.subject === cert.record.issuer) {
      if (!verifier.signedBy(cert, next)) return end("signature_mismatch");
      link(next);
      at++;
      continue;
    }
    // The next certificate is not the issuer: a later one in the bundle is (wrong order), an anchor is
    // (the chain ends here), or nobody is.
    const later = issuerAmong(cert, bundle.slice(at + 2), verifier);
    if (later && "issuer" in later) return end("wrong_order");
    const anchor = issuerAmong(cert, anchorsNamed(anchors, cert.record.issuer), verifier);
    if (anchor && "issuer" in anchor) {
      link(anchor.issuer);
      break;
    }
    if (anchored) break;
    // Something bears the issuer's name but not its key (a re-keyed CA in ca.crt, a forged copy).
    return end(anchor || later ? "signature_mismatch" : "missing_intermediate");
  }
  const chain = new Set(bundle.slice(0, at + 1).map((cert) => cert.fingerprint));
  return end(bundle.slice(at + 1).some((cert) => !chain.has(cert.fingerprint)) ? "unrelated_certificate" : "none");
}
