/**
 * Key and chain checks: what they add to reading a presented Secret (tls.crt with its intermediate,
 * tls.key, ca.crt), next to the parse alone that reading it costs without them; and the two choices
 * behind src/certs/private-key.ts and src/certs/signature.ts, each next to what OpenSSL's general
 * path (node:crypto's key decoder, X509Certificate) costs for the same work.
 *
 *   npm run bench -- chain          (BENCH_CHAIN_SECRETS: presented Secrets per run, default 2,000)
 */
import { X509Certificate, createPrivateKey, createPublicKey } from "node:crypto";
import { makeCert, privateKeyPem, type Issued, type KeyKind } from "../scripts/certgen.js";
import { ParseCache } from "../src/certs/cache.js";
import { keyPairStatus } from "../src/certs/private-key.js";
import { SignatureVerifier } from "../src/certs/signature.js";
import { signedParts } from "../src/certs/signed-parts.js";
import { CertificateChecks } from "../src/checks.js";
import type { BenchRow } from "./report.js";

const SECRETS = Number(process.env.BENCH_CHAIN_SECRETS ?? 2000);
const RUNS = 5;

interface Presented {
  bundle: Buffer;
  key: Buffer;
  leaf: Issued;
}

async function corpus(kind: KeyKind): Promise<{ root: Issued; intermediate: Issued; secrets: Presented[] }> {
  const root = await makeCert({ cn: "Bench Root", ca: true, key: "rsa-2048", notAfterDays: 3650 });
  const intermediate = await makeCert({ cn: "Bench Intermediate", ca: true, issuer: root, key: kind, notAfterDays: 1825 });
  const secrets: Presented[] = [];
  for (let i = 0; i < SECRETS; i++) {
    const leaf = await makeCert({ cn: `svc-${i}.example.com`, issuer: intermediate, key: kind, notAfterDays: 90 });
    secrets.push({ bundle: Buffer.from(leaf.pem + intermediate.pem), key: Buffer.from(await privateKeyPem(leaf)), leaf });
  }
  return { root, intermediate, secrets };
}

/** Median microseconds per item of `RUNS` runs of `run` over `items` items, with the range. */
function perItem(name: string, items: number, run: () => void, baseline?: string): BenchRow {
  run(); // warm-up
  const runs: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const start = performance.now();
    run();
    runs.push(((performance.now() - start) * 1000) / items);
  }
  runs.sort((a, b) => a - b);
  return { name, value: runs[Math.floor(RUNS / 2)]!, unit: "µs each", range: [runs[0]!, runs[RUNS - 1]!], ...(baseline ? { baseline } : {}) };
}

let sink = 0;

export async function benchChain(): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  for (const kind of ["rsa-2048", "ec-p256"] as const) {
    const { root, secrets } = await corpus(kind);
    const ca = [Buffer.from(root.pem)];
    const parseOnly = `${kind}: parse tls.crt (no checks)`;
    rows.push(
      perItem(parseOnly, secrets.length, () => {
        const cache = new ParseCache(20_000);
        for (const s of secrets) sink += cache.parse(s.bundle).length;
      }),
    );
    rows.push(
      perItem(
        `${kind}: parse + key + chain`,
        secrets.length,
        () => {
          // Fresh caches each run: every leaf's signature is verified, as at an exporter's start.
          const cache = new ParseCache(20_000);
          const checks = new CertificateChecks({ privateKeys: true, chains: true, publicRoots: false, trustBundles: [] }, cache);
          for (const s of secrets) {
            const { checks: found } = checks.presented(s.bundle, "auto", { privateKey: s.key, ca });
            if (found.keyPair !== "match" || found.chain?.problem !== "none") throw new Error(`unexpected ${found.keyPair} ${found.chain?.problem}`);
          }
        },
        parseOnly,
      ),
    );
    const spkis = secrets.map((s) => signedParts(s.leaf.der).spki);
    const openssl = `${kind}: key vs certificate, node:crypto decoder`;
    rows.push(
      perItem(openssl, secrets.length, () => {
        secrets.forEach((s, i) => {
          const certKey = createPublicKey({ key: Buffer.from(spkis[i]!), format: "der", type: "spki" });
          sink += createPublicKey(createPrivateKey(s.key)).equals(certKey) ? 1 : 0;
        });
      }),
    );
    rows.push(perItem(`${kind}: key vs certificate, ours`, secrets.length, () => secrets.forEach((s, i) => (sink += keyPairStatus(s.key, spkis[i]!).length)), openssl));
    const intermediate = new X509Certificate(secrets[0]!.bundle.subarray(secrets[0]!.bundle.indexOf("-----BEGIN", 10)));
    const x509Verify = `${kind}: leaf signature, X509Certificate.verify`;
    rows.push(perItem(x509Verify, secrets.length, () => secrets.forEach((s) => (sink += new X509Certificate(s.leaf.der).verify(intermediate.publicKey) ? 1 : 0))));
    const issuer = { fingerprint: "issuer", der: intermediate.raw, parts: signedParts(intermediate.raw) };
    const children = secrets.map((s, i) => ({ fingerprint: String(i), der: s.leaf.der, parts: signedParts(s.leaf.der) }));
    rows.push(
      perItem(
        `${kind}: leaf signature, ours (direct)`,
        secrets.length,
        () => {
          const verifier = new SignatureVerifier(SECRETS * 2);
          for (const child of children) sink += verifier.signedBy(child, issuer) ? 1 : 0;
        },
        x509Verify,
      ),
    );
  }
  if (sink < 0) console.log(sink);
  return rows;
}
