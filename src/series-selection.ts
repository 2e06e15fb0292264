/**
 * Which per-certificate series the exporter sends: the families, the heavy `cert_info` labels, which
 * certificates are exported at all, and whether superseded ones are marked. Every certificate costs its scraper one series per
 * family in every scrape, so this is the knob of the Prometheus-side cost (README.md, "Choosing the series").
 */

/** Every per-certificate family, in the order they are exposed. */
export const CERTIFICATE_FAMILY_NAMES = [
  "cert_not_after_timestamp_seconds",
  "cert_not_before_timestamp_seconds",
  "cert_expires_in_days",
  "cert_expired",
  "cert_info",
] as const;

export type CertificateFamilyName = (typeof CERTIFICATE_FAMILY_NAMES)[number];

/**
 * The families that cannot be left out: the bundled alerts and dashboards compute days left from
 * notAfter and a certificate's lifetime (short-lived thresholds, not yet valid) from notBefore.
 */
export const REQUIRED_FAMILIES: readonly CertificateFamilyName[] = ["cert_not_after_timestamp_seconds", "cert_not_before_timestamp_seconds"];

/**
 * Three series per certificate: the two dates, which Prometheus stores almost for free since they
 * do not change between scrapes, and `cert_info` for the fingerprint and key. `cert_expires_in_days`
 * and `cert_expired` are derived from notAfter and change every scrape; they are there for
 * dashboards and queries written against them (README.md, "Choosing the series", has the measurements).
 */
export const DEFAULT_FAMILIES: readonly CertificateFamilyName[] = [...REQUIRED_FAMILIES, "cert_info"];

/** `cert_info` labels sent only when asked for: together they are most of its bytes. */
export const OPTIONAL_INFO_LABELS = ["subject", "issuer", "sans"] as const;

export type OptionalInfoLabel = (typeof OPTIONAL_INFO_LABELS)[number];

/**
 * Which certificates are sent at all: every one (false), those that are not CAs (true: no
 * basicConstraints cA), or the first of each location ("first", index 0). A location's read errors
 * show either way.
 */
export type LeafOnly = boolean | "first";

export interface SeriesSelection {
  certificateFamilies: readonly CertificateFamilyName[];
  infoLabels: readonly OptionalInfoLabel[];
  leafOnly: LeafOnly;
  /**
   * `cert_superseded` for the certificates a newer one replaces at their location, which the bundled
   * expiry alerts leave out. Not a family of the list above: the alerts read it whatever the families.
   */
  markSuperseded: boolean;
}

export const DEFAULT_SELECTION: SeriesSelection = { certificateFamilies: DEFAULT_FAMILIES, infoLabels: [], leafOnly: false, markSuperseded: true };

/** Every family and label: what the exporter sent before the choice existed, and the superseded marks. */
export const FULL_SELECTION: SeriesSelection = { certificateFamilies: CERTIFICATE_FAMILY_NAMES, infoLabels: OPTIONAL_INFO_LABELS, leafOnly: false, markSuperseded: true };

/** Whether the certificate at `index` of its location is sent under `leafOnly`. */
export function certificateSelected(leafOnly: LeafOnly, isCA: boolean, index: number): boolean {
  if (leafOnly === "first") return index === 0;
  return !(leafOnly && isCA);
}
