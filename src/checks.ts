/**
 * Key and chain checks of presented certificates: a bundle a workload serves or presents (a Secret's
 * tls.crt, a file with its key, a kubeconfig user's client certificate) is parsed with its DER kept
 * for the call, compared with its private key and walked up to a trust anchor. The results go on the
 * location (`keyPair`, `chain`); the DER, the key and anything derived from the key do not.
 */
import { createHash } from "node:crypto";
import type { ParseCache } from "./certs/cache.js";
import { Lru } from "./certs/lru.js";
import { TrustAnchors, assessChain, type ChainCertificate, type ChainHealth } from "./certs/chain.js";
import type { CertFormat } from "./certs/parse.js";
import { keyPairStatus, type KeyPairStatus } from "./certs/private-key.js";
import type { CertList } from "./certs/record.js";
import { SignatureVerifier } from "./certs/signature.js";
import { signedParts } from "./certs/signed-parts.js";
import type { Logger } from "./log.js";
import { readFileBounded } from "./read-bounded.js";

export interface ChecksConfig {
  privateKeys: boolean;
  chains: boolean;
  publicRoots: boolean;
  trustBundles: readonly string[];
}

export const NO_CHECKS: ChecksConfig = { privateKeys: false, chains: false, publicRoots: false, trustBundles: [] };

/** What the checks found for one location; absent fields were not checked. */
export interface LocationChecks {
  keyPair?: KeyPairStatus;
  chain?: ChainHealth;
}

/** What a presented bundle comes with: its private key (`null`: the key is expected but absent) and the inputs of CA certificates beside it. */
export interface Presented {
  privateKey?: Uint8Array | null;
  ca?: readonly Uint8Array[];
}

/** A trust bundle file larger than this is not read: Mozilla's whole store is 220 KiB. */
const MAX_TRUST_BUNDLE_BYTES = 4 * 1024 * 1024;

/** Distinct sets of CA certificates remembered (a cluster has a handful of CAs). */
const MAX_LOCAL_ANCHOR_SETS = 256;

/** Distinct chain results kept for sharing: leaves of one intermediate share one object. */
const MAX_SHARED_RESULTS = 4096;

export class CertificateChecks {
  readonly config: ChecksConfig;
  readonly #cache: ParseCache;
  readonly #log: Logger | undefined;
  readonly #verifier = new SignatureVerifier();
  readonly #shared = new Map<string, ChainHealth>();
  readonly #local = new Lru<TrustAnchors>(MAX_LOCAL_ANCHOR_SETS);
  #anchors: TrustAnchors | undefined;

  constructor(config: ChecksConfig, cache: ParseCache, log?: Logger) {
    this.config = config;
    this.#cache = cache;
    this.#log = log;
  }

  /** Signatures verified so far: the work chain checks did. */
  get signaturesVerified(): number {
    return this.#verifier.verified;
  }

  /** True when a presented bundle needs its DER for some check. */
  get active(): boolean {
    return this.config.privateKeys || this.config.chains;
  }

  /**
   * Parses a presented bundle and runs the checks the configuration turns on. Throws CertReadError as
   * ParseCache.parse does; a check that cannot run leaves its field out rather than failing the location.
   */
  presented(bytes: Uint8Array, format: CertFormat, beside: Presented): { records: CertList; checks: LocationChecks; leafPublicKey?: Uint8Array } {
    if (!this.active) return { records: this.#cache.parse(bytes, format), checks: {} };
    const { records, ders } = this.#cache.parseWithDer(bytes, format);
    const bundle = this.#chainCertificates(records, ders);
    const checks: LocationChecks = {};
    const leaf = bundle[0];
    if (leaf && beside.privateKey !== undefined) {
      const status = this.keyPair(beside.privateKey, leaf.parts.spki);
      if (status) checks.keyPair = status;
    }
    if (this.config.chains && bundle.length > 0) {
      const local = beside.ca?.length ? this.#localAnchors(beside.ca) : TrustAnchors.EMPTY;
      const health = assessChain(bundle, [local, this.#globalAnchors()], this.#verifier);
      if (health) checks.chain = this.#share(health);
    }
    // The leaf's subjectPublicKeyInfo (a view into `bytes`), for a key read apart from its certificate.
    return leaf ? { records, checks, leafPublicKey: leaf.parts.spki } : { records, checks };
  }

  /** Whether `key` (null: expected but absent) is the private half of the certificate with this subjectPublicKeyInfo; undefined when keys are not checked. */
  keyPair(key: Uint8Array | null, certificatePublicKey: Uint8Array): KeyPairStatus | undefined {
    if (!this.config.privateKeys) return undefined;
    return key === null ? "missing" : keyPairStatus(key, certificatePublicKey);
  }

  /** One object per distinct result, so a hundred thousand healthy Secrets hold a handful. */
  #share(health: ChainHealth): ChainHealth {
    const id = `${health.problem}/${health.links?.notBefore ?? ""}/${health.links?.notAfter ?? ""}`;
    const known = this.#shared.get(id);
    if (known) return known;
    const frozen = Object.freeze({ ...health, ...(health.links ? { links: Object.freeze({ ...health.links }) } : {}) });
    if (this.#shared.size < MAX_SHARED_RESULTS) this.#shared.set(id, frozen);
    return frozen;
  }

  /** Records paired with their signed parts; a certificate our reader took and this split refuses ends the list there. */
  #chainCertificates(records: CertList, ders: readonly Uint8Array[]): ChainCertificate[] {
    const out: ChainCertificate[] = [];
    for (let i = 0; i < records.length && i < ders.length; i++) {
      const record = records[i]!;
      try {
        out.push({ record, fingerprint: record.fingerprintSha256, der: ders[i]!, parts: signedParts(ders[i]!) });
      } catch {
        break;
      }
    }
    return out;
  }

  /**
   * The CA certificates beside a bundle (a Secret's ca.crt, a kubeconfig's cluster CAs); unreadable
   * inputs are no anchors. Remembered by content: thousands of Secrets carry the same ca.crt.
   */
  #localAnchors(inputs: readonly Uint8Array[]): TrustAnchors {
    const hash = createHash("sha256");
    for (const bytes of inputs) hash.update(bytes).update("\0");
    const id = hash.digest("base64");
    let anchors = this.#local.get(id);
    if (!anchors) {
      anchors = this.#readAnchors(inputs);
      this.#local.set(id, anchors);
    }
    return anchors;
  }

  #readAnchors(inputs: readonly Uint8Array[]): TrustAnchors {
    const certificates: ChainCertificate[] = [];
    for (const bytes of inputs) {
      try {
        const { records, ders } = this.#cache.parseWithDer(bytes, "auto");
        certificates.push(...this.#chainCertificates(records, ders));
      } catch {
        // Its own location reports why it cannot be read.
      }
    }
    return new TrustAnchors(certificates);
  }

  /** Node's bundled roots and the configured trust bundles, read on first use. */
  #globalAnchors(): TrustAnchors {
    if (this.#anchors) return this.#anchors;
    const certificates: ChainCertificate[] = [];
    const warn = (what: string, err: unknown) =>
      this.#log?.warn({ trustBundle: what, err: err instanceof Error ? err.message : String(err) }, "cannot read a trust bundle; its certificates complete no chain");
    const add = (what: string, read: () => Uint8Array) => {
      try {
        const { records, ders } = this.#cache.parseWithDer(read(), "auto");
        certificates.push(...this.#chainCertificates(records, ders));
      } catch (err) {
        warn(what, err);
      }
    };
    // node:tls is loaded here, on the first chain check, not at start: `check` of one file never needs it.
    if (this.config.publicRoots) add("public roots", () => Buffer.from(process.getBuiltinModule("node:tls").rootCertificates.join("\n")));
    for (const path of this.config.trustBundles) add(path, () => readFileBounded(path, MAX_TRUST_BUNDLE_BYTES));
    this.#anchors = new TrustAnchors(certificates);
    return this.#anchors;
  }
}
