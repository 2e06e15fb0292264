import forge from "node-forge";
import { CertReadError } from "../errors.js";
import { asBuffer } from "./der.js";

/**
 * The certificates (DER) of a PKCS#12 / PFX bundle, in bag order. node-forge does the decoding: it
 * verifies the MAC and decrypts every PBE scheme in use (PBES2 with AES as OpenSSL 3 writes it, and
 * the legacy SHA-1 3DES and RC2-40 of OpenSSL 1.x and older Java keystores), which node:crypto alone
 * cannot (RC2 needs OpenSSL's legacy provider).
 *
 * Private keys: forge decrypts key bags as part of the parse; they are dropped with the parse result
 * and never returned, logged or kept. Error messages name the structure, never the bytes.
 *
 * Throws CertReadError: `wrong_passphrase` when the MAC (or a decryption) fails for this passphrase,
 * `corrupt_certificate` when the bytes are not a PKCS#12 bundle, `no_certificate` when it holds none.
 */
export function pkcs12Certificates(bytes: Uint8Array, passphrase: string): Buffer[] {
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
