/**
 * MySQL and MariaDB TLS (the client/server protocol's "SSL handshake"): the server speaks first with
 * its Handshake v10 packet, whose capability flags must include CLIENT_SSL; the client answers with
 * the SSLRequest packet (the first 32 bytes of a HandshakeResponse41: capabilities with CLIENT_SSL,
 * maximum packet size, character set, 23 zero bytes) and starts TLS at once. No credentials are sent.
 * Packets are a 3-byte little-endian payload length and a sequence number; a length over
 * MAX_PACKET_BYTES is refused before anything more is read.
 */
import { quote, type StartTlsExchange, type StartTlsReader } from "./reader.js";

/** A handshake packet is about a hundred bytes: its one string is the server's version. */
const MAX_PACKET_BYTES = 8 * 1024;

const CLIENT_LONG_PASSWORD = 0x1;
const CLIENT_PROTOCOL_41 = 0x200;
const CLIENT_SSL = 0x800;
const CLIENT_SECURE_CONNECTION = 0x8000;
/** utf8_general_ci, when the server names no character set of its own. */
const DEFAULT_CHARSET = 33;
const MAX_CLIENT_PACKET = 16 * 1024 * 1024;

interface Packet {
  sequence: number;
  payload: Buffer;
}

async function readPacket(reader: StartTlsReader): Promise<Packet> {
  const header = await reader.bytes(4);
  const length = header.readUIntLE(0, 3);
  if (length > MAX_PACKET_BYTES) throw reader.error(`the server announced a packet of ${length} bytes, more than ${MAX_PACKET_BYTES}`);
  if (length === 0) throw reader.error("the server sent an empty packet");
  return { sequence: header[3] as number, payload: await reader.bytes(length) };
}

/** The text of an ERR packet (0xff, error code, optional `#` and SQLSTATE, message). */
function errorText(payload: Buffer): string {
  if (payload.length < 3) return "an error";
  const code = payload.readUInt16LE(1);
  let message = payload.subarray(3);
  if (message[0] === 0x23 && message.length >= 6) message = message.subarray(6);
  return `error ${code} ${quote(message.toString("utf8"))}`;
}

export const mysql: StartTlsExchange = async (reader) => {
  const { sequence, payload } = await readPacket(reader);
  const version = payload[0];
  // A server that refuses the connection (too many connections, a host not allowed) says so at once.
  if (version === 0xff) throw reader.error(`the server refused the connection: ${errorText(payload)}`);
  if (version !== 10) throw reader.error(`not a MySQL Handshake v10 packet (protocol version ${version ?? "none"})`);
  const versionEnd = payload.indexOf(0, 1);
  // server version, NUL; connection id (4); auth-plugin-data part 1 (8); filler (1); capabilities, lower 2 bytes
  const capabilitiesAt = versionEnd + 1 + 4 + 8 + 1;
  if (versionEnd < 0 || capabilitiesAt + 2 > payload.length) throw reader.error("the server's handshake packet is cut short");
  const serverCapabilities = payload.readUInt16LE(capabilitiesAt);
  const serverVersion = payload.subarray(1, versionEnd).toString("latin1");
  if (!(serverCapabilities & CLIENT_SSL)) throw reader.error(`the server (${quote(serverVersion)}) does not offer TLS`);
  if (!(serverCapabilities & CLIENT_PROTOCOL_41)) throw reader.error(`the server (${quote(serverVersion)}) does not speak protocol 4.1`);
  const charset = capabilitiesAt + 2 < payload.length ? (payload[capabilitiesAt + 2] as number) : DEFAULT_CHARSET;

  const request = Buffer.alloc(4 + 32);
  request.writeUIntLE(32, 0, 3);
  request[3] = (sequence + 1) & 0xff;
  const capabilities = CLIENT_PROTOCOL_41 | CLIENT_SSL | (serverCapabilities & (CLIENT_LONG_PASSWORD | CLIENT_SECURE_CONNECTION));
  request.writeUInt32LE(capabilities, 4);
  request.writeUInt32LE(MAX_CLIENT_PACKET, 8);
  request[12] = charset;
  reader.write(request);
};
