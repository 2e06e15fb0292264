import type { Server as HttpServer, IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { Server as TlsServer } from "node:tls";

/**
 * The longest a Node timer can wait: Node's own request-deadline check is set to run this rarely,
 * that is never, since ours replaces it.
 */
export const NEVER_MS = 2 ** 31 - 1;

export interface RequestDeadlines {
  /** A request must arrive whole within this of its connection opening. */
  requestMs: number;
  /** After a response, the next request must arrive whole within this (the keep-alive wait plus requestMs). */
  nextRequestMs: number;
}

interface Connection {
  timer?: NodeJS.Timeout;
  /** Requests whose headers arrived and whose response is not done yet. */
  inFlight: Set<IncomingMessage>;
}

const REQUEST_TIMEOUT_RESPONSE = "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";

/**
 * Cuts a connection that has not sent a whole request in time: a client trickling a byte at a time
 * resets every inactivity timeout, so a fixed deadline per request is what bounds it. The deadline
 * covers receiving a request, not answering it: a request that has arrived whole is never cut here.
 *
 * Node's own deadline (headersTimeout, requestTimeout) is checked by an interval that runs from
 * `listen` on, whether or not anyone is connected, and wakes an idle exporter every few seconds for
 * nothing. Here a connection holds one timer while it waits for a request, and an idle server holds
 * none. The server must be created with Node's check off (`disabledNodeDeadlines`).
 */
export function enforceRequestDeadlines(server: HttpServer, deadlines: RequestDeadlines): void {
  const connections = new WeakMap<Socket, Connection>();

  const judge = (socket: Socket, connection: Connection) => {
    let answering = false;
    for (const request of connection.inFlight) {
      if (!request.complete) return socket.destroy();
      answering = true;
    }
    // Whole requests being answered: the next deadline starts when their responses are done.
    if (answering) return;
    // Nothing is being answered: tell the client why, as Node does, before closing.
    if (socket.writable) socket.write(REQUEST_TIMEOUT_RESPONSE);
    socket.destroy();
  };
  // Timers run before the loop reads sockets: after a stall (a busy machine, a long scrape), a request
  // that reached the kernel in time may still be unread when its deadline fires. Judging after this
  // turn's reads (setImmediate runs after the poll phase) cuts only what truly came late.
  const expire = (socket: Socket, connection: Connection) => {
    const expired = connection.timer;
    setImmediate(() => {
      if (connection.timer === expired) judge(socket, connection);
    });
  };
  const arm = (socket: Socket, connection: Connection, ms: number) => {
    clearTimeout(connection.timer);
    connection.timer = setTimeout(expire, ms, socket, connection).unref();
  };

  // A TLS connection's deadline starts once its handshake is done (the handshake has its own timeout).
  server.on(server instanceof TlsServer ? "secureConnection" : "connection", (socket: Socket) => {
    const connection: Connection = { inFlight: new Set() };
    connections.set(socket, connection);
    arm(socket, connection, deadlines.requestMs);
    socket.once("close", () => clearTimeout(connection.timer));
  });

  server.on("request", (request: IncomingMessage, response: ServerResponse) => {
    const socket = request.socket;
    const connection = connections.get(socket);
    if (!connection) return;
    connection.inFlight.add(request);
    response.once("finish", () => {
      connection.inFlight.delete(request);
      if (connection.inFlight.size === 0) arm(socket, connection, deadlines.nextRequestMs);
    });
  });
}

/** Server options that turn off Node's own request-deadline check, for `enforceRequestDeadlines`. */
export const disabledNodeDeadlines = { headersTimeout: 0, requestTimeout: 0, connectionsCheckingInterval: NEVER_MS } as const;
