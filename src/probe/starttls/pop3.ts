/** POP3 STLS (RFC 2595 4): the greeting `+OK`, then `STLS` answered `+OK`. */
import { quote, type StartTlsExchange } from "./reader.js";

export const pop3: StartTlsExchange = async (reader) => {
  const greeting = await reader.line();
  if (!/^\+OK\b/.test(greeting)) throw reader.error(greeting.startsWith("-ERR") ? `the server greeted with ${quote(greeting)}` : `not a POP3 greeting: ${quote(greeting)}`);
  reader.write("STLS\r\n");
  const answer = await reader.line();
  if (!/^\+OK\b/.test(answer)) throw reader.error(`the server answered STLS with ${quote(answer)}`);
};
