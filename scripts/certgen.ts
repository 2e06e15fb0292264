/**
 * Makes real certificates at run time for tests, benchmarks and the demo, so nothing in the
 * repository expires. Built on @peculiar/x509 with Node's WebCrypto.
 */
import "reflect-metadata";
import { webcrypto } from "node:crypto";
import * as x509 from "@peculiar/x509";

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

export type KeyKind = "ec-p256" | "ec-p384" | "rsa-2048" | "rsa-4096" | "ed25519";

const DAY_MS = 86_400_000;

const ALGORITHMS: Record<KeyKind, RsaHashedKeyGenParams | EcKeyGenParams | Algorithm> = {
  "ec-p256": { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as EcKeyGenParams,
  "ec-p384": { name: "ECDSA", namedCurve: "P-384", hash: "SHA-384" } as EcKeyGenParams,
  "rsa-2048": { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256", publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 },
  "rsa-4096": { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256", publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 4096 },
  ed25519: { name: "Ed25519" },
};

export interface Issued {
  cert: x509.X509Certificate;
  keys: CryptoKeyPair;
  keyKind: KeyKind;
  /** PEM of the certificate alone. */
  pem: string;
  der: Buffer;
}

export interface CertSpec {
  /** Subject as a DN string ("CN=x, O=y") or x509 JSON name; defaults to CN=<cn>. */
  subject?: string | x509.JsonName;
  cn?: string;
  /** Days from now; negative for the past. Defaults: notBefore -1, notAfter +90. */
  notBeforeDays?: number;
  notAfterDays?: number;
  notBefore?: Date;
  notAfter?: Date;
  issuer?: Issued;
  ca?: boolean;
  /** keyUsage flags (x509.KeyUsageFlags, named bit n as 1 << n); no extension when absent. */
  keyUsage?: number;
  /** extendedKeyUsage purposes as dotted OIDs; no extension when absent. */
  extendedKeyUsage?: string[];
  /** "DNS:x", "IP:x" or a bare DNS name. */
  sans?: string[];
  key?: KeyKind;
  /** Reuse a key pair, which makes bulk generation fast. */
  keys?: CryptoKeyPair;
  serial?: string;
}

const keyCache = new Map<KeyKind, Promise<CryptoKeyPair>>();

/** One key pair per kind for the whole process: generating RSA 4096 keys is slow. */
export function sharedKeys(kind: KeyKind): Promise<CryptoKeyPair> {
  let keys = keyCache.get(kind);
  if (!keys) {
    keys = webcrypto.subtle.generateKey(ALGORITHMS[kind] as EcKeyGenParams, true, ["sign", "verify"]) as Promise<CryptoKeyPair>;
    keyCache.set(kind, keys);
  }
  return keys;
}

let serialCounter = 0;

function sanEntry(san: string): x509.JsonGeneralName {
  if (san.startsWith("IP:")) return { type: "ip", value: san.slice(3) };
  if (san.startsWith("email:")) return { type: "email", value: san.slice(6) };
  if (san.startsWith("URI:")) return { type: "url", value: san.slice(4) };
  return { type: "dns", value: san.replace(/^DNS:/, "") };
}

export async function makeCert(spec: CertSpec = {}): Promise<Issued> {
  const keyKind = spec.key ?? "ec-p256";
  const keys = spec.keys ?? (await sharedKeys(keyKind));
  const now = Date.now();
  const notBefore = spec.notBefore ?? new Date(now + (spec.notBeforeDays ?? -1) * DAY_MS);
  const notAfter = spec.notAfter ?? new Date(now + (spec.notAfterDays ?? 90) * DAY_MS);
  const subject = spec.subject ?? `CN=${spec.cn ?? "test"}`;
  const extensions: x509.Extension[] = [new x509.BasicConstraintsExtension(spec.ca ?? false, undefined, true)];
  if (spec.sans?.length) extensions.push(new x509.SubjectAlternativeNameExtension(spec.sans.map(sanEntry)));
  if (spec.keyUsage !== undefined) extensions.push(new x509.KeyUsagesExtension(spec.keyUsage, true));
  if (spec.extendedKeyUsage) extensions.push(new x509.ExtendedKeyUsageExtension(spec.extendedKeyUsage));
  const serialNumber = spec.serial ?? (++serialCounter).toString(16).padStart(2, "0") + Math.floor(Math.random() * 0xffffff).toString(16).padStart(6, "0");
  const issuer = spec.issuer;
  const signingKeyKind = issuer?.keyKind ?? keyKind;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber,
    subject,
    issuer: issuer ? issuer.cert.subjectName : subject,
    notBefore,
    notAfter,
    publicKey: keys.publicKey,
    signingKey: issuer ? issuer.keys.privateKey : keys.privateKey,
    signingAlgorithm: ALGORITHMS[signingKeyKind],
    extensions,
  });
  return { cert, keys, keyKind, pem: cert.toString("pem") + "\n", der: Buffer.from(cert.rawData) };
}

/** A root CA, an intermediate CA and a leaf for `host`, each valid for the given days. */
export async function makeChain(host = "localhost", leafDays = 90): Promise<{ root: Issued; intermediate: Issued; leaf: Issued }> {
  const root = await makeCert({ cn: "Test Root CA", ca: true, notAfterDays: 3650 });
  const intermediate = await makeCert({ cn: "Test Intermediate CA", ca: true, issuer: root, notAfterDays: 1825 });
  const leaf = await makeCert({ cn: host, issuer: intermediate, sans: [host, "IP:127.0.0.1"], notAfterDays: leafDays });
  return { root, intermediate, leaf };
}

/** PKCS#8 PEM of a certificate's private key, for TLS servers in tests. */
export async function privateKeyPem(issued: Issued): Promise<string> {
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", issued.keys.privateKey));
  return `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString("base64").replace(/.{64}/g, "$&\n")}\n-----END PRIVATE KEY-----\n`;
}

/** A PKCS#7 (certs-only SignedData) bundle of certificates. */
export function pkcs7(certs: Issued[], format: "der" | "pem" = "der"): Buffer | string {
  const bundle = new x509.X509Certificates(certs.map((c) => c.cert));
  return format === "pem" ? bundle.export("pem") : Buffer.from(bundle.export("raw"));
}

/** A PKCS#10 request in PEM. */
export async function csrPem(cn = "request"): Promise<string> {
  const keys = await sharedKeys("ec-p256");
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: `CN=${cn}`, keys, signingAlgorithm: ALGORITHMS["ec-p256"] });
  return csr.toString("pem") + "\n";
}

/** A CRL in PEM, issued by `issuer`. */
export async function crlPem(issuer: Issued): Promise<string> {
  const crl = await x509.X509CrlGenerator.create({
    issuer: issuer.cert.subjectName,
    thisUpdate: new Date(),
    nextUpdate: new Date(Date.now() + 7 * DAY_MS),
    entries: [],
    signingKey: issuer.keys.privateKey,
    signingAlgorithm: ALGORITHMS[issuer.keyKind],
  });
  return crl.toString("pem") + "\n";
}

export { x509 };

/**
 * A self-signed Ed25519 certificate DER whose subject and issuer commonName hold exactly `value`
 * under ASN.1 string tag `tag` (0x14 TeletexString, 0x1e BMPString, 0x0c UTF8String holding invalid
 * UTF-8, …), which no generator library writes. Made by issuing with a placeholder CN of the same
 * length, substituting it in the to-be-signed part and signing that again, so the signature is valid.
 */
export async function makeCertWithRawCN(tag: number, value: Uint8Array, spec: Omit<CertSpec, "subject" | "cn" | "key" | "issuer"> = {}): Promise<Buffer> {
  if (value.length < 4 || value.length > 100) throw new RangeError("raw CN must be 4..100 bytes");
  const placeholder = Array.from({ length: value.length }, (_, i) => "QXZJWKV"[(i * 5 + value.length) % 7]).join("");
  const issued = await makeCert({ ...spec, cn: placeholder, key: "ed25519" });
  const der = Buffer.from(issued.der);
  const needle = Buffer.from(placeholder, "latin1");
  let found = 0;
  for (let at = der.indexOf(needle); at >= 0; at = der.indexOf(needle, at + needle.length)) {
    if (der[at - 1] !== value.length) continue;
    der[at - 2] = tag;
    Buffer.from(value).copy(der, at);
    found++;
  }
  if (found !== 2) throw new Error(`placeholder CN found ${found} times, expected 2`);
  // Certificate ::= SEQUENCE { tbs, signatureAlgorithm, signature BIT STRING }: an Ed25519 signature
  // is 64 bytes, the last of the certificate, so the lengths do not change.
  const headerLen = (b: number) => (b < 0x80 ? 2 : 2 + (b & 0x7f));
  const tbsStart = headerLen(der[1]!);
  const tbsLenByte = der[tbsStart + 1]!;
  let tbsLen = 0;
  if (tbsLenByte < 0x80) tbsLen = tbsLenByte;
  else for (let i = 0; i < (tbsLenByte & 0x7f); i++) tbsLen = tbsLen * 256 + der[tbsStart + 2 + i]!;
  const tbsEnd = tbsStart + headerLen(tbsLenByte) + tbsLen;
  const signature = Buffer.from(await webcrypto.subtle.sign("Ed25519", issued.keys.privateKey, der.subarray(tbsStart, tbsEnd)));
  signature.copy(der, der.length - 64);
  return der;
}
