/**
 * Chain health of presented bundles, with roots, intermediates and leaves made by openssl at test
 * time: every `problem` reason from a bundle built to have it, the trust anchors (ca.crt beside the
 * bundle, a configured trust bundle, Node's public roots), through the Secrets and files sources to
 * `cert_chain_problem`, and a hostile bundle whose work stays bounded.
 */
import { rootCertificates } from "node:tls";
import { writeFileSync } from "node:fs";
import { pino } from "pino";
import t, { type Test } from "tap";
import { stringify } from "yaml";
import { ParseCache } from "../src/certs/cache.js";
import { problemAt, type ChainProblem } from "../src/certs/chain.js";
import { CertificateChecks, type ChecksConfig } from "../src/checks.js";
import { validateConfig } from "../src/config.js";
import { Health } from "../src/health.js";
import { Inventory } from "../src/inventory.js";
import { createLogger } from "../src/log.js";
import { MetricsRenderer } from "../src/metrics.js";
import { FileSource } from "../src/sources/files.js";
import { KubeconfigSource } from "../src/sources/kubeconfig.js";
import { SourceContext } from "../src/sources/source.js";
import { eventually, startHarness } from "./k8s/exporter-harness.js";
import { OpensslPki, bundle, type Made } from "./helpers/openssl-pki.js";

const CHECKS: ChecksConfig = { privateKeys: true, chains: true, publicRoots: false, trustBundles: [] };

function checker(config: Partial<ChecksConfig> = {}): CertificateChecks {
  return new CertificateChecks({ ...CHECKS, ...config }, new ParseCache(100));
}

const now = () => Date.now() / 1000;

/** The problem the checks find now for a bundle (PEM text) with `ca` beside it. */
function problem(checks: CertificateChecks, pem: string, ca?: string, at = now()): ChainProblem | undefined {
  const { checks: found } = checks.presented(Buffer.from(pem), "auto", ca === undefined ? {} : { ca: [Buffer.from(ca)] });
  return found.chain && problemAt(found.chain, at);
}

interface Pki {
  pki: OpensslPki;
  root: Made;
  intermediate: Made;
  leaf: Made;
}

function makePki(t: Test): Pki {
  const pki = new OpensslPki(t);
  const root = pki.root("root", "Test Root");
  const intermediate = pki.issue("intermediate", "Test Intermediate", root, { ca: true, days: 10 });
  const leaf = pki.issue("leaf", "leaf.example", intermediate);
  return { pki, root, intermediate, leaf };
}

t.test("every problem from a bundle built to have it", async (t) => {
  const { pki, root, intermediate, leaf } = makePki(t);
  const other = pki.root("other", "Other Root");
  // Same name as the intermediate, another key: whatever it signs fails against the real one.
  const impostor = pki.root("impostor", "Test Intermediate");
  const forged = pki.issue("forged", "leaf.example", impostor);
  const checks = checker();

  t.equal(problem(checks, bundle(leaf, intermediate), root.pem), "none", "leaf, intermediate, root in ca.crt");
  t.equal(problem(checks, bundle(leaf, intermediate, root), root.pem), "none", "the root sent too, and trusted");
  t.equal(problem(checks, bundle(intermediate, leaf), root.pem), "wrong_order", "the leaf is not first");
  t.equal(problem(checks, bundle(leaf, other, intermediate), root.pem), "wrong_order", "the intermediate is in the bundle, not next");
  t.equal(problem(checks, bundle(leaf), root.pem), "missing_intermediate", "no intermediate at all");
  t.equal(problem(checks, bundle(leaf, intermediate)), "missing_intermediate", "no anchor for the intermediate's issuer");
  t.equal(problem(checks, bundle(forged, intermediate), root.pem), "signature_mismatch", "the next certificate has the issuer's name but not its key");
  t.equal(problem(checks, bundle(leaf, intermediate), other.pem), "missing_intermediate", "an anchor of another name completes nothing");
  t.equal(problem(checks, bundle(leaf, intermediate, root)), "untrusted_root", "a self-signed end that no anchor holds");
  t.equal(problem(checks, bundle(leaf, intermediate, other), root.pem), "unrelated_certificate", "a certificate outside the chain");
  t.equal(problem(checks, bundle(root), root.pem), "none", "a CA bundle of its own root");
  t.equal(problem(checks, bundle(root)), "self_signed", "a self-signed certificate alone, held by no anchor");

  t.equal(problem(checks, bundle(leaf, intermediate, intermediate), root.pem), "none", "a copy of the intermediate is not an unrelated certificate");

  // A root rollover as Let's Encrypt did it: the new root's key also signed by the old root (a
  // cross-signed copy), which the bundle carries; only the new root is trusted.
  const newRootKey = pki.key("new-root");
  const newRoot = pki.root("new-root", "New Root", { key: newRootKey });
  const oldRoot = pki.root("old-root", "Old Root");
  const crossSigned = pki.issue("cross", "New Root", oldRoot, { ca: true, key: newRootKey });
  const issuing = pki.issue("issuing", "Issuing CA", newRoot, { ca: true });
  const served = pki.issue("served", "served.example", issuing);
  t.equal(problem(checks, bundle(served, issuing, crossSigned), newRoot.pem), "none", "the cross-signed copy of a trusted root ends the chain");
  t.equal(problem(checks, bundle(served, issuing, crossSigned, oldRoot), newRoot.pem), "none", "and the old root after it is the cross-sign's own issuer");
  t.equal(problem(checks, bundle(served, issuing, crossSigned), oldRoot.pem), "none", "trusting the old root instead: the chain reaches it through the cross-sign");
  t.equal(problem(checks, bundle(served, issuing, crossSigned)), "missing_intermediate", "trusting neither");

  // ca.crt holds a root with the right name and another key: the chain cannot be completed.
  const rekeyed = pki.root("rekeyed", "Test Root");
  t.equal(problem(checks, bundle(leaf, intermediate), rekeyed.pem), "signature_mismatch", "ca.crt has the issuer's name, not its key");

  // The intermediate lives 10 days, the leaf 20: past day 10 only the link has expired.
  const in15Days = now() + 15 * 86400;
  t.equal(problem(checks, bundle(leaf, intermediate), root.pem, in15Days), "expired_link", "an intermediate that expired before the leaf");
  t.equal(problem(checks, bundle(leaf, intermediate), root.pem, now() - 2 * 86400), "expired_link", "before the chain's notBefore");
});

t.test("trust anchors: a configured trust bundle, Node's public roots, and none", async (t) => {
  const { pki, root, intermediate, leaf } = makePki(t);
  writeFileSync(pki.path("trust.pem"), root.pem);
  t.equal(problem(checker({ trustBundles: [pki.path("trust.pem")] }), bundle(leaf, intermediate)), "none", "the trust bundle completes the chain");
  const logs: string[] = [];
  const log = pino({ level: "warn" }, { write: (line: string) => logs.push(line) });
  const missing = new CertificateChecks({ ...CHECKS, trustBundles: [pki.path("absent.pem")] }, new ParseCache(100), log);
  t.equal(problem(missing, bundle(leaf, intermediate)), "missing_intermediate", "an unreadable trust bundle anchors nothing");
  t.match(logs.join(""), /cannot read a trust bundle/, "and says so once in the log");

  const publicRoot = rootCertificates[0]!;
  t.equal(problem(checker({ publicRoots: true }), publicRoot), "none", "a public root is anchored by Node's store");
  t.equal(problem(checker({ publicRoots: false }), publicRoot), "self_signed", "and not without it");
  t.equal(problem(checker({ chains: false }), bundle(leaf)), undefined, "chains: false checks nothing");
});

t.test("a hostile bundle: a thousand certificates with one name cost a bounded number of signature checks", async (t) => {
  const { pki, root, leaf } = makePki(t);
  // The leaf's issuer name on many certificates (20 distinct ones, each 50 times), none of them its issuer.
  const key = pki.key("decoy");
  const decoys = Array.from({ length: 20 }, (_, i) => pki.root(`decoy-${i}`, "Test Intermediate", { key }));
  const checks = new CertificateChecks(CHECKS, new ParseCache(0, { maxCertificates: 1002, maxLabelValueLength: 1024 }));
  const pem = bundle(leaf, root, ...Array.from({ length: 1000 }, (_, i) => decoys[i % decoys.length]!));
  t.equal(problem(checks, pem, root.pem), "signature_mismatch", "the decoys are named like the issuer and did not sign it");
  t.ok(checks.signaturesVerified > 0 && checks.signaturesVerified <= 16, `${checks.signaturesVerified} signatures verified for a 1,002-certificate bundle`);
});

t.test("Secrets: tls.crt checked against ca.crt, exported as cert_chain_problem", async (t) => {
  const { root, intermediate, leaf } = makePki(t);
  const h = await startHarness(t, { checks: {} });
  h.api.putSecret("web", "good", { "tls.crt": bundle(leaf, intermediate), "tls.key": "", "ca.crt": root.pem }, { type: "kubernetes.io/tls" });
  h.api.putSecret("web", "reversed", { "tls.crt": bundle(intermediate, leaf), "tls.key": "", "ca.crt": root.pem }, { type: "kubernetes.io/tls" });
  h.api.putSecret("web", "no-ca", { "tls.crt": bundle(leaf, intermediate), "tls.key": "" }, { type: "kubernetes.io/tls" });
  await h.source.start();
  const at = (name: string) => ({ source: "secret", namespace: "web", name, key: "tls.crt" }) as const;
  t.ok(await eventually(() => ["good", "reversed", "no-ca"].every((n) => h.inventory.get(at(n)) !== undefined)), "all three published");
  const body = Buffer.concat(await h.renderer.renderCertificates(now())).toString();
  t.match(body, /cert_chain_problem\{[^}]*name="good",key="tls.crt",problem="none"\} 1/);
  t.match(body, /cert_chain_problem\{[^}]*name="reversed",key="tls.crt",problem="wrong_order"\} 1/);
  t.match(body, /cert_chain_problem\{[^}]*name="no-ca",key="tls.crt",problem="missing_intermediate"\} 1/);
  t.notMatch(body, /cert_chain_problem\{[^}]*key="ca.crt"/, "ca.crt is an anchor, not a presented bundle");

  // A changed ca.crt alone changes the verdict: the Secret's digest covers it.
  h.api.putSecret("web", "no-ca", { "tls.crt": bundle(leaf, intermediate), "tls.key": "", "ca.crt": root.pem }, { type: "kubernetes.io/tls" });
  t.ok(await eventually(() => h.inventory.get(at("no-ca"))?.chain?.problem === "none"), "ca.crt added: none");
});

t.test("files: a group with checkChain and a trust bundle", async (t) => {
  const { pki, root, intermediate, leaf } = makePki(t);
  writeFileSync(pki.path("served.pem"), bundle(leaf, intermediate));
  writeFileSync(pki.path("reversed.pem"), bundle(intermediate, leaf));
  writeFileSync(pki.path("plain.pem"), bundle(leaf));
  writeFileSync(pki.path("trust.pem"), root.pem);
  const config = validateConfig({
    sources: { files: [{ paths: [pki.path("served.pem"), pki.path("reversed.pem")], checkChain: true }, { paths: [pki.path("plain.pem")] }] },
    checks: { trustBundles: [pki.path("trust.pem")], publicRoots: false },
  });
  const inventory = new Inventory();
  const health = new Health(inventory);
  const cache = new ParseCache(100);
  const ctx = new SourceContext(inventory, cache, health, createLogger("silent"), { checks: new CertificateChecks(config.checks, cache) });
  const source = new FileSource(config.sources.files, { intervalSeconds: 60, maxFileSize: 1 << 20 }, ctx);
  await source.scanOnce();
  const chainOf = (name: string) => inventory.get({ source: "file", namespace: "", name: pki.path(name), key: "" })?.chain?.problem;
  t.equal(chainOf("served.pem"), "none");
  t.equal(chainOf("reversed.pem"), "wrong_order");
  t.equal(chainOf("plain.pem"), undefined, "a group without checkChain or privateKey is not a presented bundle");
  const body = Buffer.concat(await new MetricsRenderer(inventory, health).renderCertificates(now())).toString();
  t.match(body, /cert_chain_problem\{source="file",namespace="",name="[^"]*reversed.pem",key="",problem="wrong_order"\} 1/);
});

t.test("kubeconfigs: a user's client certificate is checked up to the kubeconfig's cluster CA", async (t) => {
  const { pki, root } = makePki(t);
  const client = pki.issue("admin", "kubernetes-admin", root);
  const stranger = pki.issue("stranger", "stranger", pki.root("elsewhere", "Elsewhere CA"));
  const b64 = (pem: string) => Buffer.from(pem).toString("base64");
  writeFileSync(
    pki.path("admin.conf"),
    stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: "kind", cluster: { server: "https://127.0.0.1:6443", "certificate-authority-data": b64(root.pem) } }],
      users: [
        { name: "admin", user: { "client-certificate-data": b64(client.pem) } },
        { name: "stranger", user: { "client-certificate-data": b64(stranger.pem) } },
      ],
    }),
  );
  const config = validateConfig({ sources: { kubeconfigs: [{ paths: [pki.path("admin.conf")] }] }, checks: { publicRoots: false } });
  const inventory = new Inventory();
  const health = new Health(inventory);
  const cache = new ParseCache(100);
  const ctx = new SourceContext(inventory, cache, health, createLogger("silent"), { checks: new CertificateChecks(config.checks, cache) });
  const source = new KubeconfigSource(config.sources.kubeconfigs, { intervalSeconds: 60, maxFileSize: 1 << 20 }, ctx);
  t.teardown(() => source.stop());
  await source.scanOnce();
  const at = (key: string) => inventory.get({ source: "kubeconfig", namespace: "", name: pki.path("admin.conf"), key });
  t.equal(at("users/admin")?.chain?.problem, "none", "signed by the cluster's CA");
  t.equal(at("users/stranger")?.chain?.problem, "missing_intermediate", "signed by a CA the kubeconfig does not hold");
  t.equal(at("clusters/kind")?.chain, undefined, "a cluster CA is an anchor, not a presented bundle");
  t.equal(at("users/admin")?.keyPair, undefined, "client-key-data is never read");
});
