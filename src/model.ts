/**
 * The model every layer shares: where certificates were found and what was found there. Sources,
 * the prober, the inventory, metrics, `check` and the status page all import these; this module
 * imports nothing but other model types.
 */
import type { ChainHealth } from "./certs/chain.js";
import type { KeyPairStatus } from "./certs/private-key.js";
import type { CertRecord, CrlRecord } from "./certs/record.js";
import type { ReadErrorReason } from "./errors.js";

export type SourceKind = "secret" | "endpoint" | "kubeconfig" | "file" | "configmap" | "cabundle" | "csr";

/** Where certificates were found; these four values are the location labels of every series. */
export interface Location {
  source: SourceKind;
  namespace: string;
  name: string;
  key: string;
}

/** Per-certificate alert thresholds set by annotations on the object that holds the certificate. */
export interface Thresholds {
  warningDays?: number;
  criticalDays?: number;
}

/** The cert-manager Certificate that manages a Secret, from its annotations. */
export interface CertManagerLink {
  certificateName: string;
  issuerName: string;
  issuerKind: string;
}

/** What one probe of a TLS endpoint found, beside the certificates it was presented. */
export interface EndpointProbe {
  success: boolean;
  chainVerified: boolean;
  /** Why verification failed (OpenSSL's code, e.g. CERT_HAS_EXPIRED), "" when it passed. */
  verifyError: string;
  hostnameMatch: boolean;
  tlsVersion: string;
  cipher: string;
  durationSeconds: number;
  /** Why the probe failed (a ReadErrorReason such as connect_timeout); absent when it succeeded. */
  reason?: ReadErrorReason;
  /** A human-readable account of the failure; absent when the probe succeeded. */
  message?: string;
  /** The OCSP response the server stapled; absent when the handshake did not get that far. */
  ocsp?: OcspFacts;
}

/** The leaf's status in a stapled OCSP response; `malformed` when the staple gives none for the leaf. */
export type OcspStatus = "good" | "revoked" | "unknown" | "malformed";

/** Every status, in the order `cert_endpoint_ocsp_status` exposes them. */
export const OCSP_STATUSES: readonly OcspStatus[] = ["good", "revoked", "unknown", "malformed"];

/** What an endpoint stapled to its handshake, read for its leaf only (src/probe/ocsp.ts). */
export interface OcspFacts {
  /** The server sent an OCSP response (status_request) in the handshake. */
  stapled: boolean;
  /** The leaf's status; absent when nothing was stapled. */
  status?: OcspStatus;
  /** Of the leaf's SingleResponse, Unix seconds; absent when malformed or not stapled. */
  thisUpdate?: number;
  /** Absent also when the responder set none (RFC 6960: newer information is always available). */
  nextUpdate?: number;
  /** When revoked. */
  revocationTime?: number;
  /** Why the status is `malformed`. */
  detail?: string;
}

export interface LocationEntry {
  location: Location;
  certificates: readonly CertRecord[];
  /** The CRLs found beside the certificates (a PEM `X509 CRL` block, a DER CRL), in input order; absent when none. */
  crls?: readonly CrlRecord[];
  error?: { reason: ReadErrorReason; message: string };
  thresholds?: Thresholds;
  certManager?: CertManagerLink;
  probe?: EndpointProbe;
  /** Whether the private key beside a presented certificate is its own (src/checks.ts); absent when not checked. */
  keyPair?: KeyPairStatus;
  /** The presented bundle's chain (src/certs/chain.ts); absent when not checked. */
  chain?: ChainHealth;
  /**
   * Indexes of the certificates a newer one with the same subject, key usage, extended key usage and
   * CA flag replaces at this location (src/superseded.ts), ascending; absent when none.
   */
  superseded?: readonly number[];
  /**
   * The location's source can no longer read it (its scope is refused) and keeps the last-known
   * certificates, so their alerts go on; absent while current. Every replace clears it.
   */
  stale?: true;
}

export type LocationUpdate = Omit<LocationEntry, "location" | "stale">;

/**
 * Why a location currently fails, or undefined. A probe can fail after the certificates arrived
 * (a client certificate was demanded): the certificates are kept and the failure still counts.
 */
export function failureReason(entry: LocationEntry): ReadErrorReason | undefined {
  return entry.error?.reason ?? (entry.probe && !entry.probe.success ? entry.probe.reason : undefined);
}

/** The identity of a location as one string; the separator cannot appear in Kubernetes names. */
export function locationId(location: Location): string {
  return `${location.source}\u0000${location.namespace}\u0000${location.name}\u0000${location.key}`;
}
