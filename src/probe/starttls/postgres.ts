/**
 * PostgreSQL SSLRequest (protocol 3, "SSL Session Encryption"): the 8-byte request, answered with
 * one byte, `S` to go ahead, `N` for no TLS. Exactly that byte is read: what follows is TLS.
 */
import type { StartTlsExchange } from "./reader.js";

/** Length 8, then the request code 1234 << 16 | 5679. */
const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);

export const postgres: StartTlsExchange = async (reader) => {
  reader.write(SSL_REQUEST);
  const [answer] = await reader.bytes(1);
  if (answer === 0x53) return; // 'S'
  if (answer === 0x4e) throw reader.error("the server does not accept TLS (it answered N)"); // 'N'
  // 'E': a server too old to know the request sends an ErrorResponse.
  if (answer === 0x45) throw reader.error("the server answered the SSLRequest with an error");
  throw reader.error(`not a PostgreSQL answer to SSLRequest: byte 0x${(answer ?? 0).toString(16).padStart(2, "0")}`);
};
