/**
 * HTTP CONNECT proxies (`proxyUrl` on endpoint targets): probes through a real tinyproxy with basic
 * auth, through Node doubles of hostile proxies, and the configuration's checks of the URL. The
 * proxy's password must not show up in any message, log line or status page.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { connect as netConnect, createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { pino } from "pino";
import t, { type Test } from "tap";
import { makeCert, makeChain, privateKeyPem } from "../scripts/certgen.js";
import { ParseCache } from "../src/certs/cache.js";
import { validateConfig } from "../src/config.js";
import { configErrorOf } from "./helpers/config-error.js";
import { Health } from "../src/health.js";
import { Inventory } from "../src/inventory.js";
import type { Location, LocationEntry } from "../src/model.js";
import { connectThroughProxy, parseProxyUrl } from "../src/probe/proxy.js";
import { probeTls, tlsContext, type TlsProbeResult } from "../src/probe/tls.js";
import { transportFor } from "../src/probe/transport.js";
import { EndpointSource } from "../src/sources/endpoints.js";
import { SourceContext } from "../src/sources/source.js";
import { renderStatusPage } from "../src/status-page.js";
import { freePort } from "./helpers/net.js";
import { missing, start, stop, waitFor, type Started } from "./helpers/processes.js";
import { closedPort, silentServer, tlsServer, type LoopbackHost, type TestServer } from "./helpers/tls-servers.js";

const USER = "prober";
/** Distinctive, so that a leak anywhere is found by a plain search. */
const PASSWORD = "s3cretpass";
const WRONG_PASSWORD = "wr0ngpass";

// The target's certificate names target.test only: neither the proxy's address nor the IP dialled.
const { root, intermediate } = await makeChain("localhost");
const leaf = await makeCert({ cn: "target.test", issuer: intermediate, sans: ["target.test"] });
const leafKey = await privateKeyPem(leaf);
const chainPem = leaf.pem + intermediate.pem;
const ca = tlsContext({ ca: [root.pem] });

const dir = await mkdtemp(join(tmpdir(), "proxy-test-"));
t.teardown(() => rm(dir, { recursive: true, force: true }));
const caFile = join(dir, "ca.pem");
await writeFile(caFile, root.pem);

async function serve<T extends TestServer>(t: Test, server: Promise<T>): Promise<T> {
  const started = await server;
  t.teardown(() => started.close());
  return started;
}

/** A plain TCP server on loopback whose sockets are all destroyed on close. */
async function double(t: Test, onConnection: (socket: Socket) => void, host: LoopbackHost = "127.0.0.1"): Promise<{ port: number; server: Server }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => undefined);
    socket.once("close", () => sockets.delete(socket));
    onConnection(socket);
  });
  server.listen({ port: 0, host });
  await new Promise((resolve) => server.once("listening", resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  );
  return { port: (server.address() as AddressInfo).port, server };
}

/** Calls `then` with the CONNECT request once its blank line arrived (the request is at most 4 KiB). */
function onConnectRequest(socket: Socket, then: (request: string) => void): void {
  let request = "";
  const onData = (chunk: Buffer): void => {
    request += chunk.toString("latin1");
    if (request.includes("\r\n\r\n")) {
      socket.off("data", onData);
      then(request);
    } else if (request.length > 4096) {
      socket.destroy();
    }
  };
  socket.on("data", onData);
}

/** A probe of 127.0.0.1:port named target.test through the proxy at proxyUrl, as the endpoint source sets it up. */
function probeVia(proxyUrl: string, port: number, timeoutMs = 1500): Promise<TlsProbeResult> {
  return probeTls({
    host: "127.0.0.1",
    port,
    ...transportFor({ proxyUrl }, "127.0.0.1", port),
    serverName: "target.test",
    secureContext: ca,
    connectTimeoutMs: 1000,
    timeoutMs,
  });
}

// ---------------------------------------------------------------------------------------------
// The configuration's checks of proxyUrl.

const endpointWithProxy = (proxyUrl: string) => ({ sources: { endpoints: [{ address: "example.com:443", proxyUrl }] } });


t.test("proxyUrl: only http://host:port, with optional credentials", async (t) => {
  t.equal(
    configErrorOf(endpointWithProxy("https://proxy.example:3128")),
    "sources.endpoints[0].proxyUrl: only http:// proxies are supported (HTTP CONNECT), got https://",
    "an https:// proxy is refused with a clear message",
  );
  t.match(configErrorOf(endpointWithProxy("socks5://proxy.example:1080")), /proxyUrl: only http:\/\/ proxies are supported/);
  t.equal(configErrorOf(endpointWithProxy("http://proxy.example:3128/path")), "sources.endpoints[0].proxyUrl: a proxy URL has no path, query or fragment");
  t.match(configErrorOf(endpointWithProxy("http://proxy.example:3128/?a=b")), /no path, query or fragment/);
  t.match(configErrorOf(endpointWithProxy("http://proxy.example:0")), /port is between 1 and 65535/);
  t.match(configErrorOf(endpointWithProxy("proxy.example:3128")), /proxyUrl: /, "a bare host:port is refused");
  t.equal(configErrorOf(endpointWithProxy("http://proxy.example:3128")), "", "a plain URL is accepted");
  t.equal(configErrorOf(endpointWithProxy("http://proxy.example:3128/")), "", "a trailing slash is no path");
  t.equal(configErrorOf(endpointWithProxy("http://[::1]:3128")), "", "an IPv6 proxy is accepted");

  t.same(parseProxyUrl("http://proxy.example"), { host: "proxy.example", port: 80 }, "port 80 by default, no authorization");
  t.same(parseProxyUrl("http://[fd00::1]:3128"), { host: "fd00::1", port: 3128 }, "IPv6 without brackets, to dial");
});

t.test("proxyUrl: credentials are percent-decoded into basic auth", async (t) => {
  const basic = (credentials: string) => `Basic ${Buffer.from(credentials, "utf8").toString("base64")}`;
  t.equal(parseProxyUrl("http://user:pass@proxy:3128").authorization, basic("user:pass"));
  t.equal(parseProxyUrl("http://us%40er:p%3Aw%2Fd%25%20x@proxy:3128").authorization, basic("us@er:p:w/d% x"), "%40 %3A %2F %25 %20 decoded");
  t.equal(parseProxyUrl("http://us%C3%A9r:p%C3%A4ss@proxy:3128").authorization, basic("usér:päss"), "UTF-8 percent-encoding");
  t.equal(parseProxyUrl("http://user@proxy:3128").authorization, basic("user:"), "a user without password");
  t.equal(parseProxyUrl("http://:pass@proxy:3128").authorization, basic(":pass"), "a password without user");
  t.match(configErrorOf(endpointWithProxy("http://user:bad%zzpass@proxy:3128")), /proxyUrl: the user name or password of a proxy URL is not valid percent-encoding/);
});

t.test("proxyUrl: configuration errors never repeat the password", async (t) => {
  for (const url of [
    `http://${USER}:${PASSWORD}@proxy.example:99999`,
    `http://${USER}:${PASSWORD}@proxy example:3128`,
    `http://${USER}:${PASSWORD}@@proxy.example:3128/x`,
    `http://${USER}:${PASSWORD}@proxy.example:3128/path`,
    `https://${USER}:${PASSWORD}@proxy.example:3128`,
    `http://${USER}:${PASSWORD}%zz@proxy.example:3128`,
    `${USER}:${PASSWORD}@proxy.example:3128`,
  ]) {
    const message = configErrorOf(endpointWithProxy(url));
    t.match(message, /^sources\.endpoints\[0\]\.proxyUrl: /, `refused: ${message}`);
    t.notMatch(message, PASSWORD, "the password is not in the message");
  }
  t.equal(configErrorOf(endpointWithProxy(`http://${USER}:${PASSWORD}@proxy.example:99999`)), 'sources.endpoints[0].proxyUrl: not a URL: "http://<credentials>@proxy.example:99999"');
});

// ---------------------------------------------------------------------------------------------
// A real proxy: tinyproxy from Debian.

t.test("through a real proxy: tinyproxy from Debian", async (t) => {
  if (missing("tinyproxy")) {
    t.fail("tinyproxy is not installed: apt-get install tinyproxy (CI installs it); this test never skips");
    return;
  }
  const tls = await serve(t, tlsServer({ cert: chainPem, key: leafKey }));
  const tls6 = await serve(t, tlsServer({ cert: chainPem, key: leafKey, host: "::1" }));
  /** Allowed for CONNECT, but nothing listens there. */
  const closedAllowed = await closedPort();
  /** Not allowed for CONNECT (a TLS server listens there). */
  const forbidden = await serve(t, tlsServer({ cert: chainPem, key: leafKey }));
  const proxyPort = await freePort();
  const proxy = await startTinyproxy(t, proxyPort, [tls.port, tls6.port, closedAllowed]);

  /** Probes the targets once through an endpoint source built from a validated configuration. */
  const scan = async (endpoints: Record<string, unknown>[]) => {
    const config = validateConfig({ sources: { endpoints } });
    const logs: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        logs.push(chunk.toString("utf8"));
        done();
      },
    });
    const inventory = new Inventory();
    const health = new Health(inventory);
    const ctx = new SourceContext(inventory, new ParseCache(1000), health, pino({ level: "trace" }, sink));
    const source = new EndpointSource(config.sources.endpoints, { intervalSeconds: 3600, jitter: 0, concurrency: 8, timeout: 5, connectTimeout: 2, maxFileSize: 1024 * 1024 }, ctx);
    try {
      await source.scanOnce();
    } finally {
      await source.stop();
    }
    const entry = (name: string, key = "target.test"): LocationEntry | undefined => inventory.get({ source: "endpoint", namespace: "", name, key } satisfies Location);
    return { inventory, entry, logs };
  };

  const via = (credentials: string, port = proxyPort, host = "127.0.0.1") => `http://${credentials}${host.includes(":") ? `[${host}]` : host}:${port}`;
  const good = `${USER}:${encodeURIComponent(PASSWORD).replace("s", "%73")}@`;

  t.test("tinyproxy: the certificate is read through the proxy, SNI and host name the target's", async (t) => {
    const before = tls.serverNames.length;
    const { entry } = await scan([{ address: `127.0.0.1:${tls.port}`, serverName: "target.test", caFile, proxyUrl: via(good) }]);
    const found = entry(`127.0.0.1:${tls.port}`);
    t.match(found?.probe, { success: true, chainVerified: true, verifyError: "", hostnameMatch: true, tlsVersion: "TLSv1.3" });
    t.equal(found?.error, undefined);
    t.same(
      found?.certificates.map((c) => c.subjectCN),
      ["target.test", "Test Intermediate CA"],
      "leaf and intermediate, as presented",
    );
    t.same(tls.serverNames.slice(before), ["target.test"], "SNI is the target's name");
    t.match(proxy.output(), `CONNECT 127.0.0.1:${tls.port} HTTP/1.1`, "the connection went through tinyproxy, which was asked for the target");
  });

  t.test("tinyproxy: an IPv6 target", async (t) => {
    const before = tls6.serverNames.length;
    const { entry } = await scan([{ address: `[::1]:${tls6.port}`, serverName: "target.test", caFile, proxyUrl: via(good) }]);
    t.match(entry(`[::1]:${tls6.port}`)?.probe, { success: true, chainVerified: true, hostnameMatch: true });
    t.match(proxy.output(), `CONNECT [::1]:${tls6.port} HTTP/1.1`, "CONNECT names an IPv6 target in brackets");
    t.same(tls6.serverNames.slice(before), ["target.test"]);
  });

  t.test("tinyproxy: refusals are proxy_error with the proxy's status; a refused proxy is connection_refused", async (t) => {
    const refusedProxy = await closedPort();
    const target = (port: number, proxyUrl: string, serverName = "target.test") => ({ address: `127.0.0.1:${port}`, serverName, caFile, proxyUrl });
    const { entry, logs, inventory } = await scan([
      target(tls.port, via(`${USER}:${WRONG_PASSWORD}@`), "wrong.target.test"),
      target(tls.port, via("")),
      target(forbidden.port, via(good)),
      target(closedAllowed, via(good)),
      target(tls.port, via(`${USER}:${PASSWORD}@`, refusedProxy), "refused.target.test"),
    ]);
    const failure = (name: string, key: string) => {
      const found = entry(name, key);
      return { reason: found?.error?.reason, probeReason: found?.probe?.reason, message: found?.error?.message ?? "", success: found?.probe?.success };
    };
    // tinyproxy answers 407 when no credentials came and 401 when wrong ones did.
    t.match(failure(`127.0.0.1:${tls.port}`, "wrong.target.test"), { reason: "proxy_error", probeReason: "proxy_error", success: false, message: /with 401 Unauthorized/ }, "wrong credentials");
    t.match(failure(`127.0.0.1:${tls.port}`, "target.test"), { reason: "proxy_error", message: /with 407 Proxy Authentication Required/ }, "no credentials");
    t.match(failure(`127.0.0.1:${forbidden.port}`, "target.test"), { reason: "proxy_error", message: new RegExp(`CONNECT 127\\.0\\.0\\.1:${forbidden.port} with 403`) }, "a port tinyproxy does not CONNECT to");
    t.match(failure(`127.0.0.1:${closedAllowed}`, "target.test"), { reason: "proxy_error", message: /with 500 Unable to connect/ }, "the target refuses the proxy");
    t.match(failure(`127.0.0.1:${tls.port}`, "refused.target.test"), { reason: "connection_refused", success: false }, "the proxy refuses the connection");
    t.equal(forbidden.accepted, 0, "tinyproxy never connected to a port it does not allow");

    const page = renderStatusPage(inventory, { version: "test", query: {}, rows: 100, now: Date.now() / 1000 }).body;
    for (const secret of [PASSWORD, WRONG_PASSWORD, Buffer.from(`${USER}:${PASSWORD}`).toString("base64")]) {
      t.notMatch(page, secret, "no password on the status page");
      t.notMatch(logs.join(""), secret, "no password in any log line");
      for (const found of inventory.entries()) t.notMatch(found.error?.message ?? "", secret, "no password in a read error");
    }
  });
});

/**
 * tinyproxy in the foreground on 127.0.0.1, with basic auth and CONNECT to `connectPorts` only. Not
 * on ::1: tinyproxy 1.11.1 reads the address of some IPv6 clients wrongly (it logged `::a04e:84d6:…`
 * for ::1) and then denies them by its Allow list; the IPv6 proxy address is the doubles' below.
 */
async function startTinyproxy(t: Test, port: number, connectPorts: number[]): Promise<Started> {
  const conf = join(dir, "tinyproxy.conf");
  // No User/Group: as root it warns and keeps the current user (it binds nothing privileged), as
  // another user it cannot switch anyway. No LogFile/Syslog: in the foreground it logs to stderr.
  const lines = [
    `Port ${port}`,
    "Listen 127.0.0.1",
    "Timeout 30",
    `PidFile "${join(dir, "tinyproxy.pid")}"`,
    "LogLevel Connect",
    "MaxClients 64",
    "Allow 127.0.0.1",
    `BasicAuth ${USER} ${PASSWORD}`,
    ...connectPorts.map((p) => `ConnectPort ${p}`),
  ];
  await writeFile(conf, lines.join("\n") + "\n");
  const proxy = start("tinyproxy", "tinyproxy", ["-d", "-c", conf]);
  t.teardown(() => stop(proxy));
  await waitFor(
    "tinyproxy",
    10_000,
    () =>
      new Promise<boolean>((resolve) => {
        const socket = netConnect({ host: "127.0.0.1", port });
        socket.once("connect", () => {
          socket.destroy();
          resolve(true);
        });
        socket.once("error", () => resolve(false));
      }),
    proxy,
  );
  return proxy;
}

// ---------------------------------------------------------------------------------------------
// Hostile proxies: Node doubles.

t.test("a proxy that never answers: handshake_timeout within the deadline", async (t) => {
  const silent = await serve(t, silentServer());
  const result = await probeVia(`http://u:p@127.0.0.1:${silent.port}`, 443, 800);
  t.match(result.probe, { success: false, reason: "handshake_timeout", message: /before the TLS handshake/ });
  t.ok(result.probe.durationSeconds >= 0.7 && result.probe.durationSeconds < 1.2, `ended at the deadline (${result.probe.durationSeconds.toFixed(3)} s)`);
});

t.test("a proxy that sends an endless header: proxy_error at 16 KiB, reading stops", async (t) => {
  const CAP = 64 * 1024 * 1024;
  let sent = 0;
  let closedByPeer = false;
  const { port } = await double(t, (socket) => {
    socket.once("close", () => (closedByPeer = sent < CAP));
    onConnectRequest(socket, () => {
      const line = Buffer.from(`X-Filler: ${"a".repeat(1000)}\r\n`);
      const pump = (): void => {
        if (sent === 0) socket.write("HTTP/1.1 200 Connection established\r\n");
        while (sent < CAP && !socket.destroyed) {
          sent += line.length;
          if (!socket.write(line)) return void socket.once("drain", pump);
        }
      };
      pump();
    });
  });
  const result = await probeVia(`http://u:p@127.0.0.1:${port}`, 443, 5000);
  t.match(result.probe, { success: false, reason: "proxy_error", message: /has no end within 16384 bytes/ });
  t.ok(result.probe.durationSeconds < 1, `failed fast (${result.probe.durationSeconds.toFixed(3)} s), not at the deadline`);
  await new Promise((resolve) => setTimeout(resolve, 100));
  t.ok(closedByPeer, `the prober closed the connection after ${sent} bytes were written, far below ${CAP}`);
});

for (const proxyHost of ["127.0.0.1", "::1"] as const) {
  t.test(`a proxy on ${proxyHost} that answers 200 and then relays to a real TLS server: the tunnel carries the handshake`, async (t) => {
    const tls = await serve(t, tlsServer({ cert: chainPem, key: leafKey }));
    const requests: string[] = [];
    const { port } = await double(
      t,
      (socket) => {
        onConnectRequest(socket, (request) => {
          requests.push(request);
          // The blank line split across two writes, the relay at once after it.
          socket.write("HTTP/1.1 200 Connection established\r\nVia: 1.1 double\r\n\r");
          setTimeout(() => {
            const backend = netConnect({ host: "127.0.0.1", port: tls.port });
            backend.on("error", () => socket.destroy());
            socket.write("\n");
            socket.pipe(backend);
            backend.pipe(socket);
          }, 20);
        });
      },
      proxyHost,
    );
    const host = proxyHost.includes(":") ? `[${proxyHost}]` : proxyHost;
    const result = await probeVia(`http://${USER}:${PASSWORD}@${host}:${port}`, tls.port);
    t.match(result.probe, { success: true, chainVerified: true, hostnameMatch: true });
    t.equal(result.certificates.length, 2);
    t.same(tls.serverNames, ["target.test"]);
    const authorization = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString("base64")}`;
    t.equal(requests[0], `CONNECT 127.0.0.1:${tls.port} HTTP/1.1\r\nHost: 127.0.0.1:${tls.port}\r\nProxy-Authorization: ${authorization}\r\n\r\n`, "one CONNECT, authority and basic auth");
  });
}

t.test("bytes after the proxy's blank line in the same packet reach TLS", async (t) => {
  // A 200 and, in the same write, a web server's answer: TLS must see it (not_tls), not wait for bytes that were dropped.
  const { port } = await double(t, (socket) => {
    onConnectRequest(socket, () => socket.write("HTTP/1.1 200 OK\r\n\r\nHTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"));
  });
  const result = await probeVia(`http://127.0.0.1:${port}`, 443, 3000);
  t.match(result.probe, { success: false, reason: "not_tls" });
  t.ok(result.probe.durationSeconds < 1, "at once, not at the deadline");

  // The same at the prelude: what followed the blank line is read first from the socket.
  const { port: echoPort } = await double(t, (socket) => {
    onConnectRequest(socket, () => socket.write("HTTP/1.0 200 Connection established\r\nProxy-agent: double\r\n\r\nTUNNEL-FIRST"));
  });
  const socket = netConnect({ host: "127.0.0.1", port: echoPort });
  t.teardown(() => socket.destroy());
  await new Promise((resolve) => socket.once("connect", resolve));
  await connectThroughProxy(parseProxyUrl(`http://127.0.0.1:${echoPort}`), "target.test", 443)(socket, new AbortController().signal);
  const [first] = (await new Promise((resolve) => {
    socket.once("data", (...args) => resolve(args));
    socket.resume();
  })) as [Buffer];
  t.equal(first.toString("latin1"), "TUNNEL-FIRST");
});

t.test("a peer that is not an HTTP proxy: proxy_error at its first bytes", async (t) => {
  const banner = await double(t, (socket) => socket.write("SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"));
  let result = await probeVia(`http://127.0.0.1:${banner.port}`, 443, 3000);
  t.match(result.probe, { success: false, reason: "proxy_error", message: 'not an HTTP answer to CONNECT 127.0.0.1:443: "SSH-2.0-OpenSSH_9.2p1 Debian-2"' });
  t.ok(result.probe.durationSeconds < 1, `failed fast (${result.probe.durationSeconds.toFixed(3)} s), not at the deadline`);

  const garbage = await double(t, (socket) => onConnectRequest(socket, () => socket.write("220 mail.example ESMTP\r\n\u001b[2J\r\n\r\n")));
  result = await probeVia(`http://127.0.0.1:${garbage.port}`, 443, 3000);
  t.match(result.probe, { reason: "proxy_error", message: /not an HTTP answer to CONNECT 127\.0\.0\.1:443: "220 mail\.example ESMTP"/ });

  const oddStatus = await double(t, (socket) => onConnectRequest(socket, () => socket.write("HTTP/1.1 999\u001b[31m\r\n\r\n")));
  result = await probeVia(`http://127.0.0.1:${oddStatus.port}`, 443, 3000);
  t.match(result.probe, { reason: "proxy_error", message: 'not an HTTP answer to CONNECT 127.0.0.1:443: "HTTP/1.1 999?[31m"' }, "a status line with control characters is not HTTP, and they are not passed on");

  const refusal = await double(t, (socket) => onConnectRequest(socket, () => socket.end("HTTP/1.1 502 Bad Gateway\u0007\u001b\r\n\r\n")));
  result = await probeVia(`http://127.0.0.1:${refusal.port}`, 443, 3000);
  t.match(result.probe, { reason: "proxy_error", message: "the proxy answered CONNECT 127.0.0.1:443 with 502 Bad Gateway??" }, "control characters of the reason are not passed on");

  const closing = await double(t, (socket) => onConnectRequest(socket, () => socket.end()));
  result = await probeVia(`http://127.0.0.1:${closing.port}`, 443, 3000);
  t.match(result.probe, { reason: "proxy_error", message: "closed the connection before answering CONNECT" });
});
