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

/** A proxy URL as it may be shown in a message: whatever comes before its last `@` (the credentials) left out. */
function withoutCredentials(value: string): string {
  return value.replace(/^([a-z][a-z0-9+.-]*:\/\/)?.*@/is, "$1<credentials>@");
}

/**
 * `http://[user:password@]host[:port]` into where to dial and how to authenticate; throws on anything
 * else. The messages never repeat the password: configuration errors are printed and logged.
 */
export function parseProxyUrl(value: string): ProxyAddress {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new Error(`not a URL: ${JSON.stringify(withoutCredentials(value))}`);
  }
  if (url.protocol !== "http:") throw new Error(`only http:// proxies are supported (HTTP CONNECT), got ${url.protocol}//`);
  if ((url.pathname && url.pathname !== "/") || url.search || url.hash) throw new Error("a proxy URL has no path, query or fragment");
  const host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
  const address: ProxyAddress = { host, port: url.port ? Number(url.port) : 80 };
  if (address.port < 1) throw new Error("a proxy URL's port is between 1 and 65535");
  if (url.username || url.password) {
    let credentials: string;
    try {
      credentials = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`;
    } catch {
      throw new Error("the user name or password of a proxy URL is not valid percent-encoding (write % as %25)");
    }
    address.authorization = `Basic ${Buffer.from(credentials, "utf8").toString("base64")}`;
  }
  return address;
}

/** Up to 80 characters of what a peer sent, printable ASCII only: it ends up in logs and on the status page. */
function shown(bytes: string): string {
  return bytes.slice(0, 80).replace(/[^\x20-\x7e]/g, "?");
}

/** The first bytes of any HTTP/1.x answer: a peer that sends anything else is not an HTTP proxy. */
const HTTP_PREFIX = Buffer.from("HTTP/", "latin1");

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
          // A peer that is not an HTTP proxy (an SSH or mail banner, a TLS alert) fails at its first bytes, not at the deadline.
          const prefix = Math.min(filled, HTTP_PREFIX.length);
          if (!head.subarray(0, prefix).equals(HTTP_PREFIX.subarray(0, prefix))) {
            const firstLine = head.subarray(0, Math.min(filled, 80)).toString("latin1").split("\r\n")[0] ?? "";
            finish(new PreludeError("proxy_error", `not an HTTP answer to CONNECT ${target}: ${JSON.stringify(shown(firstLine))}`));
          } else if (filled === head.length) {
            finish(new PreludeError("proxy_error", `the proxy's answer to CONNECT ${target} has no end within ${MAX_RESPONSE_BYTES} bytes`));
          }
          return;
        }
        const statusLine = head.subarray(0, head.indexOf("\r\n")).toString("latin1");
        const status = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(statusLine);
        if (!status) finish(new PreludeError("proxy_error", `not an HTTP answer to CONNECT ${target}: ${JSON.stringify(shown(statusLine))}`));
        else if (!status[1]?.startsWith("2")) finish(new PreludeError("proxy_error", `the proxy answered CONNECT ${target} with ${status[1]} ${shown(status[2] ?? "")}`.trimEnd()));
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
