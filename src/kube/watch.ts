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
  /**
   * Every event, bookmarks included, in arrival order. When it returns a promise, the stream is
   * paused and the next event waits for it, so a slow handler holds back the server, not memory.
   */
  onEvent(event: WatchEvent): void | Promise<void>;
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
    // A line may arrive in many chunks: they are kept apart and joined once its newline arrives, so
    // a long line costs its length once, not once per chunk.
    const partial: string[] = [];
    let partialLength = 0;
    const lines: string[] = [];
    let busy = false;
    const handle = (line: string): Promise<void> | undefined => {
      let event: WatchEvent;
      try {
        event = JSON.parse(line) as WatchEvent;
      } catch {
        finish(new KubeApiError(0, "the watch stream sent a line that is not JSON", "BadStream"));
        return undefined;
      }
      if (typeof event?.type !== "string" || typeof event.object !== "object" || event.object === null) {
        finish(new KubeApiError(0, "the watch stream sent an event without type or object", "BadStream"));
        return undefined;
      }
      return handlers.onEvent(event) ?? undefined;
    };
    const drain = (): void => {
      while (!ended && !busy && lines.length > 0) {
        const pending = handle(lines.shift() as string);
        if (!pending) continue;
        busy = true;
        res.pause();
        void pending.then(() => {
          busy = false;
          if (ended) return;
          res.resume();
          drain();
        });
      }
    };
    res.setEncoding("utf8");
    res.on("data", (chunk: string) => {
      let start = 0;
      for (let newline = chunk.indexOf("\n"); newline >= 0; newline = chunk.indexOf("\n", start)) {
        partial.push(chunk.slice(start, newline));
        const line = partial.join("").trim();
        partial.length = 0;
        partialLength = 0;
        if (line) lines.push(line);
        start = newline + 1;
      }
      if (start < chunk.length) {
        partial.push(chunk.slice(start));
        partialLength += chunk.length - start;
        if (partialLength > MAX_LINE_BYTES) finish(new KubeApiError(0, "a watch event is larger than 64 MiB", "BadStream"));
      }
      drain();
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
