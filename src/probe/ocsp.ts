/**
 * The OCSP response a TLS server staples (RFC 6066 status_request, RFC 6960 OCSPResponse), read for
 * the leaf it presented: pure functions on DER, on the project's own bounded reader (src/certs/der.ts).
 *
 * What is read, and nothing more:
 *
 *     OCSPResponse      ::= SEQUENCE { responseStatus ENUMERATED, responseBytes [0] EXPLICIT ResponseBytes OPTIONAL }
 *     ResponseBytes     ::= SEQUENCE { responseType OID (id-pkix-ocsp-basic), response OCTET STRING }
 *     BasicOCSPResponse ::= SEQUENCE { tbsResponseData ResponseData, signatureAlgorithm, signature, certs [0] OPTIONAL }
 *     ResponseData      ::= SEQUENCE { version [0] OPTIONAL, responderID, producedAt, responses SEQUENCE OF SingleResponse, … }
 *     SingleResponse    ::= SEQUENCE { certID CertID, certStatus, thisUpdate, nextUpdate [0] EXPLICIT OPTIONAL, … }
 *     CertID            ::= SEQUENCE { hashAlgorithm, issuerNameHash, issuerKeyHash, serialNumber INTEGER }
 *     certStatus        ::= good [0] IMPLICIT NULL | revoked [1] IMPLICIT SEQUENCE { revocationTime, … } | unknown [2] IMPLICIT NULL
 *
 * The SingleResponse for the leaf is the one whose serial number is the leaf's; the issuer hashes
 * are not compared. The response's signature is not verified: this reports what the server staples,
 * as a client that checks staples would see it before verifying.
 *
 * Nothing here throws on what a server sent: bytes that are not a successful basic OCSP response
 * with a SingleResponse for the leaf are the status `malformed`, with the reason in `detail`.
 *
 * Why not @peculiar/asn1-ocsp: it decodes whole schemas through asn1js and decorator metadata, a new
 * dependency and a heavier module for the prober to load, to read five fields; and its failures are
 * its own exceptions. der.ts already bounds every read, decodes the times as certificates do, and is
 * what the rest of the exporter trusts with hostile bytes.
 */
import { DerError, TAG, children, decodeOid, decodeTime, expect, readTlv, type Tlv } from "../certs/der.js";
import type { OcspFacts, OcspStatus } from "../model.js";

/** What a staple says of the leaf: {@link OcspFacts} less `stapled`, the status always set. */
export type OcspStaple = Omit<OcspFacts, "stapled"> & { status: OcspStatus };

/** Largest stapled response read; real ones are 0.5–4 KiB (a few more with the responder's certificate). */
export const MAX_OCSP_RESPONSE_BYTES = 64 * 1024;
/** Most SingleResponses looked at; a staple is about one certificate, a CA's batch about a few dozen. */
const MAX_SINGLE_RESPONSES = 256;

const ID_PKIX_OCSP_BASIC = "1.3.6.1.5.5.7.48.1.1";
const ENUMERATED = 0x0a;
const RESPONSE_STATUS = ["successful", "malformedRequest", "internalError", "tryLater", "4 (not used)", "sigRequired", "unauthorized"];

/** The content bytes of an INTEGER without leading zero octets, as a key to compare serials by. */
function integerKey(buf: Uint8Array, tlv: Tlv): string {
  let start = tlv.contentStart;
  while (start < tlv.contentEnd - 1 && buf[start] === 0) start++;
  return Buffer.from(buf.buffer, buf.byteOffset + start, tlv.contentEnd - start).toString("hex");
}

/** The serial number of a DER certificate, as {@link parseOcspResponse} compares it; undefined when it does not decode. */
export function certificateSerial(der: Uint8Array): string | undefined {
  try {
    const cert = expect(der, 0, der.length, TAG.SEQUENCE, "certificate");
    const tbs = expect(der, cert.contentStart, cert.contentEnd, TAG.SEQUENCE, "tbsCertificate");
    let field = readTlv(der, tbs.contentStart, tbs.contentEnd);
    if (field.tag === 0xa0) field = readTlv(der, field.end, tbs.contentEnd);
    return field.tag === TAG.INTEGER && field.contentEnd > field.contentStart ? integerKey(der, field) : undefined;
  } catch {
    return undefined;
  }
}

function malformed(detail: string): OcspStaple {
  return { status: "malformed", detail };
}

/**
 * The leaf's status from a stapled DER OCSPResponse. `leafSerial` is {@link certificateSerial} of the
 * presented leaf; without it no SingleResponse can match. Never throws.
 */
export function parseOcspResponse(der: Uint8Array, leafSerial: string | undefined): OcspStaple {
  if (der.length === 0) return malformed("empty response");
  if (der.length > MAX_OCSP_RESPONSE_BYTES) return malformed(`response of ${der.length} bytes, over ${MAX_OCSP_RESPONSE_BYTES}`);
  try {
    return readResponse(der, leafSerial);
  } catch (err) {
    return malformed(err instanceof DerError ? err.message : "not an OCSP response");
  }
}

function readResponse(buf: Uint8Array, leafSerial: string | undefined): OcspStaple {
  const response = expect(buf, 0, buf.length, TAG.SEQUENCE, "OCSPResponse");
  if (response.end !== buf.length) return malformed("trailing bytes after the OCSPResponse");
  const status = expect(buf, response.contentStart, response.contentEnd, ENUMERATED, "responseStatus");
  const code = status.contentEnd - status.contentStart === 1 ? (buf[status.contentStart] as number) : -1;
  if (code !== 0) return malformed(`responseStatus ${RESPONSE_STATUS[code] ?? "out of range"}`);
  if (status.end >= response.contentEnd) return malformed("a successful response without responseBytes");
  const explicit = expect(buf, status.end, response.contentEnd, 0xa0, "responseBytes");
  const bytes = expect(buf, explicit.contentStart, explicit.contentEnd, TAG.SEQUENCE, "ResponseBytes");
  const type = expect(buf, bytes.contentStart, bytes.contentEnd, TAG.OID, "responseType");
  const typeOid = decodeOid(buf, type);
  if (typeOid !== ID_PKIX_OCSP_BASIC) return malformed(`responseType ${typeOid}, not id-pkix-ocsp-basic`);
  const octets = expect(buf, type.end, bytes.contentEnd, TAG.OCTET_STRING, "response");
  const basic = expect(buf, octets.contentStart, octets.contentEnd, TAG.SEQUENCE, "BasicOCSPResponse");
  const data = expect(buf, basic.contentStart, basic.contentEnd, TAG.SEQUENCE, "tbsResponseData");

  let field = readTlv(buf, data.contentStart, data.contentEnd);
  if (field.tag === 0xa0) field = readTlv(buf, field.end, data.contentEnd); // [0] EXPLICIT version
  if (field.tag !== 0xa1 && field.tag !== 0xa2) throw new DerError("responderID: neither byName nor byKey");
  const producedAt = expect(buf, field.end, data.contentEnd, TAG.GENERALIZED_TIME, "producedAt");
  const responses = expect(buf, producedAt.end, data.contentEnd, TAG.SEQUENCE, "responses");

  let p = responses.contentStart;
  for (let n = 0; p < responses.contentEnd; n++) {
    if (n >= MAX_SINGLE_RESPONSES) return malformed(`no SingleResponse for the leaf among the first ${MAX_SINGLE_RESPONSES}`);
    const single = expect(buf, p, responses.contentEnd, TAG.SEQUENCE, "SingleResponse");
    p = single.end;
    const certId = expect(buf, single.contentStart, single.contentEnd, TAG.SEQUENCE, "certID");
    const idFields = children(buf, certId);
    const serial = idFields[3];
    if (idFields.length !== 4 || serial?.tag !== TAG.INTEGER || serial.contentEnd === serial.contentStart) throw new DerError("certID: malformed");
    if (leafSerial === undefined || integerKey(buf, serial) !== leafSerial) continue;
    return readSingle(buf, single, certId);
  }
  return malformed(leafSerial === undefined ? "no leaf to match" : "no SingleResponse for the leaf's serial number");
}

/** The status and times of the leaf's SingleResponse. */
function readSingle(buf: Uint8Array, single: Tlv, certId: Tlv): OcspStaple {
  const certStatus = readTlv(buf, certId.end, single.contentEnd);
  const thisUpdateTlv = expect(buf, certStatus.end, single.contentEnd, TAG.GENERALIZED_TIME, "thisUpdate");
  const out: OcspStaple = { status: "good", thisUpdate: decodeTime(buf, thisUpdateTlv) };
  if (thisUpdateTlv.end < single.contentEnd) {
    const next = readTlv(buf, thisUpdateTlv.end, single.contentEnd);
    if (next.tag === 0xa0) out.nextUpdate = decodeTime(buf, expect(buf, next.contentStart, next.contentEnd, TAG.GENERALIZED_TIME, "nextUpdate"));
  }
  if (certStatus.tag === 0x80) {
    out.status = "good";
  } else if (certStatus.tag === 0xa1) {
    out.status = "revoked";
    out.revocationTime = decodeTime(buf, expect(buf, certStatus.contentStart, certStatus.contentEnd, TAG.GENERALIZED_TIME, "revocationTime"));
  } else if (certStatus.tag === 0x82) {
    out.status = "unknown";
  } else {
    throw new DerError(`certStatus: unexpected ASN.1 tag 0x${certStatus.tag.toString(16)}`);
  }
  return out;
}
