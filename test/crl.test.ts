/**
 * CRLs in files and Secrets, made at test time by `openssl ca` (a real CA directory: index.txt,
 * serial, crlnumber), so nothing in the repository expires: their dates, issuer and revoked count
 * as exported, against what `openssl crl` prints; CRL-only inputs are locations, not read errors;
 * broken CRLs are typed read errors.
 */
import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t, { type Test } from "tap";
import { ParseCache } from "../src/certs/cache.js";
import { parseCertificates } from "../src/certs/parse.js";
import { Health } from "../src/health.js";
import { Inventory } from "../src/inventory.js";
import { createLogger } from "../src/log.js";
import { MetricsRenderer } from "../src/metrics.js";
import { FileSource } from "../src/sources/files.js";
import { SourceContext } from "../src/sources/source.js";
import { CertReadError } from "../src/errors.js";
import { eventually, startHarness } from "./k8s/exporter-harness.js";

function openssl(cwd: string, args: string[]): string {
  return execFileSync("openssl", args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

const CONFIG = `[ ca ]
default_ca = test_ca
[ test_ca ]
dir = .
database = ./index.txt
new_certs_dir = ./newcerts
certificate = ./ca.pem
private_key = ./ca.key
serial = ./serial
crlnumber = ./crlnumber
default_md = sha256
default_days = 30
default_crl_days = 7
policy = anything
unique_subject = no
[ anything ]
commonName = supplied
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = placeholder
[ v3_ca ]
basicConstraints = critical,CA:true
keyUsage = critical,keyCertSign,cRLSign
`;

interface Ca {
  dir: string;
  /** PEM of the CA certificate. */
  caPem: string;
  /** PEM of a leaf it issued (and later revoked, when asked). */
  leafPem: string;
}

/** A CA made by openssl in a temp dir, with two leaves issued and `revoke` of them revoked. */
async function makeCa(t: Test, cn: string, revoke: number): Promise<Ca> {
  const dir = await mkdtemp(join(tmpdir(), "cee-crl-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, "openssl.cnf"), CONFIG);
  await writeFile(join(dir, "index.txt"), "");
  await writeFile(join(dir, "serial"), "1000\n");
  await writeFile(join(dir, "crlnumber"), "01\n");
  execFileSync("mkdir", ["-p", join(dir, "newcerts")]);
  const cnf = ["-config", "openssl.cnf"];
  openssl(dir, ["req", ...cnf, "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-subj", `/CN=${cn}/O=CRL Test`, "-days", "30", "-extensions", "v3_ca"]);
  let leafPem = "";
  for (let i = 0; i < 2; i++) {
    openssl(dir, ["req", ...cnf, "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", `leaf${i}.key`, "-out", `leaf${i}.csr`, "-subj", `/CN=leaf${i}.test`]);
    openssl(dir, ["ca", ...cnf, "-batch", "-notext", "-in", `leaf${i}.csr`, "-out", `leaf${i}.pem`]);
    if (i < revoke) openssl(dir, ["ca", ...cnf, "-revoke", `leaf${i}.pem`, "-crl_reason", "keyCompromise"]);
    if (i === 0) leafPem = await readFile(join(dir, "leaf0.pem"), "utf8");
  }
  return { dir, caPem: await readFile(join(dir, "ca.pem"), "utf8"), leafPem };
}

/** A CRL of the CA, PEM, valid for `period` (["-crldays", "7"] or ["-crlhours", "5"]). */
function genCrl(ca: Ca, name: string, period: string[]): string {
  openssl(ca.dir, ["ca", "-config", "openssl.cnf", "-gencrl", ...period, "-out", name]);
  return join(ca.dir, name);
}

/** thisUpdate and nextUpdate as `openssl crl` prints them, in Unix seconds. */
function opensslDates(path: string, inform = "PEM"): { thisUpdate: number; nextUpdate: number } {
  const out = execFileSync("openssl", ["crl", "-inform", inform, "-in", path, "-noout", "-lastupdate", "-nextupdate"], { encoding: "utf8" });
  const last = /lastUpdate=(.+)/.exec(out)![1]!;
  const next = /nextUpdate=(.+)/.exec(out)![1]!;
  return { thisUpdate: Date.parse(last) / 1000, nextUpdate: Date.parse(next) / 1000 };
}

function toDer(path: string): Buffer {
  return execFileSync("openssl", ["crl", "-in", path, "-outform", "DER"]);
}

t.test("PEM and DER CRLs from openssl ca: dates, issuer and revoked count as openssl prints them", async (t) => {
  const ca = await makeCa(t, "CRL Test CA", 1);
  const days = genCrl(ca, "days.crl", ["-crldays", "7"]);
  const hours = genCrl(ca, "hours.crl", ["-crlhours", "5"]);
  for (const [path, span] of [
    [days, 7 * 86_400],
    [hours, 5 * 3600],
  ] as const) {
    const expected = opensslDates(path);
    t.equal(expected.nextUpdate - expected.thisUpdate, span, `${path}: the period asked for`);
    const pem = parseCertificates(await readFile(path));
    t.equal(pem.length, 0, "no certificates");
    t.same(pem.crls, [{ thisUpdate: expected.thisUpdate, nextUpdate: expected.nextUpdate, issuer: "O=CRL Test,CN=CRL Test CA", issuerCN: "CRL Test CA", revoked: 1 }], "PEM CRL");
    const der = parseCertificates(toDer(path));
    t.same(der.crls, pem.crls, "the same CRL in DER");
    t.same(parseCertificates(toDer(path), "der").crls, pem.crls, "format: der");
  }

  // Both leaves revoked: the count follows.
  openssl(ca.dir, ["ca", "-config", "openssl.cnf", "-revoke", "leaf1.pem"]);
  const both = parseCertificates(await readFile(genCrl(ca, "both.crl", ["-crldays", "1"])));
  t.equal(both.crls![0]!.revoked, 2, "two revoked");

  // A CRL with nothing revoked has no revokedCertificates at all.
  const empty = await makeCa(t, "Empty CA", 0);
  const none = parseCertificates(await readFile(genCrl(empty, "none.crl", ["-crldays", "2"])));
  t.equal(none.crls![0]!.revoked, 0, "nothing revoked");
});

t.test("a CRL concatenated with certificates: both kept, each in input order", async (t) => {
  const ca = await makeCa(t, "Bundle CA", 1);
  const crl = await readFile(genCrl(ca, "ca.crl", ["-crldays", "3"]), "utf8");
  const parsed = parseCertificates(Buffer.from(ca.leafPem + crl + ca.caPem + "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"));
  t.same(
    parsed.map((c) => c.subjectCN),
    ["leaf0.test", "Bundle CA"],
    "the certificates",
  );
  t.equal(parsed.crls?.length, 1, "and the CRL");
  // DER: a certificate followed by a CRL.
  const der = Buffer.concat([execFileSync("openssl", ["x509", "-outform", "DER"], { input: ca.caPem }), toDer(join(ca.dir, "ca.crl"))]);
  const fromDer = parseCertificates(der);
  t.equal(fromDer.length, 1);
  t.equal(fromDer.crls?.[0]?.issuerCN, "Bundle CA");
});

t.test("a truncated or garbage CRL is a typed read error, not a crash", async (t) => {
  const ca = await makeCa(t, "Broken CA", 1);
  const path = genCrl(ca, "ca.crl", ["-crldays", "3"]);
  const der = toDer(path);
  const pemOf = (bytes: Buffer) => `-----BEGIN X509 CRL-----\n${bytes.toString("base64")}\n-----END X509 CRL-----\n`;
  const cases: [string, Buffer][] = [
    ["truncated PEM", Buffer.from(pemOf(der.subarray(0, der.length - 20)))],
    ["garbage PEM", Buffer.from(pemOf(Buffer.from("30820100deadbeef", "hex")))],
    ["a certificate in a CRL block", Buffer.from(pemOf(execFileSync("openssl", ["x509", "-outform", "DER"], { input: ca.caPem })))],
    ["truncated DER", der.subarray(0, der.length - 20)],
    ["no END line", Buffer.from(pemOf(der).replace("-----END X509 CRL-----\n", ""))],
  ];
  for (const [what, bytes] of cases) {
    t.throws(() => parseCertificates(bytes), CertReadError, what);
    try {
      parseCertificates(bytes);
    } catch (err) {
      t.equal((err as CertReadError).reason, "corrupt_certificate", `${what}: corrupt_certificate`);
    }
  }
  // Every prefix of the DER: a typed error or a CRL, never anything else.
  for (let n = 0; n < der.length; n++) {
    try {
      parseCertificates(der.subarray(0, n));
    } catch (err) {
      if (!(err instanceof CertReadError)) t.fail(`prefix ${n}: ${String(err)}`);
    }
  }
});

t.test("files: a CRL-only file is a location with its CRL, exported; a broken one a read error", async (t) => {
  const ca = await makeCa(t, "File CA", 1);
  const crlPath = genCrl(ca, "ca.crl", ["-crldays", "7"]);
  await writeFile(join(ca.dir, "ca.der.crl"), toDer(crlPath));
  await writeFile(join(ca.dir, "bundle.crl"), ca.caPem + (await readFile(crlPath, "utf8")));
  await writeFile(join(ca.dir, "broken.crl"), "-----BEGIN X509 CRL-----\nMIIBAAAA\n-----END X509 CRL-----\n");
  const inventory = new Inventory();
  const health = new Health(inventory);
  const ctx = new SourceContext(inventory, new ParseCache(100), health, createLogger("silent"));
  const source = new FileSource([{ paths: [join(ca.dir, "*.crl")] } as never], { intervalSeconds: 3600, maxFileSize: 1 << 20 }, ctx);
  await source.scanOnce();
  const at = (name: string) => inventory.get({ source: "file", namespace: "", name: join(ca.dir, name), key: "" });
  const expected = opensslDates(crlPath);
  for (const name of ["ca.crl", "ca.der.crl"]) {
    const entry = at(name);
    t.notOk(entry?.error, `${name}: not a read error`);
    t.equal(entry?.certificates.length, 0, `${name}: no certificates`);
    t.same(entry?.crls, [{ ...expected, issuer: "O=CRL Test,CN=File CA", issuerCN: "File CA", revoked: 1 }], `${name}: its CRL`);
  }
  t.equal(at("bundle.crl")?.certificates.length, 1, "a CA and its CRL: the certificate");
  t.equal(at("bundle.crl")?.crls?.length, 1, "and the CRL");
  t.equal(at("broken.crl")?.error?.reason, "corrupt_certificate", "a broken CRL: corrupt_certificate");

  const body = Buffer.concat(await new MetricsRenderer(inventory, health).renderCertificates()).toString();
  const file = join(ca.dir, "ca.crl").replace(/\\/g, "\\\\");
  const labels = `source="file",namespace="",name="${file}",key="",index="0",issuer_cn="File CA"`;
  t.match(body, `cert_crl_this_update_timestamp_seconds{${labels}} ${expected.thisUpdate}\n`, "thisUpdate exported");
  t.match(body, `cert_crl_next_update_timestamp_seconds{${labels}} ${expected.nextUpdate}\n`, "nextUpdate exported");
  t.match(body, `cert_crl_revoked_certificates{${labels}} 1\n`, "revoked count exported");
  t.notMatch(body, new RegExp(`cert_read_errors\\{[^}]*name="${file.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}"`), "no read error for the CRL-only file");
});

t.test("a Secret holding a CRL, through the Secrets source", async (t) => {
  const ca = await makeCa(t, "Secret CA", 1);
  const crlPath = genCrl(ca, "ca.crl", ["-crlhours", "12"]);
  const h = await startHarness(t, { secrets: { rules: [{ type: "Opaque", keys: ["*.crl", "ca.crt"] }] } });
  h.api.putSecret("pki", "ca-crl", { "ca.crl": await readFile(crlPath), "ca.crt": ca.caPem }, { type: "Opaque" });
  await h.source.start();
  const location = { source: "secret", namespace: "pki", name: "ca-crl", key: "ca.crl" } as const;
  t.ok(await eventually(() => h.inventory.get(location) !== undefined), "the CRL's location is published");
  const entry = h.inventory.get(location)!;
  const expected = opensslDates(crlPath);
  t.notOk(entry.error, "not a read error");
  t.same(entry.crls, [{ ...expected, issuer: "O=CRL Test,CN=Secret CA", issuerCN: "Secret CA", revoked: 1 }]);
  const body = Buffer.concat(await h.renderer.renderCertificates(Date.now() / 1000)).toString();
  t.match(body, `cert_crl_next_update_timestamp_seconds{source="secret",namespace="pki",name="ca-crl",key="ca.crl",index="0",issuer_cn="Secret CA"} ${expected.nextUpdate}\n`);
});
