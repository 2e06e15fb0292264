/**
 * The HTTP CONNECT prelude: asks a proxy for a tunnel to host:port, with basic auth when the proxy
 * URL carries credentials (RFC 9110 9.3.6, RFC 7617). The answer is read up to its blank line and at
 * most MAX_RESPONSE_BYTES; bytes after it belong to the tunnel and are handed back to the socket.
 */
import type { Socket } from "node:net";
import { PreludeError, type Prelude } from "./prelude.js";

/** A proxy's answer to CONNECT is a status line and a few headers; more is not a proxy talking. */
const MAX_RESPONSE_BYTES = 16 * 1024;

export interface ProxyAddress {
  host: string;
  port: number;
  /** `Proxy-Authorization` value, when the URL carries credentials. */
  authorization?: string;
}

/** `http://[user:password@]host[:port]` into where to dial and how to authenticate; throws on anything else. */
export function parseProxyUrl(value: string): ProxyAddress {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new Error(`not a URL: ${JSON.stringify(value)}`);
  }
  if (url.protocol !== "http:") throw new Error(`only http:// proxies are supported (HTTP CONNECT), got ${url.protocol}//`);
  if ((url.pathname && url.pathname !== "/") || url.search || url.hash) throw new Error("a proxy URL has no path, query or fragment");
  const host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
  const address: ProxyAddress = { host, port: url.port ? Number(url.port) : 80 };
  if (url.username || url.password) {
    const credentials = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`;
    address.authorization = `Basic ${Buffer.from(credentials, "utf8").toString("base64")}`;
  }
  return address;
}

/** The request line's authority: IPv6 hosts in brackets. */
function authority(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** A prelude that opens a tunnel to host:port through the proxy the socket is connected to. */
export function connectThroughProxy(proxy: ProxyAddress, host: string, port: number): Prelude {
  return (socket: Socket, signal: AbortSignal) =>
    new Promise<void>((resolve, reject) => {
      const target = authority(host, port);
      // The answer is gathered into one buffer of bounded size: no chunk is copied twice.
      const head = Buffer.allocUnsafe(MAX_RESPONSE_BYTES);
      let filled = 0;
      const finish = (error?: PreludeError, rest?: Buffer) => {
        socket.off("data", onData);
        socket.off("end", onEnd);
        signal.removeEventListener("abort", onAbort);
        if (error) {
          reject(error);
          return;
        }
        socket.pause();
        if (rest?.length) socket.unshift(rest);
        resolve();
      };
      const onAbort = () => finish(new PreludeError("handshake_timeout", `the proxy did not answer CONNECT ${target} in time`));
      const onEnd = () => finish(new PreludeError("proxy_error", `the proxy closed the connection before answering CONNECT ${target}`));
      const onData = (chunk: Buffer) => {
        const taken = Math.min(chunk.length, head.length - filled);
        chunk.copy(head, filled, 0, taken);
        // Only the new bytes and the three before them can complete the blank line: the search stays linear.
        const end = head.subarray(0, filled + taken).indexOf("\r\n\r\n", Math.max(0, filled - 3));
        filled += taken;
        if (end < 0) {
          if (filled === head.length) finish(new PreludeError("proxy_error", `the proxy's answer to CONNECT ${target} has no end within ${MAX_RESPONSE_BYTES} bytes`));
          return;
        }
        const statusLine = head.subarray(0, head.indexOf("\r\n")).toString("latin1");
        const status = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(statusLine);
        if (!status) finish(new PreludeError("proxy_error", `not an HTTP answer to CONNECT ${target}: ${JSON.stringify(statusLine.slice(0, 80))}`));
        else if (!status[1]?.startsWith("2")) finish(new PreludeError("proxy_error", `the proxy answered CONNECT ${target} with ${status[1]} ${(status[2] ?? "").slice(0, 80)}`.trimEnd()));
        else finish(undefined, Buffer.concat([head.subarray(end + 4, filled), chunk.subarray(taken)]));
      };
      if (signal.aborted) {
        onAbort();
        return;
      }
      signal.addEventListener("abort", onAbort, { once: true });
      socket.on("data", onData);
      socket.once("end", onEnd);
      const auth = proxy.authorization ? `Proxy-Authorization: ${proxy.authorization}\r\n` : "";
      socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n${auth}\r\n`);
    });
}
