/**
 * The protocols a probe can speak before its TLS handshake. `tls` is TLS from the first byte; every
 * other name is a STARTTLS upgrade of that protocol (src/probe/starttls/), on its usual port or any.
 */
export const PROBE_PROTOCOLS = ["tls", "smtp", "imap", "pop3", "ftp", "ldap", "postgres", "mysql"] as const;

export type ProbeProtocol = (typeof PROBE_PROTOCOLS)[number];
