/**
 * A reader of Java KeyStores in the JKS format (keytool -storetype JKS, cert-manager's
 * `keystore.jks` and `truststore.jks`). Pure: no I/O, no logging.
 *
 * Layout, all integers big-endian:
 *
 *     u32 magic 0xFEEDFEED, u32 version (1 or 2), u32 entry count, then each entry:
 *       u32 tag, u16 + alias (modified UTF-8), u64 creation date (ms), then
 *       tag 1 (PrivateKeyEntry):  u32 + protected key, u32 chain length, chain length × certificate
 *       tag 2 (TrustedCertEntry): certificate
 *     where a certificate is (version 2 only: u16 + type, "X.509") u32 + DER;
 *     then 20 bytes: SHA-1 over the passphrase (UTF-16BE), "Mighty Aphrodite" and every byte before.
 *
 * Certificates are stored in the clear: reading them needs no key and no decryption. The protected
 * private key is skipped by its length, never read, copied or kept. The passphrase only checks the
 * integrity digest (verifyJks). Every length is checked against the bytes that remain before it is
 * used, and the entry and certificate counts against `maxCertificates` before anything is read for
 * them, so work and memory stay linear in the input whatever it declares. Bytes after the digest are
 * ignored, as Java does.
 *
 * JCEKS (magic 0xCECECECE) is not read: its secret-key entries are serialized Java objects, which
 * have no length to skip them by.
 */
import { createHash } from "node:crypto";
import { CertReadError } from "../errors.js";
import { DerError, readTlv } from "./der.js";

const MAGIC = 0xfeedfeed;
const TAG_PRIVATE_KEY = 1;
const TAG_TRUSTED_CERT = 2;
const DIGEST_BYTES = 20;
const WHITENER = Buffer.from("Mighty Aphrodite", "utf8");

/** True when `bytes` begin with the JKS magic; no other format the exporter reads starts so. */
export function looksLikeJks(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0xfe && bytes[1] === 0xed && bytes[2] === 0xfe && bytes[3] === 0xed;
}

/** One certificate's DER, as a range of the keystore's bytes, and what to call it in messages. */
export interface JksCertificate {
  start: number;
  end: number;
  what: string;
}

export interface JksLayout {
  /** Certificates in file order; a PrivateKeyEntry's chain leaf first, as Java stores it. */
  certificates: JksCertificate[];
  /** Where the entries end and the integrity digest begins. */
  dataEnd: number;
}

class Reader {
  pos = 0;
  constructor(
    readonly buf: Uint8Array,
    readonly what: () => string,
  ) {}

  #need(n: number, field: string): void {
    if (n > this.buf.length - this.pos) {
      throw new CertReadError("corrupt_certificate", `JKS keystore, ${this.what()}: ${field} needs ${n} bytes, ${this.buf.length - this.pos} remain`);
    }
  }

  u16(field: string): number {
    this.#need(2, field);
    const v = (this.buf[this.pos]! << 8) | this.buf[this.pos + 1]!;
    this.pos += 2;
    return v;
  }

  u32(field: string): number {
    this.#need(4, field);
    const b = this.buf;
    const p = this.pos;
    this.pos += 4;
    return b[p]! * 0x1000000 + ((b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!);
  }

  /** Skips `n` bytes after checking they are there; returns where they began. */
  skip(n: number, field: string): number {
    this.#need(n, field);
    const start = this.pos;
    this.pos += n;
    return start;
  }
}

function tooMany(max: number): CertReadError {
  return new CertReadError("too_many_certificates", `more than ${max} certificates (limits.maxCertificatesPerLocation)`);
}

/**
 * Where the certificates of a JKS keystore are. Throws CertReadError: `corrupt_certificate` for a
 * keystore that is truncated, declares a length past its end, has an unknown version or entry tag,
 * or lacks its digest; `too_many_certificates` past `maxCertificates`; `no_certificate` when it has
 * no entry. The digest is not checked here (verifyJks).
 */
export function readJks(bytes: Uint8Array, maxCertificates = Infinity): JksLayout {
  let where = "header";
  const r = new Reader(bytes, () => where);
  if (r.u32("magic") !== MAGIC) throw new CertReadError("corrupt_certificate", "not a JKS keystore: no 0xFEEDFEED magic");
  const version = r.u32("version");
  if (version !== 1 && version !== 2) throw new CertReadError("corrupt_certificate", `JKS keystore: unsupported version ${version}`);
  const count = r.u32("entry count");
  // Every entry holds at least one certificate; Java never writes a key entry without its chain.
  if (count > maxCertificates) throw tooMany(maxCertificates);
  const certificates: JksCertificate[] = [];
  const certificate = (what: string): void => {
    if (certificates.length >= maxCertificates) throw tooMany(maxCertificates);
    let x509 = true;
    if (version === 2) {
      const typeLength = r.u16("certificate type length");
      const typeStart = r.skip(typeLength, "certificate type");
      x509 = Buffer.from(bytes.buffer, bytes.byteOffset + typeStart, typeLength).toString("latin1") === "X.509";
    }
    const length = r.u32("certificate length");
    const start = r.skip(length, "certificate");
    // Other certificate types have no X.509 expiry to export; Java's JKS holds only X.509 in practice.
    if (!x509) return;
    try {
      if (readTlv(bytes, start, start + length).end !== start + length) throw new DerError("bytes after the certificate");
    } catch (err) {
      throw new CertReadError("corrupt_certificate", `${what}: ${err instanceof DerError ? err.message : "malformed structure"}`, { cause: err });
    }
    certificates.push({ start, end: start + length, what });
  };
  for (let entry = 0; entry < count; entry++) {
    where = `entry ${entry}`;
    const tag = r.u32("entry tag");
    r.skip(r.u16("alias length"), "alias");
    r.skip(8, "creation date");
    if (tag === TAG_PRIVATE_KEY) {
      r.skip(r.u32("protected key length"), "protected key");
      const chain = r.u32("chain length");
      if (certificates.length + chain > maxCertificates) throw tooMany(maxCertificates);
      for (let i = 0; i < chain; i++) {
        where = `entry ${entry} chain certificate ${i}`;
        certificate(`JKS entry ${entry} (private key) certificate ${i}`);
      }
    } else if (tag === TAG_TRUSTED_CERT) {
      certificate(`JKS entry ${entry} (trusted certificate)`);
    } else {
      throw new CertReadError("corrupt_certificate", `JKS keystore, entry ${entry}: unknown entry tag ${tag}`);
    }
  }
  where = "end";
  const dataEnd = r.pos;
  r.skip(DIGEST_BYTES, "integrity digest");
  if (certificates.length === 0) throw new CertReadError("no_certificate", "the JKS keystore holds no certificate");
  return { certificates, dataEnd };
}

/** The digest Java computes for `passphrase` over the keystore's entries. */
function digest(bytes: Uint8Array, dataEnd: number, passphrase: string): Buffer {
  const password = Buffer.from(passphrase, "utf16le").swap16(); // Java: each char as two bytes, high first
  return createHash("sha1").update(password).update(WHITENER).update(bytes.subarray(0, dataEnd)).digest();
}

/**
 * The certificates (DER, views of `bytes`) of a JKS keystore, in file order. With `passphrases`, the
 * integrity digest is checked first, as Java does on load, and must match one of them: else
 * `wrong_passphrase` (a wrong passphrase and altered bytes cannot be told apart). Without, the
 * certificates are read unchecked, as Java reads a keystore loaded without a password. Throws
 * otherwise as readJks.
 */
export function openJks(bytes: Uint8Array, passphrases: readonly string[] | undefined, maxCertificates = Infinity): Uint8Array[] {
  const { certificates, dataEnd } = readJks(bytes, maxCertificates);
  if (passphrases) {
    const stored = bytes.subarray(dataEnd, dataEnd + DIGEST_BYTES);
    if (!passphrases.some((passphrase) => digest(bytes, dataEnd, passphrase).equals(stored))) {
      throw new CertReadError("wrong_passphrase", "the JKS passphrase does not match (or the keystore was altered): its integrity digest differs");
    }
  }
  return certificates.map((c) => bytes.subarray(c.start, c.end));
}
