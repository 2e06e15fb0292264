/**
 * Small raw HTTPS clients for tests against the API server double: one-shot requests and watch
 * streams read line by line, plus a kubectl runner with an isolated HOME and discovery cache.
 */
import { execFile, spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import type { IncomingHttpHeaders } from "node:http";
import { request } from "node:https";
import type { FakeApiServer, WatchEvent } from "./apiserver.js";

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  /** Parsed body, or undefined when it is not JSON. */
  json: Record<string, unknown> | undefined;
}

export interface RawOptions {
  method?: string;
  /** Bearer token; null sends no Authorization header. Default: the double's token. */
  token?: string | null;
  headers?: Record<string, string>;
  body?: unknown;
}

/** One request to the double; rejects on network errors (reset, refused). */
export function raw(api: FakeApiServer, path: string, opts: RawOptions = {}): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { Accept: "application/json", ...opts.headers };
    const token = opts.token === undefined ? api.token : opts.token;
    if (token !== null) headers.Authorization = `Bearer ${token}`;
    let payload: Buffer | undefined;
    if (opts.body !== undefined) {
      payload = Buffer.from(typeof opts.body === "string" ? opts.body : JSON.stringify(opts.body));
      headers["Content-Type"] ??= "application/json";
    }
    const req = request(`${api.url}${path}`, { method: opts.method ?? "GET", headers, ca: api.caPem, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("error", reject);
      res.on("aborted", () => reject(new Error("response aborted")));
      res.on("end", () => {
        if (!res.complete) return reject(new Error("response incomplete"));
        const text = Buffer.concat(chunks).toString("utf8");
        let json: Record<string, unknown> | undefined;
        try {
          json = JSON.parse(text) as Record<string, unknown>;
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
    });
    req.on("error", reject);
    req.end(payload);
  });
}

/** A watch stream: events as they arrive, with a way to wait for one. */
export class RawWatch {
  readonly events: WatchEvent[] = [];
  status = 0;
  ended = false;
  #waiters = new Set<() => void>();
  #close: () => void = () => undefined;

  static open(api: FakeApiServer, path: string, token: string = api.token): Promise<RawWatch> {
    const w = new RawWatch();
    return new Promise((resolve, reject) => {
      const req = request(`${api.url}${path}`, { headers: { Authorization: `Bearer ${token}`, Accept: "application/json" }, ca: api.caPem, agent: false }, (res) => {
        w.status = res.statusCode ?? 0;
        let buf = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => {
          buf += c;
          let nl: number;
          while ((nl = buf.indexOf("\n")) >= 0) {
            const line = buf.slice(0, nl).trim();
            buf = buf.slice(nl + 1);
            if (line) w.events.push(JSON.parse(line) as WatchEvent);
          }
          w.#wake();
        });
        const end = () => {
          w.ended = true;
          w.#wake();
        };
        res.on("end", end);
        res.on("close", end);
        res.on("error", end);
        resolve(w);
      });
      w.#close = () => req.destroy();
      req.on("error", (err) => (w.status ? undefined : reject(err)));
      req.end();
    });
  }

  #wake(): void {
    for (const f of this.#waiters) f();
  }

  /** Resolves with the first event (from the beginning) that satisfies `pred`. */
  waitFor(pred: (e: WatchEvent) => boolean, timeoutMs = 5000): Promise<WatchEvent> {
    const got = () => this.events.map((x) => x.type).join(",");
    return this.#until<WatchEvent>(
      () => {
        const e = this.events.find(pred);
        if (e) return { value: e };
        if (this.ended) return { error: new Error(`watch ended without the expected event; got ${got()}`) };
        return undefined;
      },
      timeoutMs,
      () => `timed out waiting for a watch event; got ${got()}`,
    );
  }

  /** Resolves once the stream has ended. */
  waitEnd(timeoutMs = 5000): Promise<void> {
    return this.#until(() => (this.ended ? { value: undefined } : undefined), timeoutMs, () => "watch did not end");
  }

  /** Settles as `outcome` says once it says anything, checked on every event; rejects after `timeoutMs`. */
  #until<T>(outcome: () => { value: T } | { error: Error } | undefined, timeoutMs: number, timeoutMessage: () => string): Promise<T> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const settled = outcome();
        if (!settled) return;
        done();
        if ("error" in settled) reject(settled.error);
        else resolve(settled.value);
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(timeoutMessage()));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.#waiters.delete(check);
      };
      this.#waiters.add(check);
      check();
    });
  }

  close(): void {
    this.#close();
  }
}

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the real kubectl against a kubeconfig, with HOME and the discovery cache kept in `home`. */
export function kubectl(kubeconfig: string, home: string, args: string[], timeoutMs = 30_000): Promise<KubectlResult> {
  return new Promise((resolve) => {
    execFile(
      "kubectl",
      ["--kubeconfig", kubeconfig, "--cache-dir", `${home}/cache`, "--request-timeout", "20s", ...args],
      { env: { ...process.env, HOME: home, KUBECONFIG: "" }, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === "number" ? ((err as { code: number }).code) : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** Spawns a long-running kubectl (e.g. a watch); the caller kills it. */
export function spawnKubectl(kubeconfig: string, home: string, args: string[]): ChildProcessWithoutNullStreams {
  return spawn("kubectl", ["--kubeconfig", kubeconfig, "--cache-dir", `${home}/cache`, ...args], { env: { ...process.env, HOME: home, KUBECONFIG: "" } });
}

/** Splits a stream of concatenated (pretty-printed) JSON documents, as `kubectl -o json --watch` prints. */
export class JsonStreamSplitter {
  #buf = "";
  #depth = 0;
  #inString = false;
  #escape = false;
  #start = -1;

  push(chunk: string): unknown[] {
    const out: unknown[] = [];
    const base = this.#buf.length;
    this.#buf += chunk;
    for (let i = base; i < this.#buf.length; i++) {
      const ch = this.#buf[i];
      if (this.#inString) {
        if (this.#escape) this.#escape = false;
        else if (ch === "\\") this.#escape = true;
        else if (ch === '"') this.#inString = false;
        continue;
      }
      if (ch === '"') this.#inString = true;
      else if (ch === "{") {
        if (this.#depth++ === 0) this.#start = i;
      } else if (ch === "}" && --this.#depth === 0) {
        out.push(JSON.parse(this.#buf.slice(this.#start, i + 1)));
        this.#buf = this.#buf.slice(i + 1);
        i = -1;
        this.#start = -1;
      }
    }
    return out;
  }
}
