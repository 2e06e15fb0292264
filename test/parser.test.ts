import { createHash, webcrypto } from "node:crypto";
import t from "tap";
import { CertReadError, type ReadErrorReason } from "../src/errors.js";
import { type CertFormat, parseCertificates } from "../src/certs/parse.js";
import type { CertRecord } from "../src/certs/record.js";
import { crlPem, csrPem, makeCert, makeCertWithRawCN, makeChain, pkcs7, privateKeyPem, sharedKeys, x509, type Issued } from "../scripts/certgen.js";

const NOT_BEFORE = new Date("2024-03-01T10:20:30Z");
const NOT_AFTER = new Date("2034-03-01T10:20:30Z");
const NB = Date.parse("2024-03-01T10:20:30Z") / 1000;
const NA = Date.parse("2034-03-01T10:20:30Z") / 1000;

const sha256 = (der: Uint8Array) => createHash("sha256").update(der).digest("hex");
const bytes = (s: string) => Buffer.from(s, "utf8");

function errorOf(input: Uint8Array, format?: CertFormat): CertReadError {
  try {
    parseCertificates(input, format);
  } catch (err) {
    if (err instanceof CertReadError) return err;
    throw err;
  }
  throw new Error("expected a CertReadError");
}

function rejects(t: Tap, input: Uint8Array, reason: ReadErrorReason, pemLabels: string[] = [], format?: CertFormat): CertReadError {
  const err = errorOf(input, format);
  t.equal(err.reason, reason, `reason ${reason}: ${err.message}`);
  t.same(err.pemLabels, pemLabels, "pemLabels");
  return err;
}
type Tap = Pick<typeof t, "equal" | "same">;

/** The PEM body of a certificate, relabelled. */
function relabel(pem: string, label: string): string {
  return pem.replace(/-----(BEGIN|END) [A-Z0-9 ]+-----/g, `-----$1 ${label}-----`);
}

const blockOf = (label: string, body: string) => `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n`;

t.test("formats", async (t) => {
  const { root, intermediate, leaf } = await makeChain("app.example.com");
  const single = await makeCert({
    subject: "CN=single.example.com, O=Example Org, C=DE",
    serial: "1a2b3c4d",
    notBefore: NOT_BEFORE,
    notAfter: NOT_AFTER,
    sans: ["single.example.com", "IP:192.0.2.7"],
  });
  const expectedSingle: CertRecord = {
    notBefore: NB,
    notAfter: NA,
    subject: "C=DE,O=Example Org,CN=single.example.com",
    subjectCN: "single.example.com",
    issuer: "C=DE,O=Example Org,CN=single.example.com",
    issuerCN: "single.example.com",
    serial: "1a2b3c4d",
    sans: ["DNS:single.example.com", "IP:192.0.2.7"],
    isCA: false,
    keyUsage: 0,
    extendedKeyUsage: "",
    fingerprintSha256: sha256(single.der),
    keyAlgorithm: "ECDSA",
    keyBits: 256,
    signatureAlgorithm: "ecdsa-with-SHA256",
  };

  t.test("PEM, single certificate: every field exact", async (t) => {
    t.same(parseCertificates(bytes(single.pem)), [expectedSingle]);
    t.same(parseCertificates(bytes(single.pem), "pem"), [expectedSingle], "explicit format");
  });

  t.test("DER, single certificate", async (t) => {
    t.same(parseCertificates(single.der), [expectedSingle]);
    t.same(parseCertificates(single.der, "der"), [expectedSingle], "explicit format");
  });

  t.test("PEM bundle with key, CSR and CRL mixed in, and openssl text around blocks", async (t) => {
    const bundle = [
      `subject=${leaf.cert.subject}\nissuer=${leaf.cert.issuer}\n`,
      leaf.pem,
      await privateKeyPem(leaf),
      "# intermediate follows\n",
      intermediate.pem,
      await csrPem("req"),
      relabel(await crlPem(root), "X509 CRL"),
      blockOf("EC PARAMETERS", "BggqhkjOPQMBBw=="),
      root.pem,
      blockOf("RSA PRIVATE KEY", "AAAA"),
      blockOf("EC PRIVATE KEY", "AAAA"),
      blockOf("NEW CERTIFICATE REQUEST", "AAAA"),
    ].join("");
    const records = parseCertificates(bytes(bundle));
    t.same(records.map((r) => r.subjectCN), ["app.example.com", "Test Intermediate CA", "Test Root CA"]);
    t.same(records.map((r) => r.fingerprintSha256), [leaf, intermediate, root].map((c) => sha256(c.der)));
    t.same(records.map((r) => r.isCA), [false, true, true]);
    t.same(records.map((r) => r.issuerCN), ["Test Intermediate CA", "Test Root CA", "Test Root CA"]);
    t.same(records[0]!.sans, ["DNS:app.example.com", "IP:127.0.0.1"]);
    t.equal(records[0]!.serial, leaf.cert.serialNumber.toLowerCase());
    t.equal(records[0]!.notAfter, Math.floor(leaf.cert.notAfter.getTime() / 1000));
    t.equal(records[0]!.notBefore, Math.floor(leaf.cert.notBefore.getTime() / 1000));
  });

  t.test("PKCS#7 certs-only in DER", async (t) => {
    const records = parseCertificates(pkcs7([leaf, intermediate, root], "der") as Buffer);
    t.same(new Set(records.map((r) => r.fingerprintSha256)), new Set([leaf, intermediate, root].map((c) => sha256(c.der))));
    t.equal(records.length, 3);
    t.same(parseCertificates(pkcs7([leaf], "der") as Buffer, "pkcs7").map((r) => r.subjectCN), ["app.example.com"]);
  });

  t.test("PKCS#7 in PEM, labelled CMS and PKCS7", async (t) => {
    const cms = pkcs7([single, root], "pem") as string;
    t.match(cms, /-----BEGIN CMS-----/);
    const expected = new Set([sha256(single.der), sha256(root.der)]);
    t.same(new Set(parseCertificates(bytes(cms)).map((r) => r.fingerprintSha256)), expected);
    const p7 = relabel(cms, "PKCS7");
    t.same(new Set(parseCertificates(bytes(p7)).map((r) => r.fingerprintSha256)), expected);
    t.same(new Set(parseCertificates(bytes(p7), "pkcs7").map((r) => r.fingerprintSha256)), expected);
    const fromPkcs7 = parseCertificates(bytes(p7)).find((r) => r.subjectCN === "single.example.com");
    t.same(fromPkcs7, expectedSingle, "records from PKCS#7 are complete");
  });

  t.test("TRUSTED CERTIFICATE (OpenSSL trust format: certificate followed by trust settings)", async (t) => {
    // X509_CERT_AUX: SEQUENCE { trust SEQUENCE OF OID (serverAuth) }
    const aux = Buffer.from("300c300a06082b06010505070301", "hex");
    const body = Buffer.concat([single.der, aux]).toString("base64");
    t.same(parseCertificates(bytes(blockOf("TRUSTED CERTIFICATE", body))), [expectedSingle]);
  });

  t.test("explicit formats refuse the other encodings", async (t) => {
    rejects(t, bytes(single.pem), "not_pem_or_der", [], "der");
    rejects(t, single.der, "not_pem_or_der", [], "pem");
  });
});

t.test("odd and bad inputs", async (t) => {
  const cert = await makeCert({ cn: "odd.example.com", notBefore: NOT_BEFORE, notAfter: NOT_AFTER, serial: "0badcafe" });
  const key = await privateKeyPem(cert);

  t.test("truncated DER", async (t) => {
    rejects(t, cert.der.subarray(0, cert.der.length - 10), "corrupt_certificate");
    rejects(t, cert.der.subarray(0, 40), "corrupt_certificate");
  });

  t.test("garbage", async (t) => {
    rejects(t, Buffer.from([0xde, 0xad, 0xbe, 0xef, 0x00, 0x01, 0xff, 0x7f, 0x80]), "not_pem_or_der");
    rejects(t, bytes("hello, this is not a certificate\n"), "not_pem_or_der");
    rejects(t, bytes("0123456789 starts like a DER SEQUENCE byte"), "not_pem_or_der");
  });

  t.test("empty input", async (t) => {
    rejects(t, new Uint8Array(0), "not_pem_or_der");
  });

  t.test("whitespace-only input", async (t) => {
    rejects(t, bytes(" \n\t\r\n  \n"), "not_pem_or_der");
  });

  t.test("PEM with bad base64", async (t) => {
    const lines = cert.pem.split("\n");
    lines[2] = lines[2]!.slice(0, 10) + "!@#$" + lines[2]!.slice(14);
    rejects(t, bytes(lines.join("\n")), "bad_base64");
    rejects(t, bytes(blockOf("CERTIFICATE", "MIIB=AAA")), "bad_base64", [], undefined);
  });

  t.test("PEM with the END line missing", async (t) => {
    const cut = cert.pem.replace(/-----END CERTIFICATE-----\n?$/, "");
    const err = rejects(t, bytes(cut), "corrupt_certificate");
    t.match(err.message, /PEM block 0 .*no END line/);
    // An unterminated block followed by a complete one is still the broken first block.
    t.equal(errorOf(bytes(cut + cert.pem)).reason, "corrupt_certificate");
  });

  t.test("key only: no_certificate with the labels seen", async (t) => {
    rejects(t, bytes(key), "no_certificate", ["PRIVATE KEY"]);
    rejects(t, bytes(relabel(key, "RSA PRIVATE KEY") + relabel(key, "EC PRIVATE KEY")), "no_certificate", ["RSA PRIVATE KEY", "EC PRIVATE KEY"]);
  });

  t.test("CSR only", async (t) => {
    const csr = await csrPem();
    rejects(t, bytes(csr), "no_certificate", ["CERTIFICATE REQUEST"]);
    rejects(t, bytes(relabel(csr, "NEW CERTIFICATE REQUEST")), "no_certificate", ["NEW CERTIFICATE REQUEST"]);
  });

  t.test("CRL only: no certificates and no error, the CRL beside them (test/crl.test.ts has the rest)", async (t) => {
    const crl = relabel(await crlPem(cert), "X509 CRL");
    const records = parseCertificates(bytes(crl));
    t.equal(records.length, 0);
    t.equal(records.crls?.length, 1);
  });

  t.test("errors never carry the input or key material", async (t) => {
    const keyBody = key.split("\n")[1]!;
    for (const input of [key, key + blockOf("CERTIFICATE", "!!!!" + keyBody), key + blockOf("CERTIFICATE", keyBody)]) {
      const err = errorOf(bytes(input));
      t.notMatch(err.message, keyBody.slice(0, 16));
      t.notMatch(JSON.stringify(err), keyBody.slice(0, 16));
    }
  });

  t.test("a 1,000-certificate bundle: every record, in order", async (t) => {
    const keys = await sharedKeys("ec-p256");
    const certs: Issued[] = [];
    for (let i = 0; i < 1000; i++) {
      certs.push(await makeCert({ keys, cn: `host-${i}.example.com`, serial: (0x100000 + i).toString(16), notBefore: NOT_BEFORE, notAfter: NOT_AFTER }));
    }
    const records = parseCertificates(bytes(certs.map((c) => c.pem).join("")));
    t.equal(records.length, 1000);
    t.same(records.map((r) => r.subjectCN), certs.map((_, i) => `host-${i}.example.com`));
    t.same(records.map((r) => r.serial), certs.map((_, i) => (0x100000 + i).toString(16)));
    t.same(records.map((r) => r.fingerprintSha256), certs.map((c) => sha256(c.der)));
  });

  t.test("10 MB inputs parse or fail cleanly", async (t) => {
    const tenMB = 10 * 1024 * 1024;
    // A certificate followed by 10 MB of comment text.
    const padded = Buffer.concat([bytes(cert.pem), Buffer.alloc(tenMB, "# filler line\n")]);
    t.same(parseCertificates(padded).map((r) => r.subjectCN), ["odd.example.com"]);
    // 10 MB of bytes that are neither PEM nor DER.
    const noise = Buffer.alloc(tenMB);
    for (let i = 0; i < noise.length; i++) noise[i] = (i * 7919 + 13) & 0xff || 1;
    noise[0] = 0x42;
    rejects(t, noise, "not_pem_or_der");
    // A 10 MB CERTIFICATE block whose base64 is valid but is no certificate.
    rejects(t, bytes(blockOf("CERTIFICATE", "QUFB".repeat(tenMB / 4))), "corrupt_certificate");
    // DER whose header claims 10 MB of content, truncated.
    rejects(t, Buffer.concat([Buffer.from([0x30, 0x83, 0xa0, 0x00, 0x00, 0x30, 0x82, 0x01, 0x00]), Buffer.alloc(1000)]), "corrupt_certificate");
  });

  t.test("non-UTF-8 bytes in DN strings become well-formed strings", async (t) => {
    const invalidUtf8 = await makeCertWithRawCN(0x0c, Buffer.from("41fffe42c3", "hex"));
    const [r1] = parseCertificates(invalidUtf8);
    t.equal(r1!.subjectCN, "A\ufffd\ufffdB\ufffd", "invalid UTF8String bytes replaced");
    t.equal(r1!.subject, "CN=A\ufffd\ufffdB\ufffd");
    t.equal(r1!.issuerCN, r1!.subjectCN);

    const teletex = await makeCertWithRawCN(0x14, Buffer.from("Z\u00fcrich", "latin1"));
    t.equal(parseCertificates(teletex)[0]!.subjectCN, "Z\u00fcrich", "TeletexString read as ISO-8859-1");

    const bmp = await makeCertWithRawCN(0x1e, Buffer.from("6771 4eac d800 0041".replace(/ /g, ""), "hex"));
    t.equal(parseCertificates(bmp)[0]!.subjectCN, "東京\ufffdA", "BMPString: UTF-16BE, lone surrogate replaced");

    const bmpOdd = await makeCertWithRawCN(0x1e, Buffer.from("00410042ff", "hex"));
    t.equal(parseCertificates(bmpOdd)[0]!.subjectCN, "AB\ufffd", "BMPString with an odd byte count");

    const universal = await makeCertWithRawCN(0x1c, Buffer.from("0001f600ffffffff", "hex"));
    t.equal(parseCertificates(universal)[0]!.subjectCN, "\u{1f600}\ufffd", "UniversalString: UTF-32BE, invalid code point replaced");

    const printableHigh = await makeCertWithRawCN(0x13, Buffer.from("6f6bff6f6b", "hex"));
    t.equal(parseCertificates(printableHigh)[0]!.subjectCN, "ok\ufffdok", "PrintableString with a byte above 0x7f");

    for (const der of [invalidUtf8, teletex, bmp, bmpOdd, universal, printableHigh]) {
      const [r] = parseCertificates(der);
      t.notOk(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(r!.subject), "no lone surrogate");
    }
  });

  t.test("unicode DN", async (t) => {
    const c = await makeCert({ subject: [{ CN: ["Zürich 東京"] }, { O: ["Ünïcødé AG 🚀"] }] });
    const [r] = parseCertificates(c.der);
    t.equal(r!.subjectCN, "Zürich 東京");
    t.equal(r!.subject, "O=Ünïcødé AG 🚀,CN=Zürich 東京");
  });

  t.test('CN with ", \\ and a newline comes through intact', async (t) => {
    const cn = 'evil"name\\with\nnewline';
    const der = await makeCertWithRawCN(0x0c, Buffer.from(cn, "utf8"));
    t.ok(der.includes(Buffer.from(cn, "utf8")), "the generated certificate holds the raw bytes");
    const [r] = parseCertificates(der);
    t.equal(r!.subjectCN, cn, "raw value, no escaping");
    t.equal(r!.issuerCN, cn);
    t.equal(r!.subject, 'CN=evil\\"name\\\\with\nnewline', "RFC 4514 escaping in the DN; the newline is left to the renderer");
  });

  t.test("RFC 4514 special characters in DN values", async (t) => {
    const c = await makeCert({ subject: [{ CN: ["plain"] }, { O: ["a,b+c;d<e>f"] }, { OU: [" #lead and trail "] }] });
    t.ok(c.der.includes(Buffer.from("a,b+c;d<e>f")) && c.der.includes(Buffer.from(" #lead and trail ")), "raw values encoded");
    const [r] = parseCertificates(c.der);
    t.equal(r!.subject, "OU=\\ #lead and trail\\ ,O=a\\,b\\+c\\;d\\<e\\>f,CN=plain");
  });

  t.test("no CN", async (t) => {
    const c = await makeCert({ subject: "O=No Common Name Ltd, C=GB" });
    const [r] = parseCertificates(c.der);
    t.equal(r!.subjectCN, "");
    t.equal(r!.issuerCN, "");
    t.equal(r!.subject, "C=GB,O=No Common Name Ltd");
  });

  t.test("multi-valued RDN, unknown attribute types and emailAddress", async (t) => {
    const c = await makeCert({ subject: [{ CN: ["multi"], O: ["Org"] }, { "1.2.3.4.5": ["custom"] }, { E: ["ops@example.com"] }] });
    const [r] = parseCertificates(c.der);
    // A type written as a dotted OID carries its value as "#" and its DER in hex (RFC 4514 §2.4, as
    // openssl x509 -nameopt RFC2253 writes it): PrintableString "custom".
    t.equal(r!.subject, "emailAddress=ops@example.com,1.2.3.4.5=#1306637573746f6d,CN=multi+O=Org");
    t.equal(r!.subjectCN, "multi");
  });

  t.test("notAfter after 2050 (GeneralizedTime) and before 2000 (UTCTime 19xx)", async (t) => {
    const c = await makeCert({ notBefore: new Date("1995-06-15T08:00:00Z"), notAfter: new Date("2070-12-31T23:59:59Z") });
    t.ok(c.der.includes(Buffer.from("18" + "0f" + Buffer.from("20701231235959Z").toString("hex"), "hex")), "encoded as GeneralizedTime");
    t.ok(c.der.includes(Buffer.from("17" + "0d" + Buffer.from("950615080000Z").toString("hex"), "hex")), "encoded as UTCTime");
    const [r] = parseCertificates(c.der);
    t.equal(r!.notAfter, Date.parse("2070-12-31T23:59:59Z") / 1000);
    t.equal(r!.notBefore, Date.parse("1995-06-15T08:00:00Z") / 1000);
    const c2049 = await makeCert({ notAfter: new Date("2049-12-31T23:59:59Z") });
    t.equal(parseCertificates(c2049.der)[0]!.notAfter, Date.parse("2049-12-31T23:59:59Z") / 1000, "UTCTime 49 is 2049");
    const c2050 = await makeCert({ notAfter: new Date("2050-01-01T00:00:00Z") });
    t.equal(parseCertificates(c2050.der)[0]!.notAfter, Date.parse("2050-01-01T00:00:00Z") / 1000, "2050 is GeneralizedTime");
  });

  t.test("notBefore in the future", async (t) => {
    const nb = new Date("2099-01-02T03:04:05Z");
    const c = await makeCert({ notBefore: nb, notAfter: new Date("2100-01-02T03:04:05Z") });
    const [r] = parseCertificates(c.der);
    t.equal(r!.notBefore, nb.getTime() / 1000);
    t.equal(r!.notAfter, Date.parse("2100-01-02T03:04:05Z") / 1000);
  });

  t.test("Ed25519", async (t) => {
    const c = await makeCert({ key: "ed25519" });
    const [r] = parseCertificates(c.der);
    t.same([r!.keyAlgorithm, r!.keyBits, r!.signatureAlgorithm], ["Ed25519", 256, "Ed25519"]);
  });

  t.test("ECDSA P-384", async (t) => {
    const c = await makeCert({ key: "ec-p384" });
    const [r] = parseCertificates(c.der);
    t.same([r!.keyAlgorithm, r!.keyBits, r!.signatureAlgorithm], ["ECDSA", 384, "ecdsa-with-SHA384"]);
  });

  t.test("ECDSA P-521 signed with SHA-512", async (t) => {
    const keys = (await webcrypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-521" }, true, ["sign", "verify"])) as CryptoKeyPair;
    const c = await x509.X509CertificateGenerator.createSelfSigned({ name: "CN=p521", keys, signingAlgorithm: { name: "ECDSA", hash: "SHA-512" } });
    const [r] = parseCertificates(new Uint8Array(c.rawData));
    t.same([r!.keyAlgorithm, r!.keyBits, r!.signatureAlgorithm], ["ECDSA", 521, "ecdsa-with-SHA512"]);
  });

  t.test("RSA 4096", async (t) => {
    const c = await makeCert({ key: "rsa-4096" });
    const [r] = parseCertificates(c.der);
    t.same([r!.keyAlgorithm, r!.keyBits, r!.signatureAlgorithm], ["RSA", 4096, "sha256WithRSAEncryption"]);
    const rsa2048 = await makeCert({ key: "rsa-2048" });
    t.equal(parseCertificates(rsa2048.der)[0]!.keyBits, 2048);
  });

  t.test("RSASSA-PSS signature names its hash", async (t) => {
    const alg = { name: "RSA-PSS", hash: "SHA-384", publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048, saltLength: 48 };
    const keys = (await webcrypto.subtle.generateKey(alg, true, ["sign", "verify"])) as CryptoKeyPair;
    const c = await x509.X509CertificateGenerator.createSelfSigned({ name: "CN=pss", keys, signingAlgorithm: alg });
    const [r] = parseCertificates(new Uint8Array(c.rawData));
    t.equal(r!.signatureAlgorithm, "RSASSA-PSS-SHA384");
    t.equal(r!.keyAlgorithm, "RSA");
    t.equal(r!.keyBits, 2048);
  });

  t.test("CA flag", async (t) => {
    const ca = await makeCert({ ca: true });
    const leaf = await makeCert({ ca: false, issuer: ca });
    t.equal(parseCertificates(ca.der)[0]!.isCA, true);
    t.equal(parseCertificates(leaf.der)[0]!.isCA, false);
    const noExtensions = await x509.X509CertificateGenerator.createSelfSigned({ name: "CN=bare", keys: await sharedKeys("ec-p256"), signingAlgorithm: { name: "ECDSA", hash: "SHA-256" } });
    const [bare] = parseCertificates(new Uint8Array(noExtensions.rawData));
    t.equal(bare!.isCA, false, "no basicConstraints");
    t.same(bare!.sans, []);
  });

  t.test("key usage bits and extended key usage purposes: a sorted set, one string shared by records with the same", async (t) => {
    const flags = x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment | x509.KeyUsageFlags.decipherOnly;
    const a = await makeCert({ keyUsage: flags, extendedKeyUsage: ["1.3.6.1.5.5.7.3.2", "1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"] });
    const b = await makeCert({ extendedKeyUsage: ["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"] });
    const [ra] = parseCertificates(a.der);
    const [rb] = parseCertificates(b.der);
    t.equal(ra!.keyUsage, 1 | 4 | 256, "named bit n is 1 << n, bit 8 included");
    t.equal(ra!.extendedKeyUsage, "1.3.6.1.5.5.7.3.1,1.3.6.1.5.5.7.3.2", "sorted, without the repeat");
    t.equal(rb!.keyUsage, 0, "no keyUsage");
    t.equal(rb!.extendedKeyUsage, ra!.extendedKeyUsage);
    t.equal(parseCertificates((await makeCert()).der)[0]!.extendedKeyUsage, "", "no extendedKeyUsage");
  });

  t.test("a malformed extendedKeyUsage leaves the certificate readable, without purposes", async (t) => {
    const der = Buffer.from((await makeCert({ cn: "odd-eku", extendedKeyUsage: ["1.3.6.1.5.5.7.3.1"] })).der);
    const serverAuth = Buffer.from("06082b06010505070301", "hex");
    const at = der.indexOf(serverAuth);
    t.ok(at > 0 && der.indexOf(serverAuth, at + 1) < 0, "the purpose's OID is found once");
    der[at] = 0x04; // the purpose becomes an OCTET STRING
    const [record] = parseCertificates(der);
    t.equal(record!.subjectCN, "odd-eku");
    t.equal(record!.extendedKeyUsage, "");
  });

  t.test("SANs of each type", async (t) => {
    const c = await makeCert({
      sans: ["DNS:www.example.com", "*.example.org", "IP:10.1.2.3", "IP:2001:db8::7", "IP:::1", "IP:fe80:0:0:1:0:0:0:1", "email:ops@example.com", "URI:spiffe://cluster.local/ns/a/sa/b"],
    });
    t.same(parseCertificates(c.der)[0]!.sans, [
      "DNS:www.example.com",
      "DNS:*.example.org",
      "IP:10.1.2.3",
      "IP:2001:db8::7",
      "IP:::1",
      "IP:fe80:0:0:1::1",
      "email:ops@example.com",
      "URI:spiffe://cluster.local/ns/a/sa/b",
    ]);
  });

  t.test("serial with a leading zero byte", async (t) => {
    const signPadded = await makeCert({ serial: "c0ffee01" });
    t.ok(signPadded.der.includes(Buffer.from("020500c0ffee01", "hex")), "encoded with the DER sign octet");
    t.equal(parseCertificates(signPadded.der)[0]!.serial, "c0ffee01", "the sign octet is not part of the number");
    const leadingNibble = await makeCert({ serial: "0a0b0c" });
    t.ok(leadingNibble.der.includes(Buffer.from("02030a0b0c", "hex")));
    t.equal(parseCertificates(leadingNibble.der)[0]!.serial, "0a0b0c", "kept as encoded, lowercase");
    const upper = await makeCert({ serial: "7FABCDEF" });
    t.equal(parseCertificates(upper.der)[0]!.serial, "7fabcdef");
  });

  t.test("PEM with CRLF line endings", async (t) => {
    const crlf = (cert.pem + key).replace(/\n/g, "\r\n");
    t.same(parseCertificates(bytes(crlf)).map((r) => r.fingerprintSha256), [sha256(cert.der)]);
  });

  t.test("PEM with leading text and a BOM", async (t) => {
    const input = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), bytes("Bag Attributes\n    friendlyName: töst\nsubject=/CN=odd\n\n" + cert.pem + "trailing text\n")]);
    t.same(parseCertificates(input).map((r) => r.serial), ["0badcafe"]);
    const bomOnly = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), bytes(cert.pem)]);
    t.same(parseCertificates(bomOnly).map((r) => r.serial), ["0badcafe"]);
  });

  t.test("DER followed by trailing garbage: the certificate is read, the rest ignored", async (t) => {
    const input = Buffer.concat([cert.der, Buffer.from("trailing garbage \x00\xff")]);
    t.same(parseCertificates(input).map((r) => r.fingerprintSha256), [sha256(cert.der)]);
    const withTruncatedSecond = Buffer.concat([cert.der, cert.der.subarray(0, 50)]);
    t.same(parseCertificates(withTruncatedSecond).map((r) => r.fingerprintSha256), [sha256(cert.der)]);
  });

  t.test("concatenated DER certificates are all read", async (t) => {
    const other = await makeCert({ cn: "second" });
    t.same(parseCertificates(Buffer.concat([cert.der, other.der])).map((r) => r.subjectCN), ["odd.example.com", "second"]);
  });

  t.test("PKCS#7 with zero certificates", async (t) => {
    const empty = pkcs7([], "der") as Buffer;
    rejects(t, empty, "no_certificate");
    rejects(t, bytes(pkcs7([], "pem") as string), "no_certificate", ["CMS"]);
  });

  t.test("truncated PKCS#7", async (t) => {
    const p7 = pkcs7([cert], "der") as Buffer;
    rejects(t, p7.subarray(0, p7.length - 30), "corrupt_certificate");
  });

  t.test("a corrupt block inside a bundle fails the whole location, naming the block", async (t) => {
    const other = await makeCert({ cn: "fine" });
    // A SEQUENCE { INTEGER 1 }: decodes as DER, but is no certificate.
    const corruptBody = Buffer.from([0x30, 0x03, 0x02, 0x01, 0x01]).toString("base64");
    const bundle = cert.pem + key + blockOf("CERTIFICATE", corruptBody) + other.pem;
    const err = rejects(t, bytes(bundle), "corrupt_certificate");
    t.match(err.message, /PEM block 2 \(CERTIFICATE\)/);
    const badBase64 = cert.pem + blockOf("CERTIFICATE", "not base64 at all!") + other.pem;
    t.match(rejects(t, bytes(badBase64), "bad_base64").message, /PEM block 1/);
  });

  t.test("a CERTIFICATE block that is valid base64 but no certificate", async (t) => {
    rejects(t, bytes(blockOf("CERTIFICATE", Buffer.from("just some text").toString("base64"))), "corrupt_certificate");
    rejects(t, bytes(blockOf("CERTIFICATE", "")), "corrupt_certificate");
    // A CSR under a CERTIFICATE label: a SEQUENCE, but not a certificate.
    const csr = await csrPem();
    rejects(t, bytes(relabel(csr, "CERTIFICATE")), "corrupt_certificate");
  });

  t.test("an unterminated key block before a certificate does not hide the certificate", async (t) => {
    const cutKey = key.replace(/-----END PRIVATE KEY-----\n$/, "");
    t.same(parseCertificates(bytes(cutKey + cert.pem)).map((r) => r.serial), ["0badcafe"]);
  });

  t.test("DER with a broken inner structure", async (t) => {
    const broken = Buffer.from(cert.der);
    // The validity SEQUENCE's first time: change its tag to INTEGER.
    const at = broken.indexOf(Buffer.from("170d", "hex"));
    broken[at] = 0x02;
    rejects(t, broken, "corrupt_certificate");
  });
});

t.test("mutated inputs never escape as anything but CertReadError", async (t) => {
  const { root, intermediate, leaf } = await makeChain("fuzz.example.com");
  const inputs = [leaf.der, pkcs7([leaf, root], "der") as Buffer, Buffer.from(leaf.pem + intermediate.pem)];
  let seed = 20240301;
  const random = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  const outcomes = new Map<string, number>();
  let unexpected = 0;
  for (let n = 0; n < 3000; n++) {
    const mutated = Buffer.from(inputs[n % inputs.length]!);
    for (let k = 1 + Math.floor(random() * 4); k > 0; k--) mutated[Math.floor(random() * mutated.length)] = Math.floor(random() * 256);
    const input = random() < 0.1 ? mutated.subarray(0, Math.floor(random() * mutated.length)) : mutated;
    try {
      for (const r of parseCertificates(input)) {
        if (!Number.isFinite(r.notBefore) || !Number.isFinite(r.notAfter) || typeof r.subject !== "string") unexpected++;
      }
      outcomes.set("ok", (outcomes.get("ok") ?? 0) + 1);
    } catch (err) {
      if (err instanceof CertReadError) outcomes.set(err.reason, (outcomes.get(err.reason) ?? 0) + 1);
      else unexpected++;
    }
  }
  t.equal(unexpected, 0, "only records or CertReadErrors");
  t.ok((outcomes.get("ok") ?? 0) > 0 && (outcomes.get("corrupt_certificate") ?? 0) > 0, "both outcomes exercised");
});

t.test("bounded decoding: every structure an attacker can size has a limit with a clear error", async (t) => {
  const hostile = await import("../scripts/hostile.js");
  const { tlv } = hostile;

  t.test("OBJECT IDENTIFIERs: a huge arc is refused; a UUID arc (2.25.<128 bits>) is read exactly", async (t) => {
    t.match(errorOf(hostile.oidBomb(64 * 1024)).message, "OBJECT IDENTIFIER too long");
    const uuid = 0x1f2e3d4c5b6a79880f1e2d3c4b5a6978n;
    const digits: number[] = [];
    for (let v = uuid; v > 0n; v >>= 7n) digits.unshift(Number(v & 0x7fn) | (digits.length ? 0x80 : 0));
    const arcOid = Buffer.from([0x69, ...digits]); // 2.25 = 40 * 2 + 25 = 105
    const { decodeOid, readTlv } = await import("../src/certs/der.js");
    const oid = tlv(0x06, arcOid);
    t.equal(decodeOid(oid, readTlv(oid, 0)), `2.25.${uuid}`);
    const tooLong = tlv(0x06, Buffer.from([0x69, ...new Array<number>(20).fill(0xff), 0x7f]));
    t.throws(() => decodeOid(tooLong, readTlv(tooLong, 0)), { message: "OBJECT IDENTIFIER arc too large" });
  });

  t.test("BER indefinite lengths nest at most 12 deep", async (t) => {
    t.match(errorOf(hostile.berNesting(14)).message, "nested too deep");
    t.match(errorOf(hostile.berNesting(100_000)).message, "nested too deep");
  });

  t.test("PEM: one pass over markers; a BEGIN without END fails its block, an END of another label is ignored", async (t) => {
    const { pem } = await makeCert({ cn: "pem-scan.test" });
    t.match(errorOf(hostile.pemBeginFlood(256 * 1024)).message, "PEM block 0 (CERTIFICATE): no END line");
    const strayEnd = `-----END PRIVATE KEY-----\n${pem}-----END CERTIFICATE-----\n`;
    t.same(parseCertificates(bytes(strayEnd)).map((r) => r.subjectCN), ["pem-scan.test"]);
    const err = rejects(t, hostile.pemLabelFlood(1000), "no_certificate", [...Array.from({ length: 16 }, (_, i) => `LABEL ${i}`), "…"]);
    t.ok(err.message.length < 400, "the message names a bounded number of labels");
  });

  t.test("certificates per input stop at maxCertificates, before the rest are decoded", async (t) => {
    const bundle = await hostile.manyCertificates(50);
    t.equal(parseCertificates(bundle, "auto", { maxCertificates: 50 }).length, 50);
    const tooMany = /^more than \d+ certificates \(limits\.maxCertificatesPerLocation\)$/;
    t.throws(() => parseCertificates(bundle, "auto", { maxCertificates: 49 }), { name: "CertReadError", message: tooMany });
    const p7 = pkcs7(await Promise.all([1, 2, 3].map((i) => makeCert({ cn: `p7-${i}` }))), "der") as Buffer;
    t.throws(() => parseCertificates(p7, "auto", { maxCertificates: 2 }), { name: "CertReadError", message: tooMany }, "PKCS#7 too");
  });

  t.test("names decode at most 64 RDNs and 16 attributes each; SANs at most 1,000; the rest is counted", async (t) => {
    const [record] = parseCertificates(hostile.sanFlood(1500));
    t.equal(record?.sans.length, 1001);
    t.equal(record?.sans.at(-1), "…500 more");
    t.equal(record?.sans[0], "DNS:n0.example.test");
  });

  t.test("extended key usage decodes at most 32 purposes; the rest is counted", async (t) => {
    const purposes = Array.from({ length: 40 }, (_, i) => `1.3.6.1.4.1.55555.37.${100 + i}`);
    const [record] = parseCertificates((await makeCert({ extendedKeyUsage: purposes })).der);
    const listed = record!.extendedKeyUsage.split(",");
    t.equal(listed.length, 33);
    t.same(listed.slice(0, 32), purposes.slice(0, 32).sort());
    t.equal(listed.at(-1), "…8 more");
  });
});
