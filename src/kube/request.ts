import type { IncomingMessage } from "node:http";
import { request, type Agent, type RequestOptions } from "node:https";
import type { KubeConfig } from "@kubernetes/client-node";
import { KubeApiError } from "./errors.js";

/** The reason of a LIST page over its byte limit: the list asks for the same page with fewer objects. */
export const PAGE_TOO_LARGE = "PageTooLarge";

export interface ApiRequest {
  url: URL;
  options: RequestOptions;
  /** The per-request agent the client configuration made; destroy it when the request ends. */
  agent: Agent | undefined;
}

/** A GET on `path` with the client configuration's server, TLS and authentication. */
export async function apiRequest(kc: KubeConfig, path: string, query: Record<string, string | undefined>): Promise<ApiRequest> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new KubeApiError(0, "no current cluster in the client configuration", "Config");
  const url = new URL(cluster.server.replace(/\/+$/, "") + path);
  for (const [k, v] of Object.entries(query)) if (v !== undefined) url.searchParams.set(k, v);
  const options: RequestOptions = { method: "GET", headers: { Accept: "application/json" } };
  await kc.applyToHTTPSOptions(options);
  return { url, options, agent: options.agent as Agent | undefined };
}

export interface ListResponse<T> {
  items: T[];
  metadata?: { resourceVersion?: string; continue?: string };
}

/**
 * One LIST page as plain JSON, of at most `maxBytes` (kubernetes.maxPageBytes: the page is held and
 * parsed at once, and JSON.parse of 32 MiB holds the event loop for about a tenth of a second). Lists
 * go through here rather than client-node's typed API, which copies every object of a page into
 * model classes: for Secrets, that doubled the garbage of a list and with it the time the garbage
 * collector took.
 */
export async function listJson<T>(kc: KubeConfig, path: string, query: Record<string, string | undefined>, signal: AbortSignal, maxBytes: number): Promise<ListResponse<T>> {
  const { url, options, agent } = await apiRequest(kc, path, query);
  try {
    return await new Promise<ListResponse<T>>((resolve, reject) => {
      const req = request(url, { ...options, signal }, (res: IncomingMessage) => {
        const status = res.statusCode ?? 0;
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (chunk: Buffer) => {
          size += chunk.length;
          if (size > maxBytes) {
            // Rejected before the socket is destroyed, whose error would otherwise win.
            reject(new KubeApiError(0, `a LIST page is larger than ${maxBytes} bytes`, PAGE_TOO_LARGE));
            res.destroy();
            return;
          }
          chunks.push(chunk);
        });
        res.on("end", () => {
          if (!res.complete) return reject(KubeApiError.fromNetwork(new Error("list response aborted")));
          const body = Buffer.concat(chunks).toString("utf8");
          if (status !== 200) return reject(KubeApiError.fromResponse(status, body, res.headers["retry-after"]));
          try {
            const page = JSON.parse(body) as ListResponse<T>;
            if (!Array.isArray(page.items)) throw new Error("no items");
            resolve(page);
          } catch {
            reject(new KubeApiError(0, "a LIST response is not a list", "BadResponse"));
          }
        });
        res.on("aborted", () => reject(KubeApiError.fromNetwork(new Error("list response aborted"))));
        res.on("error", (err) => reject(KubeApiError.fromNetwork(err)));
      });
      req.on("error", (err) => reject(KubeApiError.fromNetwork(err)));
      req.end();
    });
  } finally {
    agent?.destroy();
  }
}
