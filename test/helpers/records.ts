import type { CertRecord } from "../../src/certs/record.js";

const DAY = 86_400;

/** A certificate record built by hand, for tests of what consumes records rather than parses them. */
export function record(overrides: Partial<CertRecord> & { daysLeft?: number } = {}): CertRecord {
  const now = Math.floor(Date.now() / 1000);
  const { daysLeft = 90, ...rest } = overrides;
  return {
    notBefore: now - DAY,
    notAfter: now + Math.round(daysLeft * DAY),
    subject: "CN=example.test",
    subjectCN: "example.test",
    issuer: "CN=Example CA",
    issuerCN: "Example CA",
    serial: "0a1b",
    sans: ["DNS:example.test"],
    isCA: false,
    keyUsage: 0,
    extendedKeyUsage: "",
    fingerprintSha256: "ab".repeat(32),
    keyAlgorithm: "ECDSA",
    keyBits: 256,
    signatureAlgorithm: "ecdsa-with-SHA256",
    ...rest,
  };
}
