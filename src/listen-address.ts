/** Where the exporter listens: an address (host name or IP) and a port. */
export interface ListenAddress {
  address: string;
  port: number;
}

/** Every IPv4 interface: the address `:port` stands for, as it is the default listen address. */
const EVERY_INTERFACE = "0.0.0.0";

/**
 * `host:port`, `[ipv6]:port` or `:port` (every interface), as Prometheus exporters take
 * `--web.listen-address`; null when the text is none of these. The port is checked by the
 * configuration schema, like one from the file.
 */
export function parseListenAddress(text: string): ListenAddress | null {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:[\]]*)):(\d{1,5})$/.exec(text);
  if (!match) return null;
  return { address: match[1] ?? (match[2] || EVERY_INTERFACE), port: Number(match[3]) };
}
