import { once } from "node:events";
import { createServer, type RequestListener, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { connect, type AddressInfo, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { setTimeout as delay } from "node:timers/promises";
import t, { type Test } from "tap";
import { makeCert, privateKeyPem } from "../scripts/certgen.js";
import { disabledNodeDeadlines, enforceRequestDeadlines, NEVER_MS } from "../src/request-deadline.js";
import { readToEnd, rawRequest } from "./helpers/raw-http.js";

/** Short deadlines, so that each case takes about a second. */
const DEADLINES = { requestMs: 600, nextRequestMs: 900 };
/** A trickling client gives up after this many bytes, far more time than any deadline here. */
const TRICKLE_BYTES = 100;
const TRICKLE_GAP_MS = 100;

const answerOk: RequestListener = (_request, response) => response.end("ok\n");

/** Starts `server` on loopback under `deadlines`; resolves with its port. */
async function listening(t: Test, server: Server, deadlines = DEADLINES): Promise<number> {
  enforceRequestDeadlines(server, deadlines);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  return (server.address() as AddressInfo).port;
}

async function serve(t: Test, handler: RequestListener = answerOk): Promise<{ port: number }> {
  return { port: await listening(t, createServer({ ...disabledNodeDeadlines, keepAliveTimeout: 60_000 }, handler)) };
}

/** Writes `text` a byte at a time until the server closes the socket; how many bytes it got out. */
async function trickle(socket: Socket, text: string): Promise<number> {
  let written = 0;
  for (const byte of text.padEnd(TRICKLE_BYTES, "x").slice(0, TRICKLE_BYTES)) {
    if (socket.destroyed || socket.writableEnded || socket.closed) break;
    socket.write(byte);
    written++;
    await delay(TRICKLE_GAP_MS);
  }
  return written;
}

/**
 * Resolves with what the socket received until it closed, and the milliseconds from `since` (taken
 * before the client connected or wrote what starts the deadline: the server's timer starts after it,
 * so a slow test process can only lengthen the figure).
 */
async function untilClosed(socket: Socket, since = performance.now()): Promise<{ ms: number; received: string }> {
  const received = (await readToEnd(socket)).toString("latin1");
  return { ms: performance.now() - since, received };
}

t.test("Node's own deadline check is off: its interval would wake an idle server", async (t) => {
  const server = createServer(disabledNodeDeadlines);
  t.equal(server.headersTimeout, 0);
  t.equal(server.requestTimeout, 0);
  t.equal((server as Server & { connectionsCheckingInterval: number }).connectionsCheckingInterval, NEVER_MS);
});

t.test("a connection that sends nothing is answered 408 and closed at the deadline", async (t) => {
  const { port } = await serve(t);
  const since = performance.now();
  const socket = connect({ host: "127.0.0.1", port });
  socket.on("error", () => {});
  const { ms, received } = await untilClosed(socket, since);
  t.match(received, /^HTTP\/1\.1 408 Request Timeout\r\n/);
  t.ok(ms >= DEADLINES.requestMs * 0.9, `closed after ${Math.round(ms)} ms, not before the deadline`);
});

t.test("headers trickled a byte at a time are cut at the deadline, whatever the inactivity timeouts", async (t) => {
  const { port } = await serve(t);
  const socket = connect({ host: "127.0.0.1", port });
  socket.on("error", () => {});
  await once(socket, "connect");
  const closed = untilClosed(socket);
  const written = await trickle(socket, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ");
  const { received } = await closed;
  t.ok(written < TRICKLE_BYTES, `cut after ${written} of ${TRICKLE_BYTES} bytes`);
  t.match(received, /^HTTP\/1\.1 408 /);
});

t.test("a body trickled after complete headers is cut at the same deadline", async (t) => {
  const { port } = await serve(t, (request, response) => {
    request.resume();
    request.on("end", () => response.end("got it\n"));
  });
  const socket = rawRequest(port, { method: "POST", path: "/", headers: { "content-length": String(TRICKLE_BYTES) } });
  const closed = untilClosed(socket);
  const written = await trickle(socket, "");
  const { received } = await closed;
  t.ok(written < TRICKLE_BYTES, `cut after ${written} of ${TRICKLE_BYTES} body bytes`);
  t.notMatch(received, "got it", "the request never completed");
});

t.test("a kept-alive connection used within the wait is never cut, however long it lives", async (t) => {
  // The wait after an answer is long here, so that a slow test process cannot overrun it.
  const port = await listening(t, createServer({ ...disabledNodeDeadlines, keepAliveTimeout: 60_000 }, answerOk), { ...DEADLINES, nextRequestMs: 10_000 });
  const socket = connect({ host: "127.0.0.1", port });
  socket.on("error", () => {});
  await once(socket, "connect");
  let answers = 0;
  socket.on("data", (chunk: Buffer) => (answers += chunk.toString("latin1").split("HTTP/1.1 200 OK").length - 1));
  // Four requests 500 ms apart: two seconds, more than three request deadlines, all on one connection.
  for (let i = 0; i < 4; i++) {
    socket.write("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    await delay(500);
  }
  t.equal(answers, 4);
  t.notOk(socket.destroyed, "still open");
  socket.destroy();
});

t.test("a slow answer is not the client's fault: the deadline covers receiving the request only", async (t) => {
  const { port } = await serve(t, (_request, response) => void delay(DEADLINES.nextRequestMs * 2).then(() => response.end("late\n")));
  const socket = rawRequest(port, { path: "/", headers: { connection: "close" } });
  const { received } = await untilClosed(socket);
  t.match(received, /^HTTP\/1\.1 200 OK\r\n/);
  t.match(received, /late\n$/);
});

t.test("a request that reached the server in time is answered, even when the event loop stalled past its deadline", async (t) => {
  const server = createServer({ ...disabledNodeDeadlines, keepAliveTimeout: 60_000 }, answerOk);
  const port = await listening(t, server);
  const accepted = once(server, "connection");
  const socket = connect({ host: "127.0.0.1", port });
  socket.on("error", () => {});
  await accepted;
  const answer = untilClosed(socket);
  socket.write("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
  // The request is in the server's socket buffer, unread; the loop is held past the deadline, so the
  // next turn runs the expired timer before it reads the socket.
  const stallUntil = performance.now() + DEADLINES.requestMs * 1.5;
  while (performance.now() < stallUntil);
  const { received } = await answer;
  t.match(received, /^HTTP\/1\.1 200 OK\r\n/);
});

t.test("after an answer, the next request must arrive whole within the keep-alive wait", async (t) => {
  const { port } = await serve(t);
  const since = performance.now();
  const socket = rawRequest(port, { path: "/" });
  const [first] = (await once(socket, "data")) as [Buffer];
  t.match(first.toString("latin1"), /^HTTP\/1\.1 200 OK/);
  const closed = untilClosed(socket, since);
  const written = await trickle(socket, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ");
  const { ms, received } = await closed;
  t.ok(written < TRICKLE_BYTES, `the second request was cut after ${written} bytes`);
  t.ok(ms >= DEADLINES.nextRequestMs * 0.9, `after ${Math.round(ms)} ms: the keep-alive wait is longer than a first request's deadline`);
  t.match(received, /HTTP\/1\.1 408 /);
});

t.test("over TLS the deadline starts after the handshake, and a silent client is cut", async (t) => {
  const leaf = await makeCert({ cn: "127.0.0.1", sans: ["127.0.0.1"] });
  const port = await listening(t, createHttpsServer({ ...disabledNodeDeadlines, cert: leaf.pem, key: await privateKeyPem(leaf) }, answerOk));
  const since = performance.now();
  const socket = tlsConnect({ host: "127.0.0.1", port, rejectUnauthorized: false });
  socket.on("error", () => {});
  const { ms, received } = await untilClosed(socket, since);
  t.match(received, /^HTTP\/1\.1 408 /);
  t.ok(ms >= DEADLINES.requestMs * 0.9, `closed after ${Math.round(ms)} ms`);
});
