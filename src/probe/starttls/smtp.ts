/**
 * SMTP STARTTLS (RFC 3207): the greeting 220 (of one line or many), EHLO, STARTTLS among the
 * extensions the EHLO reply lists, then STARTTLS answered 220.
 */
import { isIPv4, isIPv6 } from "node:net";
import { quote, type StartTlsExchange, type StartTlsReader } from "./reader.js";

/** The EHLO argument: an address literal of our end (RFC 5321 4.1.3), which needs no DNS name of ours. */
function ehloArgument(reader: StartTlsReader): string {
  const local = reader.localAddress?.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, "");
  if (local && isIPv4(local)) return `[${local}]`;
  if (local && isIPv6(local)) return `[IPv6:${local}]`;
  return "[127.0.0.1]";
}

export const smtp: StartTlsExchange = async (reader) => {
  const greeting = await reader.reply("the greeting");
  if (greeting.code !== 220) throw reader.error(`the server greeted with ${greeting.code} ${quote(greeting.lines[0] ?? "")}, not 220`);
  reader.write(`EHLO ${ehloArgument(reader)}\r\n`);
  const ehlo = await reader.reply("the EHLO reply");
  if (ehlo.code !== 250) throw reader.error(`the server answered EHLO with ${ehlo.code} ${quote(ehlo.lines[0] ?? "")}`);
  // The first line names the server; every other line is one extension keyword with its parameters.
  if (!ehlo.lines.slice(1).some((line) => /^STARTTLS(\s|$)/i.test(line))) throw reader.error("the server does not offer STARTTLS");
  reader.write("STARTTLS\r\n");
  const go = await reader.reply("the STARTTLS reply");
  if (go.code !== 220) throw reader.error(`the server answered STARTTLS with ${go.code} ${quote(go.lines[0] ?? "")}`);
};
