/**
 * Small STARTTLS peers on loopback, written to the protocols' specifications, for what the real
 * servers in test/starttls.test.ts cannot be made to do: refuse in each protocol's own words, talk
 * without end, announce huge lengths, or be the one server a discovery test needs. Each connection
 * runs `script`; `upgrade` turns a connection into a TLS server socket with the given certificate.
 */
import { once } from "node:events";
import { createServer, type AddressInfo, type Socket } from "node:net";
import { Duplex } from "node:stream";
import { TLSSocket } from "node:tls";

export interface ScriptedServer {
  host: "127.0.0.1";
  port: number;
  address: string;
  /** Bytes each connection received, in order of connection. */
  readonly received: string[];
  close(): Promise<void>;
}

/** Starts a TCP server on 127.0.0.1 whose connections run `script`. */
export async function scriptedServer(script: (socket: Socket, received: () => string) => void): Promise<ScriptedServer> {
  const sockets = new Set<Socket>();
  const received: string[] = [];
  const server = createServer((socket) => {
    sockets.add(socket);
    const index = received.push("") - 1;
    socket.on("data", (chunk: Buffer) => {
      // Keeps what the client said before TLS (bounded: a test client says little).
      if ((received[index] as string).length < 4096) received[index] += chunk.toString("latin1");
    });
    socket.on("error", () => undefined);
    socket.on("close", () => sockets.delete(socket));
    script(socket, () => received[index] as string);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as AddressInfo).port;
  return {
    host: "127.0.0.1",
    port,
    address: `127.0.0.1:${port}`,
    received,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Calls `then` with each line the client sends (CRLF or LF ended), until it returns false. */
export function onLines(socket: Socket, then: (line: string) => boolean | void): void {
  let pending = "";
  const onData = (chunk: Buffer): void => {
    pending += chunk.toString("latin1");
    for (let end = pending.indexOf("\n"); end >= 0; end = pending.indexOf("\n")) {
      const line = pending.slice(0, end).replace(/\r$/, "");
      pending = pending.slice(end + 1);
      if (then(line) === false) {
        socket.off("data", onData);
        return;
      }
    }
  };
  socket.on("data", onData);
}

/**
 * Starts TLS as the server on a connection whose STARTTLS exchange is over. `early` is what the
 * client sent after its last plain-text request, already read: its first TLS bytes, when it did not
 * wait for an answer (MySQL's SSLRequest has none).
 */
export function upgrade(socket: Socket, tls: { cert: string; key: string }, early?: Buffer): TLSSocket {
  const stream = new Duplex({
    read: () => undefined,
    write: (chunk: Buffer, _encoding, done) => void socket.write(chunk, () => done()),
  });
  if (early?.length) stream.push(early);
  socket.on("data", (chunk: Buffer) => stream.push(chunk));
  socket.once("end", () => stream.push(null));
  const secure = new TLSSocket(stream, { isServer: true, cert: tls.cert, key: tls.key });
  secure.on("error", () => socket.destroy());
  return secure;
}

/**
 * An SMTP server after RFC 5321 and RFC 3207: greeting, EHLO listing STARTTLS (unless `offer` is
 * false), STARTTLS answered 220 and TLS with `tls`.
 */
export function smtpServer(tls: { cert: string; key: string }, offer = true): Promise<ScriptedServer> {
  return scriptedServer((socket) => {
    socket.write("220-mail.test ESMTP double\r\n220 ready\r\n");
    onLines(socket, (line) => {
      const verb = line.split(" ")[0]?.toUpperCase();
      if (verb === "EHLO") socket.write(`250-mail.test greets you\r\n250-PIPELINING\r\n${offer ? "250-STARTTLS\r\n" : ""}250 8BITMIME\r\n`);
      else if (verb === "STARTTLS" && offer) {
        socket.write("220 2.0.0 go ahead\r\n");
        upgrade(socket, tls);
        return false;
      } else if (verb === "QUIT") socket.end("221 bye\r\n");
      else socket.write("502 5.5.1 not implemented\r\n");
      return true;
    });
  });
}

/**
 * Writes `pattern` again and again, 16 KiB at a time and one write per turn of the event loop (the
 * client runs in the same process), until the socket closes or `limit` bytes were sent.
 */
export function flood(socket: Socket, pattern: string | Buffer, limit = 64 * 1024 * 1024): void {
  const unit = Buffer.from(pattern);
  const block = Buffer.concat(Array.from({ length: Math.max(1, Math.floor(16 * 1024 / unit.length)) }, () => unit));
  let sent = 0;
  const pump = (): void => {
    if (sent >= limit || socket.destroyed) return;
    sent += block.length;
    if (socket.write(block)) setImmediate(pump);
    else socket.once("drain", pump);
  };
  pump();
}
