/**
 * JKS keystores (src/certs/jks.ts, `format: jks` in Secret rules), made at test time by a real
 * keytool: a PrivateKeyEntry with its chain (an OpenSSL PKCS#12 converted with -importkeystore), a
 * truststore of TrustedCertEntry, and hand-made hostile ones (truncated, garbage, huge lengths).
 * The two keytool jobs run in parallel, since each JVM start costs about a second.
 */
import { execFile, execFileSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import t from "tap";
import { openJks, readJks } from "../src/certs/jks.js";
import { parseCertificates } from "../src/certs/parse.js";
import { validateConfig } from "../src/config.js";
import { CertReadError } from "../src/errors.js";
import { startHarness } from "./k8s/exporter-harness.js";

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), "jks-"));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const at = (name: string) => join(dir, name);

function openssl(...args: string[]): void {
  execFileSync("openssl", args, { stdio: "ignore" });
}

/** A CA-signed (or self-signed) EC certificate with its key, in dir/<name>.pem and dir/<name>.key. */
function issue(name: string, issuer: string | undefined, ca: boolean, days: number): void {
  const ext = ca ? "basicConstraints=critical,CA:TRUE" : "basicConstraints=CA:FALSE";
  writeFileSync(at(`${name}.ext`), `${ext}\n`);
  openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", at(`${name}.key`));
  openssl("req", "-new", "-key", at(`${name}.key`), "-subj", `/CN=${name}.jks.example`, "-out", at(`${name}.csr`));
  const signer = issuer ? ["-CA", at(`${issuer}.pem`), "-CAkey", at(`${issuer}.key`), "-CAcreateserial"] : ["-signkey", at(`${name}.key`)];
  openssl("x509", "-req", "-in", at(`${name}.csr`), ...signer, "-days", String(days), "-extfile", at(`${name}.ext`), "-out", at(`${name}.pem`));
}

const fingerprint = (name: string) => new X509Certificate(readFileSync(at(`${name}.pem`))).fingerprint256.replace(/:/g, "").toLowerCase();
const derFingerprint = (der: Uint8Array) => new X509Certificate(der).fingerprint256.replace(/:/g, "").toLowerCase();

async function reasonOf(fn: () => unknown): Promise<string> {
  try {
    await fn();
  } catch (err) {
    return err instanceof CertReadError ? err.reason : `not a CertReadError: ${String(err)}`;
  }
  return "no error";
}

let keystore: Buffer;
let truststore: Buffer;

t.before(async () => {
  issue("root", undefined, true, 3650);
  issue("inter", "root", true, 1000);
  issue("leaf", "inter", false, 30);
  issue("other", undefined, true, 400);
  writeFileSync(at("chain.pem"), readFileSync(at("inter.pem")).toString() + readFileSync(at("root.pem")).toString());
  openssl("pkcs12", "-export", "-in", at("leaf.pem"), "-inkey", at("leaf.key"), "-certfile", at("chain.pem"), "-name", "server", "-out", at("b.p12"), "-passout", "pass:s3cret");
  // keytool's default store type is PKCS12 since Java 9: -deststoretype / -storetype JKS make real JKS.
  const importTrusted = (alias: string) =>
    `keytool -importcert -noprompt -storetype JKS -keystore '${at("truststore.jks")}' -storepass changeit -alias ${alias} -file '${at(`${alias}.pem`)}'`;
  await Promise.all([
    run("keytool", [
      "-importkeystore", "-noprompt",
      "-srckeystore", at("b.p12"), "-srcstoretype", "PKCS12", "-srcstorepass", "s3cret",
      "-destkeystore", at("keystore.jks"), "-deststoretype", "JKS", "-deststorepass", "s3cret",
    ]),
    run("sh", ["-c", ["root", "inter", "other"].map(importTrusted).join(" && ")]),
  ]);
  keystore = readFileSync(at("keystore.jks"));
  truststore = readFileSync(at("truststore.jks"));
});

t.test("keytool's keystores are JKS, and read", async (t) => {
  t.equal(keystore.readUInt32BE(0), 0xfeedfeed, "keystore.jks has the JKS magic");
  t.equal(truststore.readUInt32BE(0), 0xfeedfeed, "truststore.jks has the JKS magic");
  const chain = openJks(keystore, ["s3cret"]);
  t.same(chain.map(derFingerprint), ["leaf", "inter", "root"].map(fingerprint), "PrivateKeyEntry: the chain, leaf first");
  t.same(openJks(keystore, undefined).map(derFingerprint), ["leaf", "inter", "root"].map(fingerprint), "no passphrase: read unchecked");
  const trusted = openJks(truststore, ["wrong", "changeit"]);
  t.same(trusted.map(derFingerprint).sort(), ["root", "inter", "other"].map(fingerprint).sort(), "three TrustedCertEntry, the second passphrase matching");
  t.equal(readJks(truststore).certificates.filter((c) => /trusted certificate/.test(c.what)).length, 3);
});

t.test("format auto tells a keystore by its magic and reads it unchecked; pem and der do not", async (t) => {
  t.same(parseCertificates(keystore, "auto").map((r) => r.fingerprintSha256), ["leaf", "inter", "root"].map(fingerprint), "the chain, leaf first");
  t.same(parseCertificates(truststore).map((r) => r.fingerprintSha256).sort(), ["root", "inter", "other"].map(fingerprint).sort());
  t.equal(await reasonOf(() => parseCertificates(keystore, "auto", { maxCertificates: 2 })), "too_many_certificates");
  t.equal(await reasonOf(() => parseCertificates(keystore.subarray(0, 100), "auto")), "corrupt_certificate");
  for (const format of ["pem", "der"] as const) t.equal(await reasonOf(() => parseCertificates(keystore, format)), "not_pem_or_der", format);
});

t.test("wrong passphrase, limits, truncation, garbage", async (t) => {
  t.equal(await reasonOf(() => openJks(keystore, ["changeit"])), "wrong_passphrase");
  t.equal(await reasonOf(() => openJks(keystore, [])), "wrong_passphrase", "an empty list of passphrases matches nothing");
  const altered = Buffer.from(keystore);
  altered[altered.length - 30]! ^= 1; // inside the last certificate's signature
  t.equal(await reasonOf(() => openJks(altered, ["s3cret"])), "wrong_passphrase", "altered bytes fail the digest");
  t.equal(await reasonOf(() => openJks(keystore, undefined, 2)), "too_many_certificates", "a chain of 3 over a limit of 2");
  t.equal(await reasonOf(() => openJks(truststore, undefined, 2)), "too_many_certificates", "3 entries over a limit of 2");

  const reasons = new Set<string>();
  for (const store of [keystore, truststore]) {
    for (let n = 0; n < store.length; n++) reasons.add(await reasonOf(() => openJks(store.subarray(0, n), undefined)));
  }
  t.same([...reasons], ["corrupt_certificate"], "every proper prefix of both keystores is corrupt_certificate");
  t.equal(await reasonOf(() => openJks(Buffer.concat([keystore, Buffer.from("trailing")]), ["s3cret"]).length), "no error", "bytes after the digest are ignored, as Java does");
  t.equal(await reasonOf(() => openJks(Buffer.from("not a keystore at all"), undefined)), "corrupt_certificate");
  const garbage = Buffer.alloc(4096, 0x5a);
  garbage.writeUInt32BE(0xfeedfeed, 0);
  t.equal(await reasonOf(() => openJks(garbage, undefined)), "corrupt_certificate", "garbage after the magic");
});

/** A JKS header and one entry's start: tag, empty alias, date. */
function header(version: number, count: number): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt32BE(0xfeedfeed, 0);
  b.writeUInt32BE(version, 4);
  b.writeUInt32BE(count, 8);
  return b;
}
function entryStart(tag: number): Buffer {
  const b = Buffer.alloc(14);
  b.writeUInt32BE(tag, 0);
  return b; // alias length 0, date 0
}
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};
const x509Type = Buffer.from([0, 5, ...Buffer.from("X.509")]);
const digest = Buffer.alloc(20);

t.test("declared lengths and counts are checked before use", async (t) => {
  const started = process.hrtime.bigint();
  const cases: [string, Buffer, number, string][] = [
    ["certificate length 4 GiB", Buffer.concat([header(2, 1), entryStart(2), x509Type, u32(0xffffffff), digest]), Infinity, "corrupt_certificate"],
    ["protected key length 4 GiB", Buffer.concat([header(2, 1), entryStart(1), u32(0xfffffff0), digest]), Infinity, "corrupt_certificate"],
    ["alias length 65535", Buffer.concat([header(2, 1), u32(2), Buffer.from([0xff, 0xff]), digest]), Infinity, "corrupt_certificate"],
    ["4 billion entries, no limit", Buffer.concat([header(2, 0xffffffff), digest]), Infinity, "corrupt_certificate"],
    ["4 billion entries, limit 1000", Buffer.concat([header(2, 0xffffffff), digest]), 1000, "too_many_certificates"],
    ["chain of 4 billion, limit 1000", Buffer.concat([header(2, 1), entryStart(1), u32(0), u32(0xffffffff), digest]), 1000, "too_many_certificates"],
    ["chain of 4 billion, no limit", Buffer.concat([header(2, 1), entryStart(1), u32(0), u32(0xffffffff), digest]), Infinity, "corrupt_certificate"],
    ["certificate that is not DER", Buffer.concat([header(2, 1), entryStart(2), x509Type, u32(4), Buffer.from([0x30, 0x10, 0, 0]), digest]), Infinity, "corrupt_certificate"],
    ["version 3", Buffer.concat([header(3, 0), digest]), Infinity, "corrupt_certificate"],
    ["unknown entry tag (JCEKS secret key)", Buffer.concat([header(2, 1), entryStart(3), digest]), Infinity, "corrupt_certificate"],
    ["no entry", Buffer.concat([header(2, 0), digest]), Infinity, "no_certificate"],
    ["no digest", header(2, 0), Infinity, "corrupt_certificate"],
  ];
  for (const [name, bytes, max, reason] of cases) t.equal(await reasonOf(() => openJks(bytes, undefined, max)), reason, name);
  t.ok(Number(process.hrtime.bigint() - started) / 1e6 < 500, "all refused at once");
  // Version 1 has no certificate type strings; a DER certificate taken from the real keystore.
  const der = openJks(keystore, undefined)[2]!;
  const v1 = Buffer.concat([header(1, 1), entryStart(2), u32(der.length), der, digest]);
  t.same(openJks(v1, undefined).map(derFingerprint), [fingerprint("root")], "version 1 read");
});

t.test("config: format jks takes passphraseKey and passphrase; pem does not", async (t) => {
  const secrets = (rule: Record<string, unknown>) => ({ sources: { secrets: { enabled: true, rules: [{ keys: ["keystore.jks"], ...rule }] } } });
  t.equal(validateConfig(secrets({ format: "jks", passphraseKey: "keystore-password" })).sources.secrets.rules[0]!.format, "jks");
  t.equal(validateConfig(secrets({ format: "jks", passphrase: "changeit" })).sources.secrets.rules[0]!.passphrase, "changeit");
  t.throws(() => validateConfig(secrets({ format: "pem", passphrase: "changeit" })), /apply only to formats pkcs12 and jks/);
});

t.test("a cert-manager style Secret read through the Secrets source", async (t) => {
  const h = await startHarness(t, {
    secrets: {
      rules: [
        { type: "kubernetes.io/tls", keys: ["keystore.jks", "truststore.jks"], format: "jks", passphraseKey: "keystore-password" },
        { type: "Opaque", keys: ["truststore.jks"], format: "jks", passphrase: "changeit" },
        { type: "Opaque", keys: ["keystore.jks"], format: "jks" },
      ],
    },
  });
  const key = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n";
  h.api.putSecret("java", "app-tls", { "keystore.jks": keystore, "truststore.jks": keystore, "tls.key": key, "keystore-password": "s3cret\n" }, { type: "kubernetes.io/tls" });
  h.api.putSecret("java", "wrong", { "keystore.jks": keystore, "keystore-password": "nope" }, { type: "kubernetes.io/tls" });
  h.api.putSecret("java", "missing", { "keystore.jks": keystore }, { type: "kubernetes.io/tls" });
  h.api.putSecret("java", "trust", { "truststore.jks": truststore }, { type: "Opaque" });
  h.api.putSecret("java", "unchecked", { "keystore.jks": keystore }, { type: "Opaque" });
  h.api.putSecret("java", "garbage", { "keystore.jks": "not a keystore" }, { type: "Opaque" });
  await h.source.start();
  const got = (name: string, k = "keystore.jks") => h.inventory.get({ source: "secret", namespace: "java", name, key: k });
  const chain = ["leaf", "inter", "root"].map(fingerprint);
  t.same(got("app-tls")?.certificates.map((c) => c.fingerprintSha256), chain, "the chain in index order, leaf first (passphrase with a final newline)");
  t.same(got("app-tls")?.certificates.map((c) => c.subjectCN), ["leaf.jks.example", "inter.jks.example", "root.jks.example"]);
  t.equal(got("wrong")?.error?.reason, "wrong_passphrase");
  t.match(got("missing")?.error?.message, /no passphrase: the Secret has no key "keystore-password"/);
  t.same(got("trust", "truststore.jks")?.certificates.map((c) => c.fingerprintSha256).sort(), ["root", "inter", "other"].map(fingerprint).sort(), "truststore, passphrase from the config");
  t.same(got("unchecked")?.certificates.map((c) => c.fingerprintSha256), chain, "no passphrase configured: read unchecked");
  t.equal(got("garbage")?.error?.reason, "corrupt_certificate");
  for (const line of h.logs) t.notMatch(JSON.stringify(line), /s3cret|changeit/, "no passphrase in the log");
});
