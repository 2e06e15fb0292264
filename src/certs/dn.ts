/**
 * Distinguished names and directory strings: decodes every ASN.1 string type a certificate may
 * carry into a well-formed JS string (invalid sequences become U+FFFD, nothing throws), and renders
 * names in RFC 4514 form.
 */
import { DerError, TAG, type Tlv, asBuffer, children, decodeOid, hex, readTlv } from "./der.js";

const utf8 = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });
const REPLACEMENT = 0xfffd;

function ascii(buf: Uint8Array, s: number, e: number): string | undefined {
  for (let i = s; i < e; i++) if (buf[i]! >= 0x80) return undefined;
  return asBuffer(buf).toString("latin1", s, e);
}

function fromCodeUnits(units: number[]): string {
  let out = "";
  for (let i = 0; i < units.length; i += 4096) out += String.fromCharCode(...units.slice(i, i + 4096));
  return out;
}

/** UTF-16BE with lone surrogates and a dangling odd byte replaced. */
function bmp(buf: Uint8Array, s: number, e: number): string {
  const units: number[] = [];
  let i = s;
  for (; i + 1 < e; i += 2) units.push((buf[i]! << 8) | buf[i + 1]!);
  for (let k = 0; k < units.length; k++) {
    const u = units[k]!;
    if (u >= 0xd800 && u <= 0xdbff) {
      const next = units[k + 1];
      if (next !== undefined && next >= 0xdc00 && next <= 0xdfff) k++;
      else units[k] = REPLACEMENT;
    } else if (u >= 0xdc00 && u <= 0xdfff) {
      units[k] = REPLACEMENT;
    }
  }
  if (i < e) units.push(REPLACEMENT);
  return fromCodeUnits(units);
}

/** UTF-32BE (UniversalString) with invalid code points replaced. */
function universal(buf: Uint8Array, s: number, e: number): string {
  let out = "";
  let i = s;
  for (; i + 3 < e; i += 4) {
    const cp = ((buf[i]! << 24) >>> 0) + (buf[i + 1]! << 16) + (buf[i + 2]! << 8) + buf[i + 3]!;
    out += String.fromCodePoint(cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ? REPLACEMENT : cp);
  }
  if (i < e) out += String.fromCharCode(REPLACEMENT);
  return out;
}

function latin1(buf: Uint8Array, s: number, e: number): string {
  return asBuffer(buf).toString("latin1", s, e);
}

const STRING_TAGS = new Set<number>([
  TAG.UTF8_STRING, TAG.NUMERIC_STRING, TAG.PRINTABLE_STRING, TAG.TELETEX_STRING, TAG.VIDEOTEX_STRING, TAG.IA5_STRING,
  TAG.GRAPHIC_STRING, TAG.VISIBLE_STRING, TAG.GENERAL_STRING, TAG.UNIVERSAL_STRING, TAG.BMP_STRING,
]);

/** True when the element is one of the ASN.1 character string types. */
export function isStringTag(tag: number): boolean {
  return STRING_TAGS.has(tag);
}

/**
 * Decodes any ASN.1 character string into a well-formed JS string.
 * - UTF8String: UTF-8, invalid sequences replaced with U+FFFD.
 * - Printable/IA5/Visible/Numeric/Graphic/General: ASCII; bytes above 0x7f (which these types do
 *   not allow, but some issuers put UTF-8 there) are decoded as UTF-8 with replacement.
 * - TeletexString/VideotexString: ISO-8859-1, as OpenSSL reads T.61.
 * - BMPString: UTF-16BE; UniversalString: UTF-32BE; both with invalid units replaced.
 */
export function decodeString(buf: Uint8Array, tlv: Tlv): string {
  const { contentStart: s, contentEnd: e } = tlv;
  switch (tlv.tag) {
    case TAG.BMP_STRING:
      return bmp(buf, s, e);
    case TAG.UNIVERSAL_STRING:
      return universal(buf, s, e);
    case TAG.TELETEX_STRING:
    case TAG.VIDEOTEX_STRING:
      // ISO-8859-1, byte for byte, as OpenSSL, node:crypto and @peculiar/x509 read it, even when the
      // bytes happen to be valid UTF-8 (test/parser-differential.test.ts).
      return latin1(buf, s, e);
    default:
      return ascii(buf, s, e) ?? utf8.decode(buf.subarray(s, e));
  }
}

const ATTRIBUTE_NAMES: Record<string, string> = {
  "2.5.4.3": "CN",
  "2.5.4.4": "SN",
  "2.5.4.5": "serialNumber",
  "2.5.4.6": "C",
  "2.5.4.7": "L",
  "2.5.4.8": "ST",
  "2.5.4.9": "STREET",
  "2.5.4.10": "O",
  "2.5.4.11": "OU",
  "2.5.4.12": "title",
  "2.5.4.15": "businessCategory",
  "2.5.4.17": "postalCode",
  "2.5.4.42": "GN",
  "2.5.4.43": "initials",
  "2.5.4.44": "generationQualifier",
  "2.5.4.46": "dnQualifier",
  "2.5.4.65": "pseudonym",
  "2.5.4.97": "organizationIdentifier",
  "0.9.2342.19200300.100.1.1": "UID",
  "0.9.2342.19200300.100.1.25": "DC",
  "1.2.840.113549.1.9.1": "emailAddress",
  "1.3.6.1.4.1.311.60.2.1.1": "jurisdictionL",
  "1.3.6.1.4.1.311.60.2.1.2": "jurisdictionST",
  "1.3.6.1.4.1.311.60.2.1.3": "jurisdictionC",
};

const CN_OID = "2.5.4.3";

/** RFC 4514 §2.4 escaping of an attribute value. */
const NEEDS_RFC4514_ESCAPE = /["+,;<>\\\0]|^[ #]| $/;

export function escapeRfc4514(value: string): string {
  if (!NEEDS_RFC4514_ESCAPE.test(value)) return value;
  let out = "";
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (c === '"' || c === "+" || c === "," || c === ";" || c === "<" || c === ">" || c === "\\") out += "\\" + c;
    else if (c === "\0") out += "\\00";
    else if ((c === " " || c === "#") && i === 0) out += "\\" + c;
    else if (c === " " && i === value.length - 1) out += "\\ ";
    else out += c;
  }
  return out;
}

export interface DecodedName {
  /** RFC 4514: RDNs in reverse order of the encoding, "," between RDNs, "+" inside multi-valued ones. */
  dn: string;
  /** The first commonName in encoding order, unescaped, or "". */
  cn: string;
}

/**
 * RDNs, and attributes in one RDN, decoded per name. Real names have a dozen at most; past these
 * the rest are counted, not decoded, so a crafted name of a million attributes costs little.
 */
const MAX_RDNS = 64;
const MAX_RDN_ATTRIBUTES = 16;

/**
 * Renders an X.501 Name. Well-known attribute types get their short names (the RFC 4514 set plus
 * the ones OpenSSL names, e.g. emailAddress); others are dotted OIDs. Values that are not character
 * strings, and every value of a type written as a dotted OID, are written as "#" and the hex of
 * their DER encoding, as RFC 4514 prescribes.
 */
export function decodeName(buf: Uint8Array, name: Tlv): DecodedName {
  if (name.tag !== TAG.SEQUENCE) throw new DerError("name: not a SEQUENCE");
  const rdns: string[] = [];
  let cn: string | undefined;
  let skipped = 0;
  for (let p = name.contentStart; p < name.contentEnd; ) {
    const rdn = readTlv(buf, p, name.contentEnd);
    p = rdn.end;
    if (rdn.tag !== TAG.SET) throw new DerError("name: RDN is not a SET");
    if (rdns.length >= MAX_RDNS) {
      skipped++;
      continue;
    }
    const parts: string[] = [];
    for (const atv of children(buf, rdn)) {
      if (parts.length >= MAX_RDN_ATTRIBUTES) {
        parts.push("…");
        break;
      }
      if (atv.tag !== TAG.SEQUENCE) throw new DerError("name: attribute is not a SEQUENCE");
      const typeTlv = readTlv(buf, atv.contentStart, atv.contentEnd);
      if (typeTlv.tag !== TAG.OID) throw new DerError("name: attribute type is not an OID");
      const valueTlv = readTlv(buf, typeTlv.end, atv.contentEnd);
      const oid = decodeOid(buf, typeTlv);
      const typeName = ATTRIBUTE_NAMES[oid];
      let rendered: string;
      // RFC 4514 §2.4: a type written as a dotted OID has its value written as "#" and the hex of its
      // BER, whatever its syntax; OpenSSL's RFC 2253 output does the same.
      if (typeName !== undefined && isStringTag(valueTlv.tag)) {
        const value = decodeString(buf, valueTlv);
        if (oid === CN_OID && cn === undefined) cn = value;
        rendered = escapeRfc4514(value);
      } else {
        rendered = "#" + hex(buf, valueTlv.start, valueTlv.end);
      }
      parts.push(`${typeName ?? oid}=${rendered}`);
    }
    rdns.push(parts.join("+"));
  }
  // RFC 4514 writes the last RDN first, so the ones not decoded would have led the string.
  if (skipped > 0) rdns.push(`…${skipped} more`);
  return { dn: rdns.reverse().join(","), cn: cn ?? "" };
}
