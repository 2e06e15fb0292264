/**
 * Key matches certificate: keys in every form openssl writes (PKCS#8, PKCS#1, SEC1 with and without
 * the public point, DER, Ed25519, Ed448, encrypted both ways, DSA) against certificates made from
 * them and from other keys; then through the Secrets source (tls.key beside tls.crt) and the files
 * source (a group's privateKey path) to `cert_private_key_status`, the switch that turns it off, and
 * the promise that no key material reaches a log line or the exposition.
 */
import { readFileSync, writeFileSync } from "node:fs";
import t from "tap";
import { ParseCache } from "../src/certs/cache.js";
import { KEY_PAIR_STATUSES, keyPairStatus, MAX_PRIVATE_KEY_BYTES, type KeyPairStatus } from "../src/certs/private-key.js";
import { signedParts } from "../src/certs/signed-parts.js";
import { parseCertificates } from "../src/certs/parse.js";
import { checkReport } from "../src/check.js";
import { CertificateChecks } from "../src/checks.js";
import { validateConfig } from "../src/config.js";
import { Health } from "../src/health.js";
import { Inventory } from "../src/inventory.js";
import { createLogger } from "../src/log.js";
import { MetricsRenderer } from "../src/metrics.js";
import { FileSource, privateKeyPath } from "../src/sources/files.js";
import { SourceContext } from "../src/sources/source.js";
import { eventually, startHarness } from "./k8s/exporter-harness.js";
import { OpensslPki } from "./helpers/openssl-pki.js";

/** The subjectPublicKeyInfo of a PEM certificate file. */
function spkiOf(path: string): Uint8Array {
  let der: Uint8Array | undefined;
  parseCertificates(readFileSync(path), "auto", {
    decode: (buf, tlv) => {
      der = buf.subarray(tlv.start, tlv.end);
      return {} as never;
    },
  });
  return signedParts(der!).spki;
}

t.test("every key form openssl writes, against its own certificate and another's", async (t) => {
  const pki = new OpensslPki(t);
  const rsa = pki.root("rsa", "rsa", { kind: "rsa" });
  const ec = pki.root("ec", "ec", { kind: "ec" });
  const ed = pki.root("ed", "ed", { kind: "ed25519" });
  const ed448Key = pki.path("ed448.key");
  pki.openssl(["genpkey", "-algorithm", "ED448", "-out", ed448Key]);
  const ed448 = pki.root("ed448", "ed448", { key: ed448Key });
  const forms: Record<string, string[]> = {
    "rsa-pkcs1.key": ["rsa", "-in", rsa.key, "-traditional"],
    "rsa.der": ["rsa", "-in", rsa.key, "-outform", "DER"],
    "rsa-pkcs8.der": ["pkcs8", "-topk8", "-nocrypt", "-in", rsa.key, "-outform", "DER"],
    "ec-sec1.key": ["ec", "-in", ec.key],
    "ec-sec1-no-public.key": ["ec", "-in", ec.key, "-no_public"],
    "ec-compressed.key": ["ec", "-in", ec.key, "-conv_form", "compressed"],
    "ec-sec1.der": ["ec", "-in", ec.key, "-outform", "DER"],
    "rsa-encrypted-pkcs8.key": ["pkcs8", "-topk8", "-in", rsa.key, "-passout", "pass:secret"],
    "rsa-encrypted-legacy.key": ["rsa", "-in", rsa.key, "-traditional", "-aes128", "-passout", "pass:secret"],
  };
  for (const [name, args] of Object.entries(forms)) pki.openssl([...args, "-out", pki.path(name)]);
  pki.openssl(["dsaparam", "-genkey", "-out", pki.path("dsa.key"), "1024"]);

  const cases: [string, string, KeyPairStatus][] = [
    [rsa.key, rsa.cert, "match"],
    [pki.path("rsa-pkcs1.key"), rsa.cert, "match"],
    [pki.path("rsa.der"), rsa.cert, "match"],
    [pki.path("rsa-pkcs8.der"), rsa.cert, "match"],
    [ec.key, ec.cert, "match"],
    [pki.path("ec-sec1.key"), ec.cert, "match"],
    [pki.path("ec-sec1-no-public.key"), ec.cert, "match"],
    [pki.path("ec-compressed.key"), ec.cert, "match"],
    [pki.path("ec-sec1.der"), ec.cert, "match"],
    [ed.key, ed.cert, "match"],
    [ed448.key, ed448.cert, "match"],
    [rsa.key, ec.cert, "mismatch"],
    [ec.key, rsa.cert, "mismatch"],
    [ed.key, ed448.cert, "mismatch"],
    [pki.path("ec-sec1-no-public.key"), pki.root("ec2", "ec2").cert, "mismatch"],
    [pki.key("rsa2", "rsa"), rsa.cert, "mismatch"],
    [pki.path("rsa-encrypted-pkcs8.key"), rsa.cert, "encrypted"],
    [pki.path("rsa-encrypted-legacy.key"), rsa.cert, "encrypted"],
    [pki.path("dsa.key"), rsa.cert, "unsupported"],
    [rsa.cert, rsa.cert, "unreadable"],
  ];
  for (const [key, cert, expected] of cases) {
    t.equal(keyPairStatus(readFileSync(key), spkiOf(cert)), expected, `${key.slice(pki.dir.length + 1)} with ${cert.slice(pki.dir.length + 1)}: ${expected}`);
  }
  t.equal(keyPairStatus(new Uint8Array(0), spkiOf(rsa.cert)), "missing", "an empty key is missing");
  t.equal(keyPairStatus(Buffer.alloc(MAX_PRIVATE_KEY_BYTES + 1, 0x30), spkiOf(rsa.cert)), "unreadable", "a key over the size limit is not read");
  const truncated = readFileSync(pki.path("rsa.der")).subarray(0, 100);
  t.equal(keyPairStatus(truncated, spkiOf(rsa.cert)), "unreadable", "a truncated DER key");
  const pem = readFileSync(rsa.key, "utf8");
  t.equal(keyPairStatus(Buffer.from(pem.replace(/[A-Za-z]{10}/, "!!!!!!!!!!")), spkiOf(rsa.cert)), "unreadable", "a PEM key that is not base64");
});

t.test("hostile keys never throw and stay bounded", async (t) => {
  const pki = new OpensslPki(t);
  const rsa = pki.root("rsa", "rsa", { kind: "rsa" });
  const der = readFileSync(pki.path("rsa.key"));
  const spki = spkiOf(rsa.cert);
  let seed = 7;
  const random = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
  const statuses = new Set<string>();
  for (let i = 0; i < 2000; i++) {
    const bytes = Buffer.from(der);
    for (let j = 0; j < 4; j++) bytes[Math.floor(random() * bytes.length)] = Math.floor(random() * 256);
    statuses.add(keyPairStatus(bytes.subarray(0, Math.floor(random() * bytes.length) + 1), spki));
  }
  t.ok([...statuses].every((s) => (KEY_PAIR_STATUSES as readonly string[]).includes(s)), `only statuses: ${[...statuses].join(", ")}`);
});

t.test("Secrets: tls.key beside tls.crt, exported, never logged", async (t) => {
  const pki = new OpensslPki(t);
  const root = pki.root("root", "Key Root");
  const leaf = pki.issue("leaf", "app.example", root);
  const otherKey = readFileSync(pki.key("other"), "utf8");
  const encrypted = pki.path("encrypted.key");
  pki.openssl(["pkcs8", "-topk8", "-in", leaf.key, "-passout", "pass:secret", "-out", encrypted]);
  const h = await startHarness(t, { checks: {} });
  const put = (name: string, key: string) => h.api.putSecret("apps", name, { "tls.crt": leaf.pem, "tls.key": key, "ca.crt": root.pem }, { type: "kubernetes.io/tls" });
  put("matching", readFileSync(leaf.key, "utf8"));
  put("mismatched", otherKey);
  put("encrypted", readFileSync(encrypted, "utf8"));
  put("empty", "");
  await h.source.start();
  const names = ["matching", "mismatched", "encrypted", "empty"];
  const at = (name: string) => ({ source: "secret", namespace: "apps", name, key: "tls.crt" }) as const;
  t.ok(await eventually(() => names.every((n) => h.inventory.get(at(n))?.keyPair !== undefined)), "all four checked");
  t.same(
    names.map((n) => h.inventory.get(at(n))?.keyPair),
    ["match", "mismatch", "encrypted", "missing"],
  );
  const body = Buffer.concat(await h.renderer.renderCertificates(Date.now() / 1000)).toString();
  t.match(body, 'cert_private_key_status{source="secret",namespace="apps",name="mismatched",key="tls.crt",status="mismatch"} 1');
  t.notMatch(body, /cert_private_key_status\{[^}]*key="ca.crt"/, "ca.crt has no key of its own");

  // The renewal put the right key back: the change of tls.key alone is seen.
  put("mismatched", readFileSync(leaf.key, "utf8"));
  t.ok(await eventually(() => h.inventory.get(at("mismatched"))?.keyPair === "match"), "a new tls.key alone is read again");

  const keyBody = (text: string) => text.split("\n").filter((line) => line && !line.startsWith("-----"))[2]!;
  const everything = JSON.stringify(h.logs) + body;
  t.notOk(everything.includes(keyBody(otherKey)), "no line of a private key in logs or metrics");
  t.notOk(everything.includes(keyBody(readFileSync(leaf.key, "utf8"))), "nor of the other");
});

t.test("checks.privateKeys: false reads no key", async (t) => {
  const pki = new OpensslPki(t);
  const root = pki.root("root", "Key Root");
  const h = await startHarness(t, { checks: { privateKeys: false } });
  h.api.putSecret("apps", "any", { "tls.crt": root.pem, "tls.key": "not a key" }, { type: "kubernetes.io/tls" });
  await h.source.start();
  const location = { source: "secret", namespace: "apps", name: "any", key: "tls.crt" } as const;
  t.ok(await eventually(() => h.inventory.get(location) !== undefined));
  t.equal(h.inventory.get(location)?.keyPair, undefined, "no status");
  t.equal(h.inventory.get(location)?.chain?.problem, "self_signed", "the chain is still checked");
});

t.test("files: a group's privateKey path, read at every scan", async (t) => {
  const pki = new OpensslPki(t);
  const root = pki.root("root", "File Root");
  const server = pki.issue("server", "server.example", root);
  const client = pki.issue("client", "client.example", root);
  t.equal(privateKeyPath("{dir}/{stem}.key", "/etc/pki/apiserver.crt"), "/etc/pki/apiserver.key");
  t.equal(privateKeyPath("/keys/{stem}-key.pem", "/etc/pki/a.b.pem"), "/keys/a.b-key.pem");
  const config = validateConfig({ sources: { files: [{ paths: [server.cert, client.cert, pki.path("lonely.crt")], privateKey: "{dir}/{stem}.key" }] }, checks: { trustBundles: [root.cert] } });
  writeFileSync(pki.path("lonely.crt"), root.pem);
  const inventory = new Inventory();
  const health = new Health(inventory);
  const cache = new ParseCache(100);
  const ctx = new SourceContext(inventory, cache, health, createLogger("silent"), { checks: new CertificateChecks(config.checks, cache) });
  const source = new FileSource(config.sources.files, { intervalSeconds: 60, maxFileSize: 1 << 20 }, ctx);
  const status = (path: string) => inventory.get({ source: "file", namespace: "", name: path, key: "" })?.keyPair;
  await source.scanOnce();
  t.equal(status(server.cert), "match");
  t.equal(status(client.cert), "match");
  t.equal(status(pki.path("lonely.crt")), "missing", "no key file beside it");
  t.equal(inventory.get({ source: "file", namespace: "", name: server.cert, key: "" })?.chain?.problem, "none", "a file with a key is a presented bundle: its chain is checked");
  // Swap the server's key for the client's: the certificate file did not change, the verdict does.
  writeFileSync(server.key, readFileSync(client.key));
  await source.scanOnce();
  t.equal(status(server.cert), "mismatch", "a key changed apart from its certificate");
  const body = Buffer.concat(await new MetricsRenderer(inventory, health).renderCertificates(Date.now() / 1000)).toString();
  t.match(body, `cert_private_key_status{source="file",namespace="",name="${server.cert}",key="",status="mismatch"} 1`);
});

t.test("check: a mismatched key or a broken chain fails the pipeline; a key that cannot be compared is listed only", async (t) => {
  const pki = new OpensslPki(t);
  const root = pki.root("root", "Check Root");
  const good = pki.issue("good", "good.example", root);
  const swapped = pki.issue("swapped", "swapped.example", root);
  writeFileSync(swapped.key, readFileSync(pki.key("stray")));
  const run = async (paths: string[]) => {
    const config = validateConfig({ sources: { files: [{ paths, privateKey: "{dir}/{stem}.key" }] }, checks: { trustBundles: [root.cert] } });
    const inventory = new Inventory();
    const cache = new ParseCache(100);
    const ctx = new SourceContext(inventory, cache, new Health(inventory), createLogger("silent"), { checks: new CertificateChecks(config.checks, cache) });
    await new FileSource(config.sources.files, { intervalSeconds: 60, maxFileSize: 1 << 20 }, ctx).scanOnce();
    return checkReport(inventory, { warnDays: 7, format: "table", failOnReadErrors: true });
  };
  const healthy = await run([good.cert]);
  t.equal(healthy.exitCode, 0, healthy.output);
  const mismatched = await run([good.cert, swapped.cert]);
  t.equal(mismatched.exitCode, 1, "a mismatched key fails");
  t.match(mismatched.output, /swapped\.crt\s+mismatch/);
  t.match(mismatched.output, "1 with a mismatched key or a broken chain.");
  writeFileSync(pki.path("lonely.crt"), good.pem);
  const missing = await run([pki.path("lonely.crt")]);
  t.equal(missing.exitCode, 0, "a missing key is listed, not failed");
  t.match(missing.output, /lonely\.crt\s+missing/);
});
