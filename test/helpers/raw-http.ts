import { once } from "node:events";
import { connect, type Socket } from "node:net";

/**
 * An HTTP/1.1 request written on a bare socket, for clients that fetch cannot play: one that never
 * reads its answer, one that leaves after the first bytes, one that leaves before any.
 */
export function rawRequest(port: number, { method = "GET", path = "/metrics", headers = {} }: { method?: string; path?: string; headers?: Record<string, string> } = {}): Socket {
  const socket = connect({ host: "127.0.0.1", port });
  // Being cut off by the server is what several of these clients are for.
  socket.on("error", () => {});
  const lines = [`${method} ${path} HTTP/1.1`, "Host: 127.0.0.1", ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`)];
  socket.write(`${lines.join("\r\n")}\r\n\r\n`);
  return socket;
}

/** Resolves once the request has left for the server; a client that leaves now has asked and gone. */
export function sent(socket: Socket): Promise<Socket> {
  return new Promise((resolve) => socket.write("", () => resolve(socket)));
}

/** Resolves with the first bytes of the answer, then stops reading: from here on the client stalls. */
export async function firstBytesThenStall(socket: Socket): Promise<Buffer> {
  const [chunk] = (await once(socket, "data")) as [Buffer];
  socket.pause();
  return chunk;
}

/** Everything the socket still delivers, up to the server closing it. */
export async function readToEnd(socket: Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  socket.on("data", (chunk: Buffer) => chunks.push(chunk));
  socket.resume();
  await once(socket, "close");
  return Buffer.concat(chunks);
}
