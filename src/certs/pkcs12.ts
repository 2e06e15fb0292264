import forge from "node-forge";
import { CertReadError } from "../errors.js";
import { DerError, TAG, type Tlv, asBuffer, decodeOid, expect, readTlv } from "./der.js";

const OID_DATA = "1.2.840.113549.1.7.1";
const OID_ENCRYPTED_DATA = "1.2.840.113549.1.7.6";
const OID_SHROUDED_KEY_BAG = "1.2.840.113549.1.12.10.1.2";
const OID_PBES2 = "1.2.840.113549.1.5.13";

/** The elements inside a constructed element, in order. */
function* elements(buf: Uint8Array, parent: Tlv): Generator<Tlv> {
  for (let p = parent.contentStart; p < parent.contentEnd; ) {
    const child = readTlv(buf, p, parent.contentEnd);
    yield child;
    p = child.end;
  }
}

/** An INTEGER's value, or Infinity when it does not fit a safe integer (an iteration count never should). */
function integerValue(buf: Uint8Array, tlv: Tlv): number {
  if (tlv.tag !== TAG.INTEGER || tlv.contentEnd - tlv.contentStart > 6) return Infinity;
  let value = 0;
  for (let i = tlv.contentStart; i < tlv.contentEnd; i++) value = value * 256 + buf[i]!;
  return value;
}

/**
 * Iterations an encryption AlgorithmIdentifier asks for: PBES2 names them in its PBKDF2 parameters,
 * the PKCS#12 and PKCS#5 v1 schemes in their own { salt, iterations }.
 */
function algorithmIterations(buf: Uint8Array, algId: Tlv): number {
  const oidTlv = expect(buf, algId.contentStart, algId.contentEnd, TAG.OID, "encryption algorithm");
  if (oidTlv.end >= algId.contentEnd) return 0;
  let params = expect(buf, oidTlv.end, algId.contentEnd, TAG.SEQUENCE, "encryption parameters");
  if (decodeOid(buf, oidTlv) === OID_PBES2) {
    const kdf = expect(buf, params.contentStart, params.contentEnd, TAG.SEQUENCE, "PBES2 key derivation");
    const kdfOid = expect(buf, kdf.contentStart, kdf.contentEnd, TAG.OID, "PBES2 key derivation");
    params = expect(buf, kdfOid.end, kdf.contentEnd, TAG.SEQUENCE, "PBKDF2 parameters");
  }
  const salt = readTlv(buf, params.contentStart, params.contentEnd);
  return integerValue(buf, readTlv(buf, salt.end, params.contentEnd));
}

/** BER segments of a segmented OCTET STRING may themselves be segmented; real encoders go one level. */
const MAX_SEGMENT_NESTING = 4;

/** The content octets of an OCTET STRING, which BER may split into constructed segments. */
function octets(buf: Uint8Array, tlv: Tlv, nesting = 0): Uint8Array {
  if (tlv.tag === TAG.OCTET_STRING) return buf.subarray(tlv.contentStart, tlv.contentEnd);
  if (tlv.tag !== (TAG.OCTET_STRING | 0x20)) throw new DerError("expected an OCTET STRING");
  if (nesting >= MAX_SEGMENT_NESTING) throw new DerError("OCTET STRING segments nested too deep");
  const parts: Uint8Array[] = [];
  for (const part of elements(buf, tlv)) parts.push(octets(buf, part, nesting + 1));
  return Buffer.concat(parts);
}

/** The content of a ContentInfo of type data: the DER it wraps. */
function dataContent(buf: Uint8Array, info: Tlv, typeTlv: Tlv): Uint8Array {
  const explicit = expect(buf, typeTlv.end, info.contentEnd, 0xa0, "ContentInfo content");
  return octets(buf, readTlv(buf, explicit.contentStart, explicit.contentEnd));
}

/**
 * Sums the key-derivation iterations a PKCS#12 bundle asks for where they can be seen without the
 * passphrase: the MAC, every encrypted part, and every shrouded key bag in the clear parts. The file
 * chooses these numbers and each costs a hash computation, so they are checked before any is done.
 */
export function pkcs12Iterations(bytes: Uint8Array): number {
  const buf = asBuffer(bytes);
  const pfx = expect(buf, 0, buf.length, TAG.SEQUENCE, "PFX");
  const version = expect(buf, pfx.contentStart, pfx.contentEnd, TAG.INTEGER, "PFX version");
  const authSafe = expect(buf, version.end, pfx.contentEnd, TAG.SEQUENCE, "PFX authSafe");
  let total = 0;
  if (authSafe.end < pfx.contentEnd) {
    const macData = expect(buf, authSafe.end, pfx.contentEnd, TAG.SEQUENCE, "PFX macData");
    const digest = readTlv(buf, macData.contentStart, macData.contentEnd);
    const salt = readTlv(buf, digest.end, macData.contentEnd);
    total += salt.end < macData.contentEnd ? integerValue(buf, readTlv(buf, salt.end, macData.contentEnd)) : 1;
  }
  const authType = expect(buf, authSafe.contentStart, authSafe.contentEnd, TAG.OID, "authSafe type");
  if (decodeOid(buf, authType) !== OID_DATA) return total;
  const safe = dataContent(buf, authSafe, authType);
  for (const info of elements(safe, expect(safe, 0, safe.length, TAG.SEQUENCE, "AuthenticatedSafe"))) {
    const typeTlv = expect(safe, info.contentStart, info.contentEnd, TAG.OID, "ContentInfo type");
    const type = decodeOid(safe, typeTlv);
    if (type === OID_ENCRYPTED_DATA) {
      const explicit = expect(safe, typeTlv.end, info.contentEnd, 0xa0, "EncryptedData");
      const encrypted = expect(safe, explicit.contentStart, explicit.contentEnd, TAG.SEQUENCE, "EncryptedData");
      const encVersion = readTlv(safe, encrypted.contentStart, encrypted.contentEnd);
      const contentInfo = expect(safe, encVersion.end, encrypted.contentEnd, TAG.SEQUENCE, "EncryptedContentInfo");
      const contentType = readTlv(safe, contentInfo.contentStart, contentInfo.contentEnd);
      total += algorithmIterations(safe, expect(safe, contentType.end, contentInfo.contentEnd, TAG.SEQUENCE, "content encryption"));
    } else if (type === OID_DATA) {
      const contents = dataContent(safe, info, typeTlv);
      for (const bag of elements(contents, expect(contents, 0, contents.length, TAG.SEQUENCE, "SafeContents"))) {
        const bagId = expect(contents, bag.contentStart, bag.contentEnd, TAG.OID, "SafeBag type");
        if (decodeOid(contents, bagId) !== OID_SHROUDED_KEY_BAG) continue;
        const value = expect(contents, bagId.end, bag.contentEnd, 0xa0, "SafeBag value");
        const keyInfo = expect(contents, value.contentStart, value.contentEnd, TAG.SEQUENCE, "EncryptedPrivateKeyInfo");
        total += algorithmIterations(contents, expect(contents, keyInfo.contentStart, keyInfo.contentEnd, TAG.SEQUENCE, "key encryption"));
      }
    }
    if (total === Infinity) break;
  }
  return total;
}

/**
 * The certificates (DER) of a PKCS#12 / PFX bundle, in bag order. node-forge does the decoding: it
 * verifies the MAC and decrypts every PBE scheme in use (PBES2 with AES as OpenSSL 3 writes it, and
 * the legacy SHA-1 3DES and RC2-40 of OpenSSL 1.x and older Java keystores), which node:crypto alone
 * cannot (RC2 needs OpenSSL's legacy provider).
 *
 * Private keys: forge decrypts key bags as part of the parse; they are dropped with the parse result
 * and never returned, logged or kept. Error messages name the structure, never the bytes.
 *
 * Work: the key derivations the bundle asks for are summed first (pkcs12Iterations) and refused with
 * `too_costly` beyond `maxIterations`; forge's own cost is linear in the bytes otherwise. Derivations
 * hidden inside encrypted parts cannot be counted beforehand: the caller runs this off the event
 * loop with a time budget (src/decode-pool.ts).
 *
 * Throws CertReadError: `wrong_passphrase` when the MAC (or a decryption) fails for this passphrase,
 * `corrupt_certificate` when the bytes are not a PKCS#12 bundle, `no_certificate` when it holds none,
 * `too_costly` as above.
 */
export function pkcs12Certificates(bytes: Uint8Array, passphrase: string, maxIterations = Infinity): Buffer[] {
  let iterations: number;
  try {
    iterations = pkcs12Iterations(bytes);
  } catch (err) {
    const detail = err instanceof DerError ? err.message : "malformed structure";
    throw new CertReadError("corrupt_certificate", `not a PKCS#12 bundle: ${detail}`);
  }
  if (iterations > maxIterations) {
    throw new CertReadError("too_costly", `the PKCS#12 bundle asks for ${iterations} key-derivation iterations, over limits.pkcs12MaxIterations (${maxIterations})`);
  }
  let asn1: forge.asn1.Asn1;
  try {
    asn1 = forge.asn1.fromDer(forge.util.createBuffer(asBuffer(bytes).toString("binary")), false);
  } catch {
    throw new CertReadError("corrupt_certificate", "not a PKCS#12 bundle: the bytes are not DER");
  }
  let p12: forge.pkcs12.Pkcs12Pfx;
  try {
    p12 = forge.pkcs12.pkcs12FromAsn1(asn1, false, passphrase);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    if (/password|MAC could not be verified|Unable to decrypt/i.test(message)) {
      throw new CertReadError("wrong_passphrase", "the PKCS#12 passphrase does not match (MAC verification or decryption failed)");
    }
    // forge's messages describe the ASN.1 structure that failed to match; they hold no input bytes.
    throw new CertReadError("corrupt_certificate", `not a valid PKCS#12 bundle: ${message.slice(0, 200)}`);
  }
  const certificates: Buffer[] = [];
  for (const content of p12.safeContents) {
    for (const bag of content.safeBags) {
      if (bag.type !== forge.pki.oids.certBag) continue;
      // forge parses RSA certificates (bag.cert, re-encoded from the original TBS bytes) and passes
      // others (EC, Ed25519) through as ASN.1 (bag.asn1).
      const node = bag.cert ? forge.pki.certificateToAsn1(bag.cert) : bag.asn1;
      if (!node) continue;
      certificates.push(Buffer.from(forge.asn1.toDer(node).getBytes(), "binary"));
    }
  }
  if (certificates.length === 0) throw new CertReadError("no_certificate", "the PKCS#12 bundle holds no certificate");
  return certificates;
}

/**
 * The certificates of a bundle that one of `passphrases` opens, tried in order (a Secret's key with
 * and without its trailing newline). Throws as pkcs12Certificates; `wrong_passphrase` when none fits.
 */
export function openPkcs12(bytes: Uint8Array, passphrases: readonly string[], maxIterations = Infinity): Buffer[] {
  let refused: CertReadError | undefined;
  for (const passphrase of passphrases) {
    try {
      return pkcs12Certificates(bytes, passphrase, maxIterations);
    } catch (err) {
      if (!(err instanceof CertReadError) || err.reason !== "wrong_passphrase") throw err;
      refused = err;
    }
  }
  throw refused ?? new CertReadError("wrong_passphrase", "no passphrase to try");
}
