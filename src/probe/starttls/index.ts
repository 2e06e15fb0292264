/**
 * The STARTTLS preludes, one per protocol: each exchange runs on the plain TCP connection through a
 * StartTlsReader (src/probe/starttls/reader.ts), the one bounded reader they all share, and leaves
 * the socket at the server's first TLS byte.
 */
import type { Prelude } from "../prelude.js";
import type { ProbeProtocol } from "../protocols.js";
import { ftp } from "./ftp.js";
import { imap } from "./imap.js";
import { ldap } from "./ldap.js";
import { mysql } from "./mysql.js";
import { pop3 } from "./pop3.js";
import { postgres } from "./postgres.js";
import { StartTlsReader, type StartTlsExchange } from "./reader.js";
import { smtp } from "./smtp.js";

const EXCHANGES: Record<Exclude<ProbeProtocol, "tls">, { name: string; exchange: StartTlsExchange }> = {
  smtp: { name: "SMTP", exchange: smtp },
  imap: { name: "IMAP", exchange: imap },
  pop3: { name: "POP3", exchange: pop3 },
  ftp: { name: "FTP", exchange: ftp },
  ldap: { name: "LDAP", exchange: ldap },
  postgres: { name: "PostgreSQL", exchange: postgres },
  mysql: { name: "MySQL", exchange: mysql },
};

/** The prelude that upgrades a connection of `protocol` to TLS; none for `tls`, which starts with TLS. */
export function starttlsPrelude(protocol: ProbeProtocol): Prelude | undefined {
  if (protocol === "tls") return undefined;
  const { name, exchange } = EXCHANGES[protocol];
  return async (socket, signal) => {
    const reader = new StartTlsReader(name, socket, signal);
    try {
      await exchange(reader);
    } finally {
      reader.release();
    }
  };
}
