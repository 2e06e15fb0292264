import type { IncomingMessage } from "node:http";
import { request } from "node:https";
import type { KubeConfig } from "@kubernetes/client-node";
import { KubeApiError } from "./errors.js";
import { apiRequest } from "./request.js";

export interface WatchEvent {
  type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";
  object: Record<string, unknown>;
}

export interface WatchHandlers {
  /** The server accepted the watch (200); events follow. */
  onOpen?(): void;
  /** Every event, bookmarks included, in arrival order. */
  onEvent(event: WatchEvent): void;
  /** The stream ended: `null` when the server closed it cleanly, else why it failed. Called once. */
  onEnd(error: KubeApiError | null): void;
}

export interface WatchStream {
  /** Ends the stream; onEnd is not called after abort(). */
  abort(): void;
}

/** Largest watch line accepted (one object); a bigger one means something is wrong with the stream. */
const MAX_LINE_BYTES = 64 * 1024 * 1024;

/**
 * One WATCH request streamed line by line. Written on node:https with the client configuration's TLS
 * and authentication (`applyToHTTPSOptions`), instead of client-node's Watch, so that it can be
 * aborted before the response headers arrive, and a refused watch keeps its Status body (reason,
 * Retry-After) for the caller to act on.
 */
export async function openWatch(kc: KubeConfig, path: string, query: Record<string, string | undefined>, handlers: WatchHandlers): Promise<WatchStream> {
  const { url, options: opts, agent } = await apiRequest(kc, path, { ...query, watch: "true" });

  let ended = false;
  let aborted = false;
  const finish = (error: KubeApiError | null) => {
    if (ended) return;
    ended = true;
    req.destroy();
    agent?.destroy();
    if (!aborted) handlers.onEnd(error);
  };

  const req = request(url, opts, (res: IncomingMessage) => {
    const status = res.statusCode ?? 0;
    if (status !== 200) {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (c: Buffer) => {
        size += c.length;
        if (size <= 64 * 1024) chunks.push(c);
      });
      res.on("end", () => finish(KubeApiError.fromResponse(status, Buffer.concat(chunks).toString("utf8"), res.headers["retry-after"])));
      res.on("error", (err) => finish(KubeApiError.fromNetwork(err)));
      return;
    }
    handlers.onOpen?.();
    let buffer = "";
    res.setEncoding("utf8");
    res.on("data", (chunk: string) => {
      buffer += chunk;
      let newline: number;
      while (!ended && (newline = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, newline).trim();
        buffer = buffer.slice(newline + 1);
        if (!line) continue;
        let event: WatchEvent;
        try {
          event = JSON.parse(line) as WatchEvent;
        } catch {
          finish(new KubeApiError(0, "the watch stream sent a line that is not JSON", "BadStream"));
          return;
        }
        if (typeof event?.type !== "string" || typeof event.object !== "object" || event.object === null) {
          finish(new KubeApiError(0, "the watch stream sent an event without type or object", "BadStream"));
          return;
        }
        handlers.onEvent(event);
      }
      if (buffer.length > MAX_LINE_BYTES) finish(new KubeApiError(0, "a watch event is larger than 64 MiB", "BadStream"));
    });
    res.on("end", () => finish(res.complete ? null : KubeApiError.fromNetwork(new Error("watch response aborted"))));
    res.on("aborted", () => finish(KubeApiError.fromNetwork(new Error("watch response aborted"))));
    res.on("error", (err) => finish(KubeApiError.fromNetwork(err)));
    res.on("close", () => finish(res.complete ? null : KubeApiError.fromNetwork(new Error("watch connection closed"))));
  });
  req.on("error", (err) => finish(KubeApiError.fromNetwork(err)));
  req.end();
  return {
    abort() {
      aborted = true;
      finish(null);
    },
  };
}
