/**
 * How a probe reaches the TLS handshake of one target: straight to host:port, or through an HTTP
 * CONNECT proxy; then TLS at once, or after the STARTTLS exchange of its protocol. Static targets,
 * discovered ones and /probe modules all come through here.
 */
import type { ProbeProtocol } from "./protocols.js";
import { connectThroughProxy, parseProxyUrl } from "./proxy.js";
import type { Prelude } from "./prelude.js";
import { starttlsPrelude } from "./starttls/index.js";
import type { TlsProbeOptions } from "./tls.js";

export interface TransportSettings {
  /** Absent or `tls`: TLS from the first byte. */
  protocol?: ProbeProtocol;
  /** `http://[user:password@]host:port` of an HTTP CONNECT proxy. */
  proxyUrl?: string;
}

/**
 * The dial address and preludes of a probe of host:port with these settings: the proxy's CONNECT
 * first (it opens the path to host:port), then the protocol's STARTTLS exchange with the server.
 */
export function transportFor(settings: TransportSettings, host: string, port: number): Pick<TlsProbeOptions, "dial" | "preludes"> {
  const preludes: Prelude[] = [];
  let dial: TlsProbeOptions["dial"];
  if (settings.proxyUrl) {
    const proxy = parseProxyUrl(settings.proxyUrl);
    dial = { host: proxy.host, port: proxy.port };
    preludes.push(connectThroughProxy(proxy, host, port));
  }
  const starttls = settings.protocol ? starttlsPrelude(settings.protocol) : undefined;
  if (starttls) preludes.push(starttls);
  return { ...(dial ? { dial } : {}), ...(preludes.length ? { preludes } : {}) };
}
