/**
 * Real servers on loopback for the endpoint probe's tests: well-behaved TLS servers and the faults
 * a prober meets in the field. Every helper returns `close()`; tests call it in teardown.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { createServer as createNetServer, connect as netConnect, type AddressInfo, type Server, type Socket } from "node:net";
import { createServer as createTlsServer, type SecureVersion, type TlsOptions } from "node:tls";

export type LoopbackHost = "127.0.0.1" | "::1";

export interface TestServer {
  host: LoopbackHost;
  port: number;
  /** `host:port`, IPv6 in brackets. */
  address: string;
  close(): Promise<void>;
}

export interface CountingServer extends TestServer {
  /** TCP connections accepted so far. */
  readonly accepted: number;
  /** The most connections open at the same time. */
  readonly maxConcurrent: number;
}

export interface TlsTestServer extends CountingServer {
  /** With `gate`: the most connections held before their handshake at once. */
  readonly maxHeld: number;
  /** The SNI name of each ClientHello that carried one. */
  readonly serverNames: (string | false | null)[];
}

function addressOf(host: LoopbackHost, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Closes a server and every socket it still holds. */
async function closeAll(server: Server, sockets: Set<Socket>): Promise<void> {
  for (const socket of sockets) socket.destroy();
  sockets.clear();
  if (!server.listening) return;
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

async function listen(server: Server, host: LoopbackHost): Promise<number> {
  server.listen({ port: 0, host });
  await once(server, "listening");
  return (server.address() as AddressInfo).port;
}

interface ConnectionStats {
  accepted: number;
  open: number;
  maxConcurrent: number;
}

/** The handle of a started server: its address, its connection counts as they grow, and close(). */
function countingServer(host: LoopbackHost, port: number, stats: ConnectionStats, close: () => Promise<void>): CountingServer {
  return {
    host,
    port,
    address: addressOf(host, port),
    get accepted() {
      return stats.accepted;
    },
    get maxConcurrent() {
      return stats.maxConcurrent;
    },
    close,
  };
}

function track(server: Server): { sockets: Set<Socket>; stats: ConnectionStats } {
  const sockets = new Set<Socket>();
  const stats = { accepted: 0, open: 0, maxConcurrent: 0 };
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    stats.accepted++;
    stats.open++;
    stats.maxConcurrent = Math.max(stats.maxConcurrent, stats.open);
    socket.on("error", () => undefined);
    socket.once("close", () => {
      sockets.delete(socket);
      stats.open--;
    });
  });
  return { sockets, stats };
}

export interface TlsServerOptions {
  /** PEM: the leaf first, then whatever chain the server should present, in that order. */
  cert: string;
  key: string;
  host?: LoopbackHost;
  /** Demand a client certificate issued by one of these CAs. */
  clientCa?: string[];
  maxVersion?: SecureVersion;
  /**
   * Hold every connection before its handshake until `limit` are held, keep them so for
   * `settleMs` (time for any excess connection to show up), then release the oldest; once `total`
   * connections have arrived, release all. `maxHeld` then counts connections the client had open at
   * once without racing the closes of finished ones.
   */
  gate?: { limit: number; total: number; settleMs: number };
}

/** A TLS server presenting `cert` exactly as given. Counts connections, including concurrent ones. */
export async function tlsServer(options: TlsServerOptions): Promise<TlsTestServer> {
  const host = options.host ?? "127.0.0.1";
  const tlsOptions: TlsOptions = { cert: options.cert, key: options.key };
  if (options.maxVersion) tlsOptions.maxVersion = options.maxVersion;
  if (options.clientCa) Object.assign(tlsOptions, { ca: options.clientCa, requestCert: true, rejectUnauthorized: true });
  const serverNames: (string | false | null)[] = [];
  // Recorded from the ClientHello, so the list is complete as soon as the client's handshake is.
  tlsOptions.SNICallback = (name, callback) => {
    serverNames.push(name);
    callback(null);
  };
  const tls = createTlsServer(tlsOptions);
  tls.on("tlsClientError", () => undefined);
  tls.on("secureConnection", (socket) => {
    socket.on("error", () => undefined);
    // Say something, as a server that accepted the client does, then close.
    socket.end("hello\n");
  });
  // TCP in front, so connections are counted at accept time and can be held before the handshake.
  const held: Socket[] = [];
  let arrived = 0;
  let maxHeld = 0;
  let settling: NodeJS.Timeout | undefined;
  const start = (socket: Socket): void => {
    if (!socket.destroyed) tls.emit("connection", socket);
  };
  const releaseOne = (): void => {
    settling = undefined;
    const socket = held.shift();
    if (socket) start(socket);
    if (options.gate && held.length >= options.gate.limit) settling = setTimeout(releaseOne, options.gate.settleMs);
  };
  const tcp = createNetServer({ pauseOnConnect: true }, (socket) => {
    const gate = options.gate;
    if (!gate) return start(socket);
    arrived++;
    held.push(socket);
    maxHeld = Math.max(maxHeld, held.length);
    if (arrived >= gate.total) {
      clearTimeout(settling);
      settling = undefined;
      for (const waiting of held.splice(0)) start(waiting);
    } else if (held.length >= gate.limit && !settling) {
      settling = setTimeout(releaseOne, gate.settleMs);
    }
  });
  const { sockets, stats } = track(tcp);
  const port = await listen(tcp, host);
  const server = countingServer(host, port, stats, () => {
    clearTimeout(settling);
    return closeAll(tcp, sockets);
  });
  return Object.defineProperties(server, {
    maxHeld: { get: () => maxHeld, enumerable: true },
    serverNames: { value: serverNames, enumerable: true },
  }) as TlsTestServer;
}

/** Accepts TCP and never says a word. */
export async function silentServer(host: LoopbackHost = "127.0.0.1"): Promise<CountingServer> {
  const server = createNetServer(() => undefined);
  const { sockets, stats } = track(server);
  const port = await listen(server, host);
  return countingServer(host, port, stats, () => closeAll(server, sockets));
}

/**
 * Answers the ClientHello with `bytes` of one-byte handshake records (a record header for every
 * byte), as fast as the client reads them: a peer that makes a chain reader which copies its buffer
 * per record do quadratic work. Stops by itself after `bytes`.
 */
export async function recordFloodServer(bytes = 2 * 1024 * 1024, host: LoopbackHost = "127.0.0.1"): Promise<TestServer> {
  const record = (byte: number) => Buffer.from([0x16, 0x03, 0x03, 0x00, 0x01, byte]);
  const server = createNetServer((socket) => {
    socket.once("data", () => {
      let sent = 0;
      const pump = (): void => {
        while (sent < bytes && !socket.destroyed) {
          // A ServerHello header announcing 16 KiB (under OpenSSL's limit, so it keeps reading), then filler.
          const chunk = Buffer.concat(Array.from({ length: 1024 }, (_, i) => record([0x02, 0x00, 0x40, 0x00][sent + i] ?? 0xff)));
          sent += 1024;
          if (!socket.write(chunk)) return void socket.once("drain", pump);
        }
      };
      pump();
    });
    socket.on("error", () => undefined);
  });
  const { sockets } = track(server);
  const port = await listen(server, host);
  return { host, port, address: addressOf(host, port), close: () => closeAll(server, sockets) };
}

/** Speaks plain HTTP/1.1: answers whatever arrives with a 400, as a web server does to a ClientHello. */
export async function plainHttpServer(host: LoopbackHost = "127.0.0.1"): Promise<TestServer> {
  const server = createNetServer((socket) => {
    socket.once("data", () => {
      socket.end("HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 11\r\nConnection: close\r\n\r\nBad Request");
    });
  });
  const { sockets } = track(server);
  const port = await listen(server, host);
  return { host, port, address: addressOf(host, port), close: () => closeAll(server, sockets) };
}

/** Reads the ClientHello, then resets the connection (TCP RST) in the middle of the handshake. */
export async function resetServer(host: LoopbackHost = "127.0.0.1"): Promise<TestServer> {
  const server = createNetServer((socket) => {
    socket.once("data", () => socket.resetAndDestroy());
  });
  const { sockets } = track(server);
  const port = await listen(server, host);
  return { host, port, address: addressOf(host, port), close: () => closeAll(server, sockets) };
}

/**
 * A TCP proxy in front of a real TLS server that forwards the server's first TLS record (the
 * ServerHello) and then closes both sides.
 */
export async function closeAfterServerHello(upstream: TestServer, host: LoopbackHost = "127.0.0.1"): Promise<TestServer> {
  const server = createNetServer((client) => {
    const backend = netConnect({ host: upstream.host, port: upstream.port });
    backend.on("error", () => client.destroy());
    client.on("error", () => backend.destroy());
    client.on("data", (chunk) => backend.write(chunk));
    let pending = Buffer.alloc(0);
    backend.on("data", (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      if (pending.length < 5) return;
      const recordLength = 5 + pending.readUInt16BE(3);
      if (pending.length < recordLength) return;
      backend.destroy();
      client.end(pending.subarray(0, recordLength));
    });
  });
  const { sockets } = track(server);
  const port = await listen(server, host);
  return { host, port, address: addressOf(host, port), close: () => closeAll(server, sockets) };
}

/**
 * A port whose connections never complete: a listener in a child process whose event loop is
 * blocked (so it never accepts) with a listen backlog of 1, filled by held connections (Node reads a backlog of 0 as its default). Further
 * SYNs are dropped by the kernel, so a connect there waits until the client gives up.
 */
export async function blackholePort(host: LoopbackHost = "127.0.0.1"): Promise<TestServer> {
  const script = `
    const net = require("node:net");
    const fs = require("node:fs");
    const server = net.createServer();
    server.listen({ port: 0, host: ${JSON.stringify(host)}, backlog: 1 }, () => {
      fs.writeSync(1, server.address().port + "\\n");
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
    });`;
  const child: ChildProcess = spawn(process.execPath, ["-e", script], { stdio: ["ignore", "pipe", "inherit"] });
  const exited = once(child, "exit");
  const [line] = (await once(child.stdout as NodeJS.ReadableStream, "data")) as [Buffer];
  const port = Number(line.toString().trim());
  // Fill the accept queue: backlog 1 holds two completed connections on Linux, never accepted here;
  // every later SYN is dropped.
  const fillers: Socket[] = [];
  for (let i = 0; i < 2; i++) {
    const filler = netConnect({ host, port });
    filler.on("error", () => undefined);
    fillers.push(filler);
    await once(filler, "connect");
  }
  return {
    host,
    port,
    address: addressOf(host, port),
    close: async () => {
      for (const filler of fillers) filler.destroy();
      child.kill("SIGKILL");
      await exited;
    },
  };
}

/** A loopback port with nothing listening: bound, noted and closed again. */
export async function closedPort(host: LoopbackHost = "127.0.0.1"): Promise<number> {
  const server = createNetServer();
  const port = await listen(server, host);
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
