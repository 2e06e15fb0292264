/**
 * FTP AUTH TLS (RFC 4217 4): the greeting 220 (after at most one 120 "ready in n minutes"), then
 * `AUTH TLS` answered 234.
 */
import { quote, type StartTlsExchange } from "./reader.js";

export const ftp: StartTlsExchange = async (reader) => {
  let greeting = await reader.reply("the greeting");
  if (greeting.code === 120) greeting = await reader.reply("the greeting");
  if (greeting.code !== 220) throw reader.error(`the server greeted with ${greeting.code} ${quote(greeting.lines[0] ?? "")}, not 220`);
  reader.write("AUTH TLS\r\n");
  const answer = await reader.reply("the AUTH TLS reply");
  if (answer.code !== 234) throw reader.error(`the server answered AUTH TLS with ${answer.code} ${quote(answer.lines[0] ?? "")}`);
};
