/**
 * Parser benchmark: certificates per second for node:crypto's X509Certificate, @peculiar/x509, our
 * parser and our cached parse, on a 1,000-certificate PEM bundle and on 1,000 single DER certificates.
 * Every path reads the same facts (names, validity, serial, SANs, CA flag, key, fingerprint; the
 * signature algorithm where the library offers it), so the comparison is like for like.
 *
 *   npx tsx bench/parse.ts
 */
import { createHash, X509Certificate as NodeX509 } from "node:crypto";
import { pathToFileURL } from "node:url";
import { makeCert, sharedKeys, x509, type Issued } from "../scripts/certgen.js";
import { parseCertificates } from "../src/certs/parse.js";
import { ParseCache } from "../src/certs/cache.js";
import { type BenchRow, printTable } from "./report.js";

const CERTS = 1000;

async function makeCorpus(): Promise<Issued[]> {
  const rsaKeys = await sharedKeys("rsa-2048");
  const ca = await makeCert({ cn: "Bench CA", ca: true, notAfterDays: 3650 });
  const certs: Issued[] = [];
  for (let i = 0; i < CERTS; i++) {
    const host = `svc-${i}.ns-${i % 37}.svc.cluster.local`;
    certs.push(
      await makeCert({
        subject: `CN=${host}, O=Bench Org, C=DE`,
        sans: [host, `*.svc-${i}.example.com`, `IP:10.0.${i >> 8}.${i & 255}`],
        issuer: ca,
        // One in ten with an RSA key, like a real cluster's mix.
        ...(i % 10 === 0 ? { keys: rsaKeys, key: "rsa-2048" as const } : {}),
        notAfterDays: 30 + (i % 365),
      }),
    );
  }
  return certs;
}

/** Runs `fn` (which reads `perCall` certificates) for about `ms` milliseconds after a warm-up; returns certificates/second. */
function rate(fn: () => void, perCall: number, ms = 600): number {
  for (let i = 0; i < 3; i++) fn();
  let calls = 0;
  const start = performance.now();
  let elapsed = 0;
  while (elapsed < ms) {
    fn();
    calls++;
    elapsed = performance.now() - start;
  }
  return (calls * perCall * 1000) / elapsed;
}

let sink = 0;

function viaNode(cert: NodeX509): void {
  const key = cert.publicKey;
  const fields = [cert.subject, cert.issuer, cert.serialNumber, cert.fingerprint256, cert.subjectAltName ?? "", key.asymmetricKeyType ?? ""];
  sink += Date.parse(cert.validFrom) + Date.parse(cert.validTo) + (cert.ca ? 1 : 0) + (key.asymmetricKeyDetails?.modulusLength ?? 0);
  for (const f of fields) sink += f.length;
}

function viaPeculiar(cert: x509.X509Certificate): void {
  const bc = cert.getExtension(x509.BasicConstraintsExtension);
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
  const fields = [cert.subject, cert.issuer, cert.serialNumber, cert.publicKey.algorithm.name, JSON.stringify(cert.signatureAlgorithm)];
  sink += cert.notBefore.getTime() + cert.notAfter.getTime() + (bc?.ca ? 1 : 0) + (san?.names.items.length ?? 0);
  sink += createHash("sha256").update(new Uint8Array(cert.rawData)).digest("hex").length;
  for (const f of fields) sink += f.length;
}

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

export async function benchParse(): Promise<BenchRow[]> {
  const corpus = await makeCorpus();
  const bundle = Buffer.from(corpus.map((c) => `subject=${c.cert.subject}\n${c.pem}`).join(""));
  const ders = corpus.map((c) => new Uint8Array(c.der));
  const rows: BenchRow[] = [];

  const node = "node:crypto X509Certificate";
  const peculiar = "@peculiar/x509";
  const ours = "parseCertificates (chosen)";
  const cached = "ParseCache.parse (hit)";

  const bundleText = bundle.toString("latin1");
  rows.push({ name: `${node}, PEM bundle`, unit: "certs/s", value: rate(() => {
    for (const block of bundleText.match(PEM_BLOCK) ?? []) viaNode(new NodeX509(block));
  }, CERTS) });
  rows.push({ name: `${peculiar}, PEM bundle`, unit: "certs/s", baseline: `${node}, PEM bundle`, value: rate(() => {
    for (const block of bundleText.match(PEM_BLOCK) ?? []) viaPeculiar(new x509.X509Certificate(block));
  }, CERTS) });
  rows.push({ name: `${ours}, PEM bundle`, unit: "certs/s", baseline: `${node}, PEM bundle`, value: rate(() => {
    sink += parseCertificates(bundle).length;
  }, CERTS) });
  const bundleCache = new ParseCache(16);
  rows.push({ name: `${cached}, PEM bundle`, unit: "certs/s", baseline: `${node}, PEM bundle`, value: rate(() => {
    sink += bundleCache.parse(bundle).length;
  }, CERTS) });

  rows.push({ name: `${node}, single DER`, unit: "certs/s", value: rate(() => {
    for (const der of ders) viaNode(new NodeX509(der));
  }, CERTS) });
  rows.push({ name: `${peculiar}, single DER`, unit: "certs/s", baseline: `${node}, single DER`, value: rate(() => {
    for (const der of ders) viaPeculiar(new x509.X509Certificate(der));
  }, CERTS) });
  rows.push({ name: `${ours}, single DER`, unit: "certs/s", baseline: `${node}, single DER`, value: rate(() => {
    for (const der of ders) sink += parseCertificates(der).length;
  }, CERTS) });
  const derCache = new ParseCache(CERTS * 2);
  rows.push({ name: `${cached}, single DER`, unit: "certs/s", baseline: `${node}, single DER`, value: rate(() => {
    for (const der of ders) sink += derCache.parse(der).length;
  }, CERTS) });

  if (sink === 0) throw new Error("benchmark read nothing");
  return rows;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const rows = await benchParse();
  printTable(`Certificate parsing, ${CERTS} certificates (Node ${process.version})`, rows);
}
