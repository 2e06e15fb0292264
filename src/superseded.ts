/**
 * Which certificates of one location a newer one replaces: a renewed certificate left beside the old
 * one in a bundle would otherwise raise the old one's expiry alerts. Worked out once per location
 * update (src/sources/source.ts), never at a scrape.
 */
import type { CertRecord } from "./certs/record.js";

/**
 * Certificates for the same thing: the same subject, key usage, extended key usage and CA flag. An
 * empty subject names nothing (the certificate is known by its SANs), so such certificates never group.
 */
function groupKey(cert: CertRecord): string | undefined {
  return cert.subject === "" ? undefined : `${cert.isCA ? "CA" : "leaf"}\u0000${cert.keyUsage}\u0000${cert.extendedKeyUsage}\u0000${cert.subject}`;
}

/** Later notBefore, then later notAfter; on a tie the later index, which is `b`'s. */
function newer(a: CertRecord, b: CertRecord): boolean {
  return a.notBefore > b.notBefore || (a.notBefore === b.notBefore && a.notAfter > b.notAfter);
}

/**
 * The indexes, ascending, of every certificate of `certificates` (one location's, in order) that is
 * not the newest of its group; undefined when there are none. One pass with a map by group.
 */
export function supersededIndexes(certificates: readonly CertRecord[]): readonly number[] | undefined {
  if (certificates.length < 2) return undefined;
  const newest = new Map<string, number>();
  let superseded: boolean[] | undefined;
  for (let index = 0; index < certificates.length; index++) {
    const key = groupKey(certificates[index] as CertRecord);
    if (key === undefined) continue;
    const held = newest.get(key);
    if (held === undefined) {
      newest.set(key, index);
      continue;
    }
    superseded ??= [];
    // Walking in index order, the certificate at hand is the later one and wins a tie.
    if (newer(certificates[held] as CertRecord, certificates[index] as CertRecord)) superseded[index] = true;
    else {
      superseded[held] = true;
      newest.set(key, index);
    }
  }
  if (!superseded) return undefined;
  const indexes: number[] = [];
  superseded.forEach((marked, index) => {
    if (marked) indexes.push(index);
  });
  return Object.freeze(indexes);
}
