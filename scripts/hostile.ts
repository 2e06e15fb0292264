/**
 * Hostile inputs, made at run time for the hostile-input tests and bench/hostile.ts: each is a shape
 * that once cost the exporter minutes of event loop, or would if a limit went missing. None is a
 * valid certificate; the ones built by hand need no signature because nothing here verifies one.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeCert, privateKeyPem } from "./certgen.js";

/** One DER element: tag, definite length, content. */
export function tlv(tag: number, ...content: Uint8Array[]): Buffer {
  const body = Buffer.concat(content);
  const n = body.length;
  let header: number[];
  if (n < 0x80) header = [tag, n];
  else if (n < 0x100) header = [tag, 0x81, n];
  else if (n < 0x10000) header = [tag, 0x82, n >> 8, n & 0xff];
  else if (n < 0x1000000) header = [tag, 0x83, n >> 16, (n >> 8) & 0xff, n & 0xff];
  else header = [tag, 0x84, (n >>> 24) & 0xff, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff];
  return Buffer.concat([Buffer.from(header), body]);
}

const seq = (...c: Uint8Array[]) => tlv(0x30, ...c);
const oid = (content: Uint8Array) => tlv(0x06, content);
const ECDSA_SHA256 = Buffer.from([0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]);
const EC_PUBLIC_KEY = Buffer.from([0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01]);
const P256 = Buffer.from([0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]);
const SAN = Buffer.from([0x55, 0x1d, 0x11]);

function name(attributeType: Uint8Array, value: string): Buffer {
  return seq(tlv(0x31, seq(oid(attributeType), tlv(0x0c, Buffer.from(value, "utf8")))));
}

/** A certificate of the right shape with the given issuer and extensions. */
function certificate(issuer: Buffer, extensions: Buffer[] = []): Buffer {
  const algorithm = seq(oid(ECDSA_SHA256));
  const validity = seq(tlv(0x17, Buffer.from("250101000000Z")), tlv(0x17, Buffer.from("350101000000Z")));
  const spki = seq(seq(oid(EC_PUBLIC_KEY), oid(P256)), tlv(0x03, Buffer.from([0, 4, ...new Array<number>(64).fill(1)])));
  const exts = extensions.length ? [tlv(0xa3, seq(...extensions))] : [];
  const tbs = seq(tlv(0xa0, tlv(0x02, Buffer.from([2]))), tlv(0x02, Buffer.from([1])), algorithm, issuer, validity, name(Buffer.from([0x55, 0x04, 0x03]), "hostile"), spki, ...exts);
  return seq(tbs, algorithm, tlv(0x03, Buffer.from([0, 1, 2, 3])));
}

/** An issuer attribute type whose OID is `bytes` long: decoded into a BigInt, it cost quadratic time. */
export function oidBomb(bytes = 512 * 1024): Buffer {
  const content = Buffer.alloc(bytes, 0xff);
  content[0] = 0x2a;
  content[bytes - 1] = 0x7f;
  return certificate(seq(tlv(0x31, seq(oid(content), tlv(0x0c, Buffer.from("x"))))));
}

/** BEGIN lines and no END line: a scan that looks for the END of each searched to the end of the text. */
export function pemBeginFlood(bytes = 3 * 1024 * 1024): Buffer {
  const line = "-----BEGIN CERTIFICATE-----\n";
  return Buffer.from(line.repeat(Math.floor(bytes / line.length)), "latin1");
}

/** Blocks with thousands of distinct labels, none a certificate. */
export function pemLabelFlood(blocks = 60_000): Buffer {
  const parts: string[] = [];
  for (let i = 0; i < blocks; i++) parts.push(`-----BEGIN LABEL ${i}-----\nAAAA\n-----END LABEL ${i}-----\n`);
  return Buffer.from(parts.join(""), "latin1");
}

/** Indefinite-length SEQUENCEs nested `depth` deep: each level would walk everything inside it again. */
export function berNesting(depth = 100_000): Buffer {
  return Buffer.concat([Buffer.alloc(depth * 2, 0).fill(Buffer.from([0x30, 0x80])), Buffer.alloc(depth * 2, 0)]);
}

/** One certificate with `count` DNS names: small bytes, large facts. */
export function sanFlood(count = 150_000): Buffer {
  const names = Buffer.concat(Array.from({ length: count }, (_, i) => tlv(0x82, Buffer.from(`n${i}.example.test`))));
  return certificate(name(Buffer.from([0x55, 0x04, 0x03]), "issuer"), [seq(oid(SAN), tlv(0x04, seq(names)))]);
}

/** A bundle of `count` copies of one real certificate, whose CN is `cnLength` characters when given. */
export async function manyCertificates(count = 5000, cnLength?: number): Promise<Buffer> {
  const cn = cnLength === undefined ? "copied.hostile.test" : `copied-${"c".repeat(cnLength - 7)}`;
  const { pem } = await makeCert({ cn });
  return Buffer.from(pem.repeat(count), "latin1");
}

/** A real certificate whose CN is `length` characters. */
export async function longCommonName(length = 10_000): Promise<{ pem: string; cn: string }> {
  const cn = `long-${"c".repeat(length - 5)}`;
  return { pem: (await makeCert({ cn })).pem, cn };
}

/** A kubeconfig whose top mapping holds `keys` entries: the yaml library compared every key with every other. */
export function kubeconfigBigMapping(bytes = 3 * 1024 * 1024): Buffer {
  const lines = ["apiVersion: v1", "kind: Config", "clusters: []"];
  let size = 0;
  for (let i = 0; size < bytes; i++) {
    const line = `key${i}: value${i}`;
    lines.push(line);
    size += line.length + 1;
  }
  return Buffer.from(lines.join("\n") + "\n");
}

/** A real PKCS#12 bundle (certificate and key) made by openssl with `iterations` for its MAC and encryptions. */
export async function opensslPkcs12(passphrase: string, iterations = 2048): Promise<Buffer> {
  const dir = mkdtempSync(join(tmpdir(), "cee-hostile-p12-"));
  try {
    const issued = await makeCert({ cn: "pkcs12.hostile.test" });
    writeFileSync(join(dir, "cert.pem"), issued.pem);
    writeFileSync(join(dir, "key.pem"), await privateKeyPem(issued));
    const args = ["-in", join(dir, "cert.pem"), "-inkey", join(dir, "key.pem"), "-out", join(dir, "b.p12"), "-passout", `pass:${passphrase}`, "-iter", String(iterations)];
    execFileSync("openssl", ["pkcs12", "-export", ...args, "-maciter"]);
    return readFileSync(join(dir, "b.p12"));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * A PKCS#12 bundle whose every iteration count (MAC, certificate and key encryption) is rewritten to
 * `iterations` (at most 2^23 - 1): the file chooses how much hashing a reader does before it can
 * even check the passphrase. The MAC no longer matches, which a reader learns only after the work.
 */
export async function costlyPkcs12(passphrase: string, iterations = 0x7fffff): Promise<Buffer> {
  // 65536 is 02 03 01 00 00 in DER: three content bytes, room for any count below 2^23.
  const der = await opensslPkcs12(passphrase, 65536);
  const from = Buffer.from([0x02, 0x03, 0x01, 0x00, 0x00]);
  const to = Buffer.from([0x02, 0x03, (iterations >> 16) & 0x7f, (iterations >> 8) & 0xff, iterations & 0xff]);
  let replaced = 0;
  for (let at = der.indexOf(from); at >= 0; at = der.indexOf(from, at + from.length)) {
    to.copy(der, at);
    replaced++;
  }
  if (replaced < 2) throw new Error(`expected the MAC's and the encryptions' iteration counts, found ${replaced}`);
  return der;
}
