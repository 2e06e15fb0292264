/**
 * IMAP STARTTLS (RFC 3501 6.2.1, RFC 9051): the greeting `* OK`, then `A1 STARTTLS` answered
 * `A1 OK`, after any untagged lines. A `* PREAUTH` greeting leaves no state in which STARTTLS is
 * allowed; `* BYE` is a refusal.
 */
import { quote, type StartTlsExchange } from "./reader.js";

const TAG = "A1";

export const imap: StartTlsExchange = async (reader) => {
  const greeting = await reader.line();
  const status = /^\* (OK|PREAUTH|BYE)\b/i.exec(greeting)?.[1]?.toUpperCase();
  if (status === undefined) throw reader.error(`not an IMAP greeting: ${quote(greeting)}`);
  if (status !== "OK") throw reader.error(`the server greeted with ${quote(greeting)}`);
  reader.write(`${TAG} STARTTLS\r\n`);
  const lines = await reader.linesUntil((line) => !line.startsWith("* "), "the answer to STARTTLS");
  const answer = lines[lines.length - 1] as string;
  if (!answer.toUpperCase().startsWith(`${TAG} `)) throw reader.error(`not an IMAP answer to STARTTLS: ${quote(answer)}`);
  if (!/^OK\b/i.test(answer.slice(TAG.length + 1))) throw reader.error(`the server answered STARTTLS with ${quote(answer)}`);
};
