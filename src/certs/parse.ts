/**
 * Bytes → certificate records. Pure: no I/O, no logging, no state beyond OID name caches.
 *
 * Engine: our own PEM scanner and a light DER reader (der.ts, decode.ts). It was chosen by
 * measurement (bench/parse.ts): it reads a bundle in one pass, gives every CertRecord field (node:crypto's
 * X509Certificate reads one certificate per call and lacks the signature algorithm on Node 20), and is
 * about 6x (PEM bundle) to 8x (single DER) faster than node:crypto and ~30x faster than @peculiar/x509.
 * node:crypto also refuses a whole certificate whose DN holds an invalid UTF8String; we read it.
 *
 * Policy for a bundle where one block is broken: the whole location fails with `corrupt_certificate`
 * (or `bad_base64`) and the message names the block index. A partial result would make the broken
 * certificate (often the leaf, the one that expires first) silently vanish from the metrics while the
 * location looks healthy; the inventory keeps either the certificates of a location or its error, and a
 * `cert_read_errors` series is what makes a human fix the file.
 *
 * Error messages name structure and positions only: never the input bytes, never key material.
 */
import { CertReadError } from "../errors.js";
import type { CertRecord } from "./record.js";
import { DerError, TAG, type Tlv, asBuffer, children, decodeOid, expect, readTlv } from "./der.js";
import { decodeCertificate } from "./decode.js";

export type CertFormat = "auto" | "pem" | "der" | "pkcs7";

/** PEM labels holding one DER certificate. "TRUSTED CERTIFICATE" is OpenSSL's cert + trust settings (read the cert, ignore the rest). */
const CERT_LABELS = new Set(["CERTIFICATE", "X509 CERTIFICATE", "X.509 CERTIFICATE", "TRUSTED CERTIFICATE"]);
/** PEM labels holding a PKCS#7 / CMS ContentInfo. */
const PKCS7_LABELS = new Set(["PKCS7", "PKCS #7 SIGNED DATA", "CMS"]);

const OID_SIGNED_DATA = "1.2.840.113549.1.7.2";

interface PemBlock {
  label: string;
  /** Base64 body, whitespace included; undefined when the END line is missing. */
  body: string | undefined;
}

const BEGIN = "-----BEGIN ";
const DASHES = "-----";

/** True when the text holds a PEM BEGIN line. */
function looksLikePem(text: string): boolean {
  return /-----BEGIN [\x20-\x7e]*?-----/.test(text);
}

/**
 * Splits PEM text into blocks. Text between blocks (openssl's "subject=" lines, comments, a BOM) is
 * ignored. A block ends at its END line; meeting another BEGIN line or the end of input first means
 * the END line is missing.
 */
function scanPem(text: string): PemBlock[] {
  const blocks: PemBlock[] = [];
  let pos = 0;
  for (;;) {
    const begin = text.indexOf(BEGIN, pos);
    if (begin < 0) break;
    const labelEnd = text.indexOf(DASHES, begin + BEGIN.length);
    const newline = text.indexOf("\n", begin);
    if (labelEnd < 0 || (newline >= 0 && labelEnd > newline)) {
      pos = begin + BEGIN.length;
      continue;
    }
    const label = text.slice(begin + BEGIN.length, labelEnd).trim();
    const bodyStart = labelEnd + DASHES.length;
    const endMarker = `-----END ${label}-----`;
    const end = text.indexOf(endMarker, bodyStart);
    const nextBegin = text.indexOf(BEGIN, bodyStart);
    if (end < 0 || (nextBegin >= 0 && nextBegin < end)) {
      blocks.push({ label, body: undefined });
      pos = bodyStart;
      continue;
    }
    blocks.push({ label, body: text.slice(bodyStart, end) });
    pos = end + endMarker.length;
  }
  return blocks;
}

const BASE64_BODY = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * Decodes a PEM body strictly (Buffer.from(…, "base64") silently skips invalid characters).
 * RFC 1421 headers ("Proc-Type: …" lines followed by a blank line) are not part of certificate
 * blocks; any such text fails here.
 */
function decodeBase64(body: string): Buffer | undefined {
  const compact = body.replace(/[\s]+/g, "");
  if (!BASE64_BODY.test(compact) || compact.length % 4 === 1) return undefined;
  return Buffer.from(compact, "base64");
}

/** Does `bytes` start like a DER SEQUENCE whose first child is a SEQUENCE (a certificate) or an OID (a ContentInfo)? */
function looksLikeDer(bytes: Uint8Array): boolean {
  if (bytes.length < 4 || bytes[0] !== TAG.SEQUENCE) return false;
  const len = bytes[1]!;
  let header = 2;
  if (len > 0x84) return false;
  else if (len > 0x80) header = 2 + (len & 0x7f);
  const inner = bytes[header];
  return inner === TAG.SEQUENCE || inner === TAG.OID;
}

function describe(err: unknown): string {
  return err instanceof DerError ? err.message : "malformed structure";
}

/** Turns one certificate's TLV into its record; the parse cache passes one that remembers certificates. */
export type CertDecoder = (buf: Uint8Array, cert: Tlv) => CertRecord;

function certAt(buf: Uint8Array, tlv: Tlv, what: string, decode: CertDecoder): CertRecord {
  try {
    return decode(buf, tlv);
  } catch (err) {
    throw new CertReadError("corrupt_certificate", `${what}: ${describe(err)}`, { cause: err });
  }
}

/** DER certificates, one after another. Trailing bytes that do not form a further certificate are ignored, as OpenSSL does. */
function parseDer(buf: Uint8Array, decode: CertDecoder): CertRecord[] {
  let first: Tlv;
  try {
    first = readTlv(buf, 0);
  } catch (err) {
    throw new CertReadError("corrupt_certificate", `DER certificate: ${describe(err)}`, { cause: err });
  }
  const records = [certAt(buf, first, "DER certificate", decode)];
  let pos = first.end;
  while (pos < buf.length && buf[pos] === TAG.SEQUENCE) {
    let next: Tlv;
    let record: CertRecord;
    try {
      next = readTlv(buf, pos);
      record = decode(buf, next);
    } catch {
      break;
    }
    records.push(record);
    pos = next.end;
  }
  return records;
}

/** Certificates of a PKCS#7 / CMS SignedData ContentInfo (certs-only .p7b/.p7c, or any SignedData). */
function parsePkcs7(buf: Uint8Array, what: string, decode: CertDecoder): CertRecord[] {
  let certTlvs: Tlv[];
  try {
    const info = expect(buf, 0, buf.length, TAG.SEQUENCE, "ContentInfo");
    const typeTlv = expect(buf, info.contentStart, info.contentEnd, TAG.OID, "ContentInfo contentType");
    if (decodeOid(buf, typeTlv) !== OID_SIGNED_DATA) {
      throw new CertReadError("no_certificate", `${what}: PKCS#7 content is not SignedData`);
    }
    const explicit = expect(buf, typeTlv.end, info.contentEnd, 0xa0, "ContentInfo content");
    const signed = expect(buf, explicit.contentStart, explicit.contentEnd, TAG.SEQUENCE, "SignedData");
    const parts = children(buf, signed);
    // version, digestAlgorithms, encapContentInfo, then [0] IMPLICIT certificates (optional).
    const certSet = parts.slice(3).find((t) => t.tag === 0xa0);
    certTlvs = certSet ? children(buf, certSet).filter((t) => t.tag === TAG.SEQUENCE) : [];
  } catch (err) {
    if (err instanceof CertReadError) throw err;
    throw new CertReadError("corrupt_certificate", `${what}: ${describe(err)}`, { cause: err });
  }
  if (certTlvs.length === 0) throw new CertReadError("no_certificate", `${what}: PKCS#7 holds no certificate`);
  return certTlvs.map((t, i) => certAt(buf, t, `${what} certificate ${i}`, decode));
}

function parsePem(text: string, onlyPkcs7: boolean, decode: CertDecoder): CertRecord[] {
  const blocks = scanPem(text);
  if (blocks.length === 0) throw new CertReadError("not_pem_or_der", "no PEM block found");
  const records: CertRecord[] = [];
  const labels: string[] = [];
  let certBlocks = 0;
  blocks.forEach((block, index) => {
    const isCert = !onlyPkcs7 && CERT_LABELS.has(block.label);
    const isPkcs7 = PKCS7_LABELS.has(block.label);
    if (!isCert && !isPkcs7) {
      // Keys, requests, CRLs, parameters…: skipped without decoding, so key material is never touched.
      if (!labels.includes(block.label)) labels.push(block.label);
      return;
    }
    certBlocks++;
    const what = `PEM block ${index} (${block.label})`;
    if (block.body === undefined) throw new CertReadError("corrupt_certificate", `${what}: no END line`);
    const der = decodeBase64(block.body);
    if (!der) throw new CertReadError("bad_base64", `${what}: body is not valid base64`);
    if (der.length === 0) throw new CertReadError("corrupt_certificate", `${what}: empty body`);
    if (isPkcs7) {
      try {
        records.push(...parsePkcs7(der, what, decode));
      } catch (err) {
        // An empty PKCS#7 beside real certificates is not an error; alone it is reported below.
        if (!(err instanceof CertReadError && err.reason === "no_certificate")) throw err;
        if (!labels.includes(block.label)) labels.push(block.label);
      }
      return;
    }
    let tlv: Tlv;
    try {
      tlv = readTlv(der, 0);
    } catch (err) {
      throw new CertReadError("corrupt_certificate", `${what}: ${describe(err)}`, { cause: err });
    }
    records.push(certAt(der, tlv, what, decode));
  });
  if (records.length === 0) {
    const message = certBlocks > 0 ? "PKCS#7 holds no certificate" : `PEM without a certificate (found: ${labels.join(", ")})`;
    throw new CertReadError("no_certificate", message, { pemLabels: labels });
  }
  return records;
}

function isBlank(bytes: Uint8Array): boolean {
  for (const b of bytes) if (b !== 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d) return false;
  return true;
}

/**
 * Reads every certificate in `bytes`: a PEM bundle (any number of CERTIFICATE / TRUSTED CERTIFICATE /
 * PKCS7 / CMS blocks; other blocks such as keys, requests and CRLs are skipped), DER certificate(s) or a
 * DER PKCS#7. Throws CertReadError with reason not_pem_or_der, no_certificate (pemLabels filled),
 * corrupt_certificate or bad_base64. Records come in input order, which is the `index` label.
 */
export function parseCertificates(bytes: Uint8Array, format: CertFormat = "auto", decode: CertDecoder = decodeCertificate): CertRecord[] {
  if (bytes.length === 0 || isBlank(bytes)) throw new CertReadError("not_pem_or_der", "empty input");
  const der = looksLikeDer(bytes);
  if (format === "der") {
    if (!der) throw new CertReadError("not_pem_or_der", "not a DER certificate");
    return parseDer(bytes, decode);
  }
  if (der && format !== "pem") {
    let contentType: string | undefined;
    try {
      const outer = readTlv(bytes, 0);
      const first = readTlv(bytes, outer.contentStart, outer.contentEnd);
      if (first.tag === TAG.OID) contentType = decodeOid(bytes, first);
    } catch {
      // Truncated: handled by the DER path below.
    }
    if (contentType !== undefined || format === "pkcs7") return parsePkcs7(bytes, "PKCS#7", decode);
    return parseDer(bytes, decode);
  }
  // PEM never holds bytes above 0x7f except in surrounding text; latin1 keeps offsets byte-exact.
  const text = asBuffer(bytes).toString("latin1");
  if (!looksLikePem(text)) {
    throw new CertReadError("not_pem_or_der", format === "auto" ? "neither PEM nor DER" : `not ${format === "pem" ? "PEM" : "PKCS#7"}`);
  }
  return parsePem(text, format === "pkcs7", decode);
}
