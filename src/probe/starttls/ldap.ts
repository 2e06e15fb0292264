/**
 * LDAP StartTLS (RFC 4511 4.14): an ExtendedRequest named 1.3.6.1.4.1.1466.20037, answered by an
 * ExtendedResponse with resultCode 0. The request is written out by hand; the answer is read as one
 * BER element (tag, a length of at most MAX_MESSAGE_BYTES, then exactly that many bytes) and only
 * the fields needed are decoded, every length checked against what encloses it.
 */
import { quote, type StartTlsExchange, type StartTlsReader } from "./reader.js";

const STARTTLS_OID = "1.3.6.1.4.1.1466.20037";

/** A StartTLS response is a few dozen bytes; a diagnostic message may add some. */
const MAX_MESSAGE_BYTES = 16 * 1024;

const MESSAGE_ID = 1;
const TAG_SEQUENCE = 0x30;
const TAG_INTEGER = 0x02;
const TAG_ENUMERATED = 0x0a;
const TAG_OCTET_STRING = 0x04;
/** [APPLICATION 23] ExtendedRequest and [APPLICATION 24] ExtendedResponse, both constructed. */
const TAG_EXTENDED_REQUEST = 0x77;
const TAG_EXTENDED_RESPONSE = 0x78;
/** [0] requestName, primitive. */
const TAG_REQUEST_NAME = 0x80;

const RESULT_NAMES: Record<number, string> = {
  1: "operationsError",
  2: "protocolError",
  12: "unavailableCriticalExtension",
  51: "busy",
  52: "unavailable",
  53: "unwillingToPerform",
  80: "other",
};

/** One BER element with a short-form length: every part of the request is under 128 bytes. */
function element(tag: number, content: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag, content.length]), content]);
}

/** LDAPMessage { messageID 1, ExtendedRequest { requestName StartTLS } }. */
const REQUEST = element(
  TAG_SEQUENCE,
  Buffer.concat([element(TAG_INTEGER, Buffer.from([MESSAGE_ID])), element(TAG_EXTENDED_REQUEST, element(TAG_REQUEST_NAME, Buffer.from(STARTTLS_OID, "latin1")))]),
);

interface Element {
  tag: number;
  content: Buffer;
  /** Offset of the next element in the enclosing content. */
  next: number;
}

/** The element at `offset` of `data`, or a starttls_error when it runs past `data`. */
function readElement(reader: StartTlsReader, data: Buffer, offset: number, what: string): Element {
  const bad = () => reader.error(`the server's response is not valid BER (${what})`);
  if (offset + 2 > data.length) throw bad();
  const tag = data[offset] as number;
  let length = data[offset + 1] as number;
  let start = offset + 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    if (count < 1 || count > 4 || start + count > data.length) throw bad();
    length = data.readUIntBE(start, count);
    start += count;
  }
  if (start + length > data.length) throw bad();
  return { tag, content: data.subarray(start, start + length), next: start + length };
}

/** A non-negative INTEGER or ENUMERATED of at most 4 bytes. */
function smallInteger(reader: StartTlsReader, content: Buffer, what: string): number {
  if (content.length < 1 || content.length > 4 || (content[0] as number) & 0x80) throw reader.error(`the server's response is not valid BER (${what})`);
  return content.readUIntBE(0, content.length);
}

/** Reads one whole LDAPMessage: its tag and length first, then exactly its content. */
async function readMessage(reader: StartTlsReader): Promise<Buffer> {
  const [tag, first] = await reader.bytes(2);
  if (tag !== TAG_SEQUENCE) throw reader.error(`not an LDAP message: it starts with byte 0x${(tag ?? 0).toString(16).padStart(2, "0")}`);
  let length = first as number;
  if (length & 0x80) {
    const count = length & 0x7f;
    if (count < 1 || count > 4) throw reader.error("not an LDAP message: a length of an unsupported form");
    length = (await reader.bytes(count)).readUIntBE(0, count);
  }
  if (length > MAX_MESSAGE_BYTES) throw reader.error(`the server announced a message of ${length} bytes, more than ${MAX_MESSAGE_BYTES}`);
  return reader.bytes(length);
}

export const ldap: StartTlsExchange = async (reader) => {
  reader.write(REQUEST);
  const message = await readMessage(reader);
  const id = readElement(reader, message, 0, "messageID");
  if (id.tag !== TAG_INTEGER) throw reader.error("the server's response has no messageID");
  const messageId = smallInteger(reader, id.content, "messageID");
  const op = readElement(reader, message, id.next, "protocolOp");
  if (op.tag !== TAG_EXTENDED_RESPONSE) throw reader.error(`the server answered with protocol operation 0x${op.tag.toString(16)}, not an ExtendedResponse`);
  const result = readElement(reader, op.content, 0, "resultCode");
  if (result.tag !== TAG_ENUMERATED) throw reader.error("the server's ExtendedResponse has no resultCode");
  const code = smallInteger(reader, result.content, "resultCode");
  const matched = readElement(reader, op.content, result.next, "matchedDN");
  const diagnostic = matched.tag === TAG_OCTET_STRING ? readElement(reader, op.content, matched.next, "diagnosticMessage") : undefined;
  const text = diagnostic?.tag === TAG_OCTET_STRING && diagnostic.content.length > 0 ? ` ${quote(diagnostic.content.toString("utf8"))}` : "";
  // Message ID 0 is an unsolicited notification, such as the server's notice of disconnection.
  if (messageId === 0) throw reader.error(`the server sent an unsolicited notification (resultCode ${code})${text}`);
  if (messageId !== MESSAGE_ID) throw reader.error(`the server answered message ${messageId}, not ${MESSAGE_ID}`);
  if (code !== 0) throw reader.error(`the server refused StartTLS: resultCode ${code}${RESULT_NAMES[code] ? ` (${RESULT_NAMES[code]})` : ""}${text}`);
};
