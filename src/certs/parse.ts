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
import type { CertRecord, CrlRecord } from "./record.js";
import { DerError, TAG, type Tlv, asBuffer, decodeOid, expect, readTlv } from "./der.js";
import { decodeCertificate } from "./decode.js";
import { decodeCrl, looksLikeCrl } from "./crl.js";
import { decodeBase64 } from "./base64.js";
import { looksLikeJks, readJks } from "./jks.js";

export type CertFormat = "auto" | "pem" | "der" | "pkcs7";

/** PEM labels holding one DER certificate. "TRUSTED CERTIFICATE" is OpenSSL's cert + trust settings (read the cert, ignore the rest). */
const CERT_LABELS = new Set(["CERTIFICATE", "X509 CERTIFICATE", "X.509 CERTIFICATE", "TRUSTED CERTIFICATE"]);
/** PEM labels holding a PKCS#7 / CMS ContentInfo. */
const PKCS7_LABELS = new Set(["PKCS7", "PKCS #7 SIGNED DATA", "CMS"]);
/** PEM labels holding one DER CertificateList (a CRL): OpenSSL writes "X509 CRL". */
const CRL_LABELS = new Set(["X509 CRL", "CRL"]);

/**
 * What one input holds: its certificates in input order, and its CRLs (in input order too, their
 * own `index`) when it holds any. An input with only CRLs is an empty list with `crls`, not an error.
 */
export type ParsedCertificates = CertRecord[] & { crls?: CrlRecord[] };

const OID_SIGNED_DATA = "1.2.840.113549.1.7.2";

/** Distinct non-certificate labels remembered for the error message, and the length kept of each. */
const MAX_LABELS_KEPT = 16;
const MAX_LABEL_LENGTH = 64;
/** Stands for the labels beyond MAX_LABELS_KEPT; no caller mistakes it for a key or CRL label. */
const MORE_LABELS = "…";

export interface PemBlock {
  label: string;
  /** Base64 body, whitespace included; undefined when the END line is missing. */
  body: string | undefined;
}

/**
 * A BEGIN or END line's marker. RFC 7468 labels are printable and hold no hyphen, so a match never
 * runs past the next "-" or line end: the whole scan is one linear pass, whatever the text.
 */
const MARKER = /-----(BEGIN|END) ([^\-\r\n]*)-----/g;

/** True when the text holds a PEM BEGIN line. */
function looksLikePem(text: string): boolean {
  MARKER.lastIndex = 0;
  for (let m = MARKER.exec(text); m; m = MARKER.exec(text)) if (m[1] === "BEGIN") return true;
  return false;
}

/**
 * Splits PEM text into blocks in one pass over its BEGIN and END markers. Text between blocks
 * (openssl's "subject=" lines, comments, a BOM) is ignored, and so is an END line whose label does
 * not match. A block ends at its END line; meeting another BEGIN line or the end of input first
 * means the END line is missing.
 */
export function scanPem(text: string): PemBlock[] {
  const blocks: PemBlock[] = [];
  let open: { label: string; bodyStart: number } | undefined;
  MARKER.lastIndex = 0;
  for (let m = MARKER.exec(text); m; m = MARKER.exec(text)) {
    const label = (m[2] as string).trim();
    if (m[1] === "BEGIN") {
      if (open) blocks.push({ label: open.label, body: undefined });
      open = { label, bodyStart: MARKER.lastIndex };
    } else if (open && open.label === label) {
      blocks.push({ label, body: text.slice(open.bodyStart, m.index) });
      open = undefined;
    }
  }
  if (open) blocks.push({ label: open.label, body: undefined });
  return blocks;
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

export interface ParseOptions {
  decode?: CertDecoder;
  /** More certificates than this is `too_many_certificates`; decoding stops there, so work stays bounded. */
  maxCertificates?: number;
}

/** Collects records up to the limit, so a bundle of a million certificates costs no more than the limit. */
class Records {
  readonly list: CertRecord[] = [];
  readonly crls: CrlRecord[] = [];
  readonly #max: number;
  readonly #decode: CertDecoder;

  constructor(options: ParseOptions) {
    this.#max = options.maxCertificates ?? Infinity;
    this.#decode = options.decode ?? decodeCertificate;
  }

  /** Decodes the certificate at `tlv`, failing the location with `what` when it does not decode. */
  add(buf: Uint8Array, tlv: Tlv, what: string): void {
    this.#room();
    try {
      this.list.push(this.#decode(buf, tlv));
    } catch (err) {
      throw new CertReadError("corrupt_certificate", `${what}: ${describe(err)}`, { cause: err });
    }
  }

  /** Decodes the certificate at `tlv`, or says false when it is not one. */
  tryAdd(buf: Uint8Array, tlv: Tlv): boolean {
    this.#room();
    try {
      this.list.push(this.#decode(buf, tlv));
      return true;
    } catch {
      return false;
    }
  }

  /** Decodes the CRL at `tlv`, failing the location with `what` when it does not decode. CRLs count toward the limit. */
  addCrl(buf: Uint8Array, tlv: Tlv, what: string): void {
    this.#room();
    try {
      this.crls.push(decodeCrl(buf, tlv));
    } catch (err) {
      throw new CertReadError("corrupt_certificate", `${what}: ${describe(err)}`, { cause: err });
    }
  }

  /** The certificates, with the CRLs attached when there are any. */
  result(): ParsedCertificates {
    const out: ParsedCertificates = this.list;
    if (this.crls.length > 0) out.crls = this.crls;
    return out;
  }

  #room(): void {
    if (this.list.length + this.crls.length >= this.#max) {
      throw new CertReadError("too_many_certificates", `more than ${this.#max} certificates (limits.maxCertificatesPerLocation)`);
    }
  }
}

/** DER certificates, one after another. Trailing bytes that do not form a further certificate are ignored, as OpenSSL does. */
function parseDer(buf: Uint8Array, records: Records): void {
  let first: Tlv;
  try {
    first = readTlv(buf, 0);
  } catch (err) {
    throw new CertReadError("corrupt_certificate", `DER certificate: ${describe(err)}`, { cause: err });
  }
  if (looksLikeCrl(buf, first)) records.addCrl(buf, first, "DER CRL");
  else records.add(buf, first, "DER certificate");
  let pos = first.end;
  while (pos < buf.length && buf[pos] === TAG.SEQUENCE) {
    let next: Tlv;
    try {
      next = readTlv(buf, pos);
    } catch {
      break;
    }
    if (looksLikeCrl(buf, next)) {
      try {
        records.addCrl(buf, next, "DER CRL");
      } catch {
        break;
      }
    } else if (!records.tryAdd(buf, next)) break;
    pos = next.end;
  }
}

/** Certificates of a PKCS#7 / CMS SignedData ContentInfo (certs-only .p7b/.p7c, or any SignedData). */
function parsePkcs7(buf: Uint8Array, what: string, records: Records): void {
  let certSet: Tlv | undefined;
  try {
    const info = expect(buf, 0, buf.length, TAG.SEQUENCE, "ContentInfo");
    const typeTlv = expect(buf, info.contentStart, info.contentEnd, TAG.OID, "ContentInfo contentType");
    if (decodeOid(buf, typeTlv) !== OID_SIGNED_DATA) {
      throw new CertReadError("no_certificate", `${what}: PKCS#7 content is not SignedData`);
    }
    const explicit = expect(buf, typeTlv.end, info.contentEnd, 0xa0, "ContentInfo content");
    const signed = expect(buf, explicit.contentStart, explicit.contentEnd, TAG.SEQUENCE, "SignedData");
    // version, digestAlgorithms, encapContentInfo, then [0] IMPLICIT certificates (optional).
    let p = signed.contentStart;
    for (let field = 0; p < signed.contentEnd && certSet === undefined; field++) {
      const part = readTlv(buf, p, signed.contentEnd);
      if (field >= 3 && part.tag === 0xa0) certSet = part;
      p = part.end;
    }
  } catch (err) {
    if (err instanceof CertReadError) throw err;
    throw new CertReadError("corrupt_certificate", `${what}: ${describe(err)}`, { cause: err });
  }
  const before = records.list.length;
  if (certSet) {
    let p = certSet.contentStart;
    for (let i = 0; p < certSet.contentEnd; i++) {
      let tlv: Tlv;
      try {
        tlv = readTlv(buf, p, certSet.contentEnd);
      } catch (err) {
        throw new CertReadError("corrupt_certificate", `${what} certificate ${i}: ${describe(err)}`, { cause: err });
      }
      // Other CertificateChoices (attribute certificates, [n]-tagged) carry no X.509 certificate.
      if (tlv.tag === TAG.SEQUENCE) records.add(buf, tlv, `${what} certificate ${i}`);
      p = tlv.end;
    }
  }
  if (records.list.length === before) throw new CertReadError("no_certificate", `${what}: PKCS#7 holds no certificate`);
}

function parsePem(text: string, onlyPkcs7: boolean, records: Records): void {
  const blocks = scanPem(text);
  if (blocks.length === 0) throw new CertReadError("not_pem_or_der", "no PEM block found");
  const labels = new Set<string>();
  let certBlocks = 0;
  blocks.forEach((block, index) => {
    const isCert = !onlyPkcs7 && CERT_LABELS.has(block.label);
    const isPkcs7 = PKCS7_LABELS.has(block.label);
    const isCrl = !onlyPkcs7 && CRL_LABELS.has(block.label);
    if (!isCert && !isPkcs7 && !isCrl) {
      // Keys, requests, parameters…: skipped without decoding, so key material is never touched.
      labels.add(labels.size < MAX_LABELS_KEPT ? block.label.slice(0, MAX_LABEL_LENGTH) : MORE_LABELS);
      return;
    }
    if (!isCrl) certBlocks++;
    const what = `PEM block ${index} (${block.label.slice(0, MAX_LABEL_LENGTH)})`;
    if (block.body === undefined) throw new CertReadError("corrupt_certificate", `${what}: no END line`);
    // RFC 1421 headers ("Proc-Type: …" and a blank line) are not part of certificate blocks: they fail here.
    const der = decodeBase64(block.body, false);
    if (!der) throw new CertReadError("bad_base64", `${what}: body is not valid base64`);
    if (der.length === 0) throw new CertReadError("corrupt_certificate", `${what}: empty body`);
    if (isPkcs7) {
      try {
        parsePkcs7(der, what, records);
      } catch (err) {
        // An empty PKCS#7 beside real certificates is not an error; alone it is reported below.
        if (!(err instanceof CertReadError && err.reason === "no_certificate")) throw err;
        labels.add(labels.size < MAX_LABELS_KEPT ? block.label : MORE_LABELS);
      }
      return;
    }
    let tlv: Tlv;
    try {
      tlv = readTlv(der, 0);
    } catch (err) {
      throw new CertReadError("corrupt_certificate", `${what}: ${describe(err)}`, { cause: err });
    }
    if (isCrl) records.addCrl(der, tlv, what);
    else records.add(der, tlv, what);
  });
  // A CRL alone is something to export, not a location without certificates.
  if (records.list.length === 0 && records.crls.length === 0) {
    const found = [...labels];
    const message = certBlocks > 0 ? "PKCS#7 holds no certificate" : `PEM without a certificate (found: ${found.join(", ")})`;
    throw new CertReadError("no_certificate", message, { pemLabels: found });
  }
}

function isBlank(bytes: Uint8Array): boolean {
  for (const b of bytes) if (b !== 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d) return false;
  return true;
}

/**
 * Reads every certificate and CRL in `bytes`: a PEM bundle (any number of CERTIFICATE / TRUSTED CERTIFICATE /
 * PKCS7 / CMS / X509 CRL blocks; other blocks such as keys and requests are skipped), DER certificate(s)
 * and CRL(s) or a DER PKCS#7. A CRL that does not decode is `corrupt_certificate`, as a certificate is. Throws CertReadError with reason not_pem_or_der, no_certificate (pemLabels filled),
 * corrupt_certificate, bad_base64 or too_many_certificates. Records come in input order, which is the
 * `index` label. Work is linear in the input: one pass over PEM markers, each DER element read a
 * bounded number of times, decoding stopped at `maxCertificates`.
 */
export function parseCertificates(bytes: Uint8Array, format: CertFormat = "auto", options: ParseOptions = {}): ParsedCertificates {
  if (bytes.length === 0 || isBlank(bytes)) throw new CertReadError("not_pem_or_der", "empty input");
  const records = new Records(options);
  // The JKS magic (0xFEEDFEED) starts no PEM text and no DER element, so `auto` tells a keystore
  // apart. Without a passphrase, its certificates are read without the integrity check (jks.ts).
  if (format === "auto" && looksLikeJks(bytes)) {
    for (const cert of readJks(bytes, options.maxCertificates).certificates) records.add(bytes, readTlv(bytes, cert.start, cert.end), cert.what);
    return records.list;
  }
  const der = looksLikeDer(bytes);
  if (format === "der") {
    if (!der) throw new CertReadError("not_pem_or_der", "not a DER certificate");
    parseDer(bytes, records);
    return records.result();
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
    if (contentType !== undefined || format === "pkcs7") parsePkcs7(bytes, "PKCS#7", records);
    else parseDer(bytes, records);
    return records.result();
  }
  // PEM never holds bytes above 0x7f except in surrounding text; latin1 keeps offsets byte-exact.
  const text = asBuffer(bytes).toString("latin1");
  if (!looksLikePem(text)) {
    throw new CertReadError("not_pem_or_der", format === "auto" ? "neither PEM nor DER" : `not ${format === "pem" ? "PEM" : "PKCS#7"}`);
  }
  parsePem(text, format === "pkcs7", records);
  return records.result();
}
