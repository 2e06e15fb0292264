/**
 * A minimal, allocation-light ASN.1 DER (and BER indefinite-length) reader: just enough to walk
 * X.509 certificates and PKCS#7 SignedData. Every read is bounds-checked and failures throw
 * `DerError` whose message names the structure, never the bytes.
 */

export class DerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DerError";
  }
}

/** One tag-length-value element. Offsets index the buffer it was read from. */
export interface Tlv {
  /** The identifier octet (class, constructed bit and tag number when < 31). */
  tag: number;
  /** First byte of the element (its identifier octet). */
  start: number;
  /** First content byte. */
  contentStart: number;
  /** One past the last content byte. */
  contentEnd: number;
  /** One past the element, including an end-of-contents marker for indefinite lengths. */
  end: number;
}

export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  NUMERIC_STRING: 0x12,
  PRINTABLE_STRING: 0x13,
  TELETEX_STRING: 0x14,
  VIDEOTEX_STRING: 0x15,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  GRAPHIC_STRING: 0x19,
  VISIBLE_STRING: 0x1a,
  GENERAL_STRING: 0x1b,
  UNIVERSAL_STRING: 0x1c,
  BMP_STRING: 0x1e,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

/**
 * How deeply indefinite-length elements may nest. Reading one walks its children to find the end,
 * and every enclosing indefinite element walks them again, so this bounds the work per byte. Real
 * BER (PKCS#7 from Java or Windows) nests four or five deep.
 */
const MAX_INDEFINITE_NESTING = 12;

/** Reads the element starting at `pos`, which must end at or before `limit`. */
export function readTlv(buf: Uint8Array, pos: number, limit: number = buf.length, nesting = 0): Tlv {
  if (nesting > MAX_INDEFINITE_NESTING) throw new DerError("indefinite-length ASN.1 elements nested too deep");
  if (pos + 2 > limit) throw new DerError("truncated ASN.1 element header");
  const start = pos;
  const tag = buf[pos++]!;
  if ((tag & 0x1f) === 0x1f) {
    // High tag numbers: skip the base-128 tag number (none appear in certificates, but stay correct).
    let n = 0;
    while (pos < limit && (buf[pos]! & 0x80) !== 0) {
      pos++;
      if (++n > 4) throw new DerError("ASN.1 tag number too long");
    }
    pos++;
    if (pos >= limit) throw new DerError("truncated ASN.1 element header");
  }
  const first = buf[pos++]!;
  if (first < 0x80) {
    const contentEnd = pos + first;
    if (contentEnd > limit) throw new DerError("truncated ASN.1 element");
    return { tag, start, contentStart: pos, contentEnd, end: contentEnd };
  }
  if (first === 0x80) {
    if ((tag & 0x20) === 0) throw new DerError("indefinite length on a primitive ASN.1 element");
    // BER indefinite length: children until an end-of-contents marker (00 00).
    let p = pos;
    for (;;) {
      if (p + 2 > limit) throw new DerError("truncated indefinite-length ASN.1 element");
      if (buf[p] === 0 && buf[p + 1] === 0) return { tag, start, contentStart: pos, contentEnd: p, end: p + 2 };
      p = readTlv(buf, p, limit, nesting + 1).end;
    }
  }
  const octets = first & 0x7f;
  if (octets > 4) throw new DerError("ASN.1 length too large");
  if (pos + octets > limit) throw new DerError("truncated ASN.1 length");
  let length = 0;
  for (let i = 0; i < octets; i++) length = length * 256 + buf[pos++]!;
  const contentEnd = pos + length;
  if (contentEnd > limit) throw new DerError("truncated ASN.1 element");
  return { tag, start, contentStart: pos, contentEnd, end: contentEnd };
}

/** Reads an element and checks its tag. */
export function expect(buf: Uint8Array, pos: number, limit: number, tag: number, what: string): Tlv {
  const tlv = readTlv(buf, pos, limit);
  if (tlv.tag !== tag) throw new DerError(`${what}: unexpected ASN.1 tag 0x${tlv.tag.toString(16)}`);
  return tlv;
}

/** The children of a constructed element. */
export function children(buf: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  let p = parent.contentStart;
  while (p < parent.contentEnd) {
    const child = readTlv(buf, p, parent.contentEnd);
    out.push(child);
    p = child.end;
  }
  return out;
}

const oidCache = new Map<string, string>();

/**
 * Longest OBJECT IDENTIFIER content read. Real ones are under 40 bytes (UUID-based 2.25.… about 20);
 * the bound keeps a crafted one from costing more than a few hundred digits of output.
 */
const MAX_OID_BYTES = 128;
/** One arc of up to 7 base-128 digits (49 bits) is exact in a double; longer arcs (UUID OIDs) use BigInt. */
const SAFE_ARC_DIGITS = 7;
/** Longest arc: 20 digits are 140 bits, room for a 128-bit UUID arc. */
const MAX_ARC_DIGITS = 20;

/** One arc's value from its base-128 digits, `s` to `e` (exclusive). */
function arcValue(buf: Uint8Array, s: number, e: number): bigint | number {
  if (e - s <= SAFE_ARC_DIGITS) {
    let value = 0;
    for (let i = s; i < e; i++) value = value * 128 + (buf[i]! & 0x7f);
    return value;
  }
  let value = 0n;
  for (let i = s; i < e; i++) value = (value << 7n) | BigInt(buf[i]! & 0x7f);
  return value;
}

/** Dotted-decimal form of an OBJECT IDENTIFIER's content. */
export function decodeOid(buf: Uint8Array, tlv: Tlv): string {
  const { contentStart: s, contentEnd: e } = tlv;
  if (e <= s) throw new DerError("empty OBJECT IDENTIFIER");
  if (e - s > MAX_OID_BYTES) throw new DerError("OBJECT IDENTIFIER too long");
  // Cache on the raw bytes (short): the same few dozen OIDs recur in every certificate.
  let key = "";
  if (e - s <= 16) {
    key = asBuffer(buf).toString("latin1", s, e);
    const hit = oidCache.get(key);
    if (hit !== undefined) return hit;
  }
  const parts: string[] = [];
  let arcStart = s;
  for (let i = s; i < e; i++) {
    if ((buf[i]! & 0x80) !== 0) {
      if (i === e - 1) throw new DerError("truncated OBJECT IDENTIFIER");
      if (i - arcStart + 1 >= MAX_ARC_DIGITS) throw new DerError("OBJECT IDENTIFIER arc too large");
      continue;
    }
    const value = arcValue(buf, arcStart, i + 1);
    if (arcStart === s) {
      // The first arc packs two: 40 * first + second, with first at most 2.
      const first = value < 40 ? 0 : value < 80 ? 1 : 2;
      parts.push(String(first), typeof value === "bigint" ? String(value - BigInt(first * 40)) : String(value - first * 40));
    } else {
      parts.push(String(value));
    }
    arcStart = i + 1;
  }
  const oid = parts.join(".");
  if (key && oidCache.size < 1024) oidCache.set(key, oid);
  return oid;
}

/**
 * `buf` as a Buffer (the same memory), for Node's native decoders. Strings decoded natively are flat;
 * strings built by appending are ropes, which held in records cost a heap object per append.
 */
export function asBuffer(buf: Uint8Array): Buffer {
  return Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** Lowercase hex of a byte range. */
export function hex(buf: Uint8Array, start: number, end: number): string {
  return asBuffer(buf).toString("hex", start, end);
}

function digits(buf: Uint8Array, at: number, n: number): number {
  let v = 0;
  for (let i = 0; i < n; i++) {
    const c = buf[at + i]! - 0x30;
    if (c < 0 || c > 9) throw new DerError("malformed time value");
    v = v * 10 + c;
  }
  return v;
}

/**
 * UTCTime or GeneralizedTime as Unix seconds. Accepts the DER forms (YYMMDDHHMMSSZ and
 * YYYYMMDDHHMMSSZ) plus the lenient variants seen in old certificates: missing seconds,
 * fractional seconds (dropped) and +hhmm/-hhmm offsets. UTCTime years 50-99 are 19xx (RFC 5280).
 */
export function decodeTime(buf: Uint8Array, tlv: Tlv): number {
  const s = tlv.contentStart;
  const e = tlv.contentEnd;
  let p = s;
  let year: number;
  if (tlv.tag === TAG.UTC_TIME) {
    if (e - s < 10) throw new DerError("malformed UTCTime");
    const yy = digits(buf, p, 2);
    year = yy < 50 ? 2000 + yy : 1900 + yy;
    p += 2;
  } else if (tlv.tag === TAG.GENERALIZED_TIME) {
    if (e - s < 12) throw new DerError("malformed GeneralizedTime");
    year = digits(buf, p, 4);
    p += 4;
  } else {
    throw new DerError(`validity: unexpected ASN.1 tag 0x${tlv.tag.toString(16)}`);
  }
  const month = digits(buf, p, 2);
  const day = digits(buf, p + 2, 2);
  const hour = digits(buf, p + 4, 2);
  const minute = digits(buf, p + 6, 2);
  p += 8;
  let second = 0;
  if (p + 2 <= e && buf[p]! >= 0x30 && buf[p]! <= 0x39) {
    second = digits(buf, p, 2);
    p += 2;
  }
  if (p < e && (buf[p] === 0x2e || buf[p] === 0x2c)) {
    p++;
    while (p < e && buf[p]! >= 0x30 && buf[p]! <= 0x39) p++;
  }
  let offset = 0;
  if (p < e && buf[p] === 0x5a) {
    p++;
  } else if (p + 5 <= e && (buf[p] === 0x2b || buf[p] === 0x2d)) {
    const sign = buf[p] === 0x2b ? 1 : -1;
    offset = sign * (digits(buf, p + 1, 2) * 3600 + digits(buf, p + 3, 2) * 60);
    p += 5;
  } else if (p !== e) {
    throw new DerError("malformed time zone");
  }
  if (p !== e) throw new DerError("trailing bytes in time value");
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 24 || minute > 59 || second > 60) {
    throw new DerError("time value out of range");
  }
  // Date.UTC maps years 0-99 to 1900-1999; shift by 400 years (exactly 146097 days) to avoid that.
  const shift = year < 100 ? 400 : 0;
  const ms = Date.UTC(year + shift, month - 1, day, hour, minute, second) - shift * 146_097 * 86_400_000;
  return ms / 1000 - offset;
}
