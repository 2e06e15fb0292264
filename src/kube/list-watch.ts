import type { KubeConfig } from "@kubernetes/client-node";
import type { KubernetesConfig } from "../config.js";
import type { Logger } from "../log.js";
import { KubeApiError } from "./errors.js";
import { PAGE_TOO_LARGE, listJson } from "./request.js";
import { openWatch, type WatchStream } from "./watch.js";

interface ListPage<T> {
  items: readonly T[];
  resourceVersion: string;
  /** Absent or "" on the last page. */
  continueToken?: string;
}

/** What the consumer of a list-and-watch does with what arrives. Calls never overlap. */
export interface ListWatchHandler<T> {
  /** A full list begins (first one, relist, resync). */
  listStarted?(): void;
  /** One page of the list; the page is dropped after this returns (or its promise settles). */
  listPage(items: readonly T[]): void | Promise<void>;
  /** The list is complete: held objects whose key (objectKey) is not in `seen` are gone. */
  listCompleted(seen: ReadonlySet<string>): void;
  /** A change delivered by the watch; the next one waits for a returned promise. */
  watchEvent(type: "ADDED" | "MODIFIED" | "DELETED", object: T): void | Promise<void>;
  /** The server refused a verb with 403 (a list: nothing in scope can be read). */
  forbidden(verb: "list" | "watch", error: KubeApiError): void;
  /** The verb works (again). */
  allowed(verb: "list" | "watch"): void;
}

/** Health events, for the owning source to count and to derive its `up` state from. */
export interface ListWatchReporter {
  /** A full relist, by reason: continue_expired, watch_expired, resync, watch_forbidden. */
  relisted(reason: string): void;
  /** A new watch request replacing an ended one, by reason (closed, silent, or a FailureKind). */
  watchRestarted(reason: string): void;
  /** A full list completed. */
  listSucceeded(durationSeconds: number): void;
  /** A request failed in a way that keeps the scope from being current (not 410, not a clean close). */
  failed(error: KubeApiError): void;
  /** A request worked after failures. */
  recovered(): void;
}

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
}

export interface ListWatchOptions<T> {
  /** Names this stream in logs, e.g. `secrets namespace=a fieldSelector=type=kubernetes.io/tls`. */
  description: string;
  kubeConfig: KubeConfig;
  /** The collection listed (as plain JSON, src/kube/request.ts) and watched, e.g. /api/v1/namespaces/a/secrets or /api/v1/secrets. */
  path: string;
  labelSelector?: string;
  fieldSelector?: string;
  /** Objects per LIST page. */
  pageSize: number;
  /** A page of more bytes is asked for again with half as many objects. */
  maxPageBytes: number;
  /** Full relist this often (± 10 % jitter) to reconcile anything a watch missed. */
  resyncIntervalMs: number;
  /** A watch without any event or bookmark for this long is restarted. */
  watchSilenceMs: number;
  /** One LIST page that takes longer is aborted and retried. */
  requestTimeoutMs: number;
  backoff: BackoffOptions;
  handler: ListWatchHandler<T>;
  reporter: ListWatchReporter;
  log: Logger;
}

/** A ListWatch's page size and timings, from the configuration's `kubernetes` section (seconds there). */
export function listWatchPacing(kube: KubernetesConfig): Pick<ListWatchOptions<unknown>, "pageSize" | "maxPageBytes" | "resyncIntervalMs" | "watchSilenceMs" | "requestTimeoutMs" | "backoff"> {
  return {
    pageSize: kube.pageSize,
    maxPageBytes: kube.maxPageBytes,
    resyncIntervalMs: kube.resyncInterval * 1000,
    watchSilenceMs: kube.watchTimeout * 1000,
    requestTimeoutMs: kube.requestTimeout * 1000,
    backoff: { initialMs: kube.backoff.initial * 1000, maxMs: kube.backoff.max * 1000 },
  };
}

type WatchOutcome =
  | { end: "closed"; rv: string; events: number }
  | { end: "silent" | "resync" | "expired" | "stopped"; rv: string; events: number }
  | { end: "error"; rv: string; events: number; error: KubeApiError };

interface ObjectMeta {
  metadata?: { resourceVersion?: string; namespace?: string; name?: string };
}

/** An object's identity within its resource: `namespace/name` (`/name` when cluster-scoped). */
export function objectKey(object: ObjectMeta): string {
  return `${object.metadata?.namespace ?? ""}/${object.metadata?.name ?? ""}`;
}

/** Delay before retry `attempt` (0-based): exponential, capped, with jitter in [d/2, d]; never below Retry-After. */
export function backoffDelay(attempt: number, backoff: BackoffOptions, retryAfterSeconds?: number, random: () => number = Math.random): number {
  const base = Math.min(backoff.maxMs, backoff.initialMs * 2 ** Math.min(attempt, 30));
  const jittered = base / 2 + (random() * base) / 2;
  return Math.max(jittered, (retryAfterSeconds ?? 0) * 1000);
}

/**
 * The list-and-watch loop every Kubernetes source shares, generic over the resource: a paginated
 * LIST (each page handed over and dropped), then a WATCH from the list's resourceVersion with
 * bookmarks. 410 Gone (a continue token or a watch resourceVersion too old) → relist from scratch;
 * any other failure → exponential backoff with jitter (at least Retry-After) and a resume: the same
 * page again with the same continue token, or the watch from the last resourceVersion seen. A watch
 * silent for longer than `watchSilenceMs` (bookmarks count as traffic) is restarted; every
 * `resyncIntervalMs` the whole scope is relisted, and the handler reconciles what was missed.
 * A 403 on the list is reported to the handler and retried with backoff, so a permission granted
 * later is picked up; a 403 on the watch alone degrades to relisting on the backoff schedule.
 */
export class ListWatch<T extends ObjectMeta> {
  readonly #o: ListWatchOptions<T>;
  #stopped = false;
  #loop: Promise<void> | undefined;
  #synced = false;
  #firstSync: { promise: Promise<void>; resolve: () => void };
  readonly #wakers = new Set<() => void>();
  readonly #listAborts = new Set<AbortController>();
  #stopWatch: (() => void) | undefined;
  #failing = false;
  /** Consecutive watches refused with 403, for the relist backoff without watch permission. */
  #watchRefusals = 0;

  constructor(options: ListWatchOptions<T>) {
    this.#o = options;
    let resolve!: () => void;
    const promise = new Promise<void>((r) => (resolve = r));
    this.#firstSync = { promise, resolve };
  }

  /** Starts the loop; resolves after the first full list (or a 403 on it). */
  start(): Promise<void> {
    this.#stopped = false;
    this.#loop ??= this.#run().catch((err: unknown) => {
      this.#o.log.error({ stream: this.#o.description, err }, "list-and-watch loop failed");
    });
    return this.#firstSync.promise;
  }

  /**
   * One full list and nothing after it (for one-shot scans). Failures other than 410 and 403 are
   * retried `attempts` times, then thrown.
   */
  async listOnce(attempts = 3): Promise<void> {
    await this.#list(attempts);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const abort of this.#listAborts) abort.abort();
    this.#stopWatch?.();
    for (const wake of this.#wakers) wake();
    await this.#loop;
    this.#loop = undefined;
  }

  #markSynced(): void {
    if (this.#synced) return;
    this.#synced = true;
    this.#firstSync.resolve();
  }

  #fail(error: KubeApiError): void {
    this.#failing = true;
    this.#o.reporter.failed(error);
  }

  #ok(): void {
    if (!this.#failing) return;
    this.#failing = false;
    this.#o.reporter.recovered();
  }

  #sleep(ms: number): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.#wakers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.#wakers.add(wake);
    });
  }

  #delay(attempt: number, error?: KubeApiError): number {
    return backoffDelay(attempt, this.#o.backoff, error?.retryAfterSeconds);
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      const rv = await this.#list(Infinity);
      if (this.#stopped) return;
      if (rv === undefined) continue; // refused (403): #list already waited
      const reason = await this.#watchUntilRelist(rv);
      if (reason) this.#o.reporter.relisted(reason);
    }
  }

  /**
   * A full list; returns its resourceVersion, or undefined when stopped or refused with 403.
   * `attempts` bounds retries of other failures (then the error is thrown).
   */
  async #list(attempts: number): Promise<string | undefined> {
    const o = this.#o;
    const started = performance.now();
    let token: string | undefined;
    let failures = 0;
    let expiredInARow = 0;
    let seen = new Set<string>();
    const restart = () => {
      seen = new Set();
      o.handler.listStarted?.();
    };
    restart();
    // The next page is requested before this one is processed, so the server's and the network's
    // work overlaps parsing; at most two pages are held at once.
    let prefetched: Promise<ListPage<T>> | undefined;
    // Halved for the rest of this list whenever a page comes back over maxPageBytes.
    let pageSize = o.pageSize;
    for (;;) {
      if (this.#stopped) return undefined;
      const request = prefetched ?? this.#requestPage(token, pageSize);
      prefetched = undefined;
      let page: ListPage<T>;
      try {
        page = await request;
      } catch (thrown) {
        if (this.#stopped) return undefined;
        const error = KubeApiError.from(thrown);
        if (error.kind === "expired") {
          // The continue token outlived the server's history: the list must start over to be consistent.
          o.reporter.relisted("continue_expired");
          o.log.info({ stream: o.description }, "continue token expired during the list; listing again from the start");
          token = undefined;
          restart();
          if (expiredInARow++ > 0) await this.#sleep(this.#delay(expiredInARow - 1));
          continue;
        }
        if (error.reason === PAGE_TOO_LARGE && pageSize > 1) {
          // Large objects (Secrets of a megabyte each) make a page too big to hold and parse at
          // once: the same page again, with half as many objects, until it fits in maxPageBytes.
          pageSize = Math.max(1, Math.floor(pageSize / 2));
          o.log.info({ stream: o.description, pageSize }, "a list page was too large; asking for smaller pages");
          continue;
        }
        if (error.kind === "forbidden") {
          o.handler.forbidden("list", error);
          this.#ok(); // the server answered: the API is reachable, the scope is reported as an error location
          this.#markSynced();
          if (attempts !== Infinity) return undefined;
          await this.#sleep(this.#delay(failures++));
          token = undefined;
          restart();
          continue;
        }
        this.#fail(error);
        o.log.warn({ stream: o.description, code: error.code, reason: error.reason, err: error.message }, "list request failed; retrying");
        if (++failures >= attempts) throw error;
        await this.#sleep(this.#delay(failures - 1, error));
        continue;
      }
      if (page.continueToken) {
        prefetched = this.#requestPage(page.continueToken, pageSize);
        prefetched.catch(() => undefined); // handled when awaited
      }
      this.#ok();
      o.handler.allowed("list");
      failures = 0;
      expiredInARow = 0;
      for (const item of page.items) seen.add(objectKey(item));
      await o.handler.listPage(page.items);
      if (this.#stopped) return undefined;
      if (!page.continueToken) {
        o.handler.listCompleted(seen);
        o.reporter.listSucceeded((performance.now() - started) / 1000);
        this.#markSynced();
        return page.resourceVersion;
      }
      token = page.continueToken;
    }
  }

  /** One LIST page request, aborted by stop() or after the request timeout. */
  async #requestPage(continueToken: string | undefined, pageSize: number): Promise<ListPage<T>> {
    const o = this.#o;
    const abort = new AbortController();
    this.#listAborts.add(abort);
    const timer = setTimeout(() => abort.abort(), o.requestTimeoutMs);
    try {
      const query = { limit: String(pageSize), continue: continueToken, labelSelector: o.labelSelector, fieldSelector: o.fieldSelector };
      const page = await listJson<T>(o.kubeConfig, o.path, query, abort.signal, o.maxPageBytes);
      return { items: page.items, resourceVersion: page.metadata?.resourceVersion ?? "", continueToken: page.metadata?.continue };
    } finally {
      clearTimeout(timer);
      this.#listAborts.delete(abort);
    }
  }

  /** Watches from `rv` until a relist is due; returns its reason (undefined when stopped). */
  async #watchUntilRelist(startRv: string): Promise<string | undefined> {
    const o = this.#o;
    const resyncAt = Date.now() + o.resyncIntervalMs * (0.9 + Math.random() * 0.2);
    let rv = startRv;
    let failures = 0;
    let emptyCloses = 0;
    while (!this.#stopped) {
      const left = resyncAt - Date.now();
      if (left <= 0) return "resync";
      const outcome = await this.#watchOnce(rv, left);
      rv = outcome.rv;
      switch (outcome.end) {
        case "stopped":
          return undefined;
        case "resync":
          return "resync";
        case "expired":
          o.log.info({ stream: o.description }, "watch resourceVersion expired; listing again");
          return "watch_expired";
        case "silent":
          o.log.warn({ stream: o.description, seconds: o.watchSilenceMs / 1000 }, "watch silent for too long; restarting it");
          o.reporter.watchRestarted("silent");
          continue;
        case "closed":
          o.reporter.watchRestarted("closed");
          // A server that closes watches at once, over and over, gets backoff rather than a hot loop.
          emptyCloses = outcome.events > 0 ? 0 : emptyCloses + 1;
          if (emptyCloses > 1) await this.#sleep(this.#delay(emptyCloses - 2));
          continue;
        case "error": {
          const error = outcome.error;
          o.reporter.watchRestarted(error.kind);
          if (outcome.events > 0) failures = 0;
          if (error.kind === "forbidden") {
            o.handler.forbidden("watch", error);
            // Without watch permission the scope is kept current by relisting on the backoff schedule.
            await this.#sleep(this.#delay(this.#watchRefusals++));
            return "watch_forbidden";
          }
          this.#fail(error);
          o.log.warn({ stream: o.description, code: error.code, reason: error.reason, err: error.message }, "watch failed; resuming after backoff");
          await this.#sleep(this.#delay(failures++, error));
          continue;
        }
      }
    }
    return undefined;
  }

  #watchOnce(rv: string, maxMs: number): Promise<WatchOutcome> {
    const o = this.#o;
    return new Promise((resolve) => {
      let lastRv = rv;
      let events = 0;
      let done = false;
      let stream: WatchStream | undefined;
      let silence: NodeJS.Timeout | undefined;
      /** The event being handled, awaited before the watch counts as ended: handler calls never overlap. */
      let handling: Promise<void> | undefined;
      const end = (outcome: { end: "closed" | "silent" | "resync" | "expired" | "stopped" } | { end: "error"; error: KubeApiError }) => {
        if (done) return;
        done = true;
        clearTimeout(silence);
        clearTimeout(resync);
        this.#stopWatch = undefined;
        stream?.abort();
        void (handling ?? Promise.resolve()).then(() => resolve({ ...outcome, rv: lastRv, events } as WatchOutcome));
      };
      const arm = () => {
        clearTimeout(silence);
        silence = setTimeout(() => end({ end: "silent" }), o.watchSilenceMs);
      };
      const resync = setTimeout(() => end({ end: "resync" }), maxMs);
      arm();
      this.#stopWatch = () => end({ end: "stopped" });
      // The server ends the watch by itself within its own bound (a random 5–10 min, as client-go asks).
      const timeoutSeconds = String(Math.round(300 + Math.random() * 300));
      const query = { resourceVersion: rv, allowWatchBookmarks: "true", labelSelector: o.labelSelector, fieldSelector: o.fieldSelector, timeoutSeconds };
      openWatch(o.kubeConfig, o.path, query, {
        onOpen: () => {
          if (done) return;
          this.#watchRefusals = 0;
          this.#ok();
          o.handler.allowed("watch");
        },
        onEvent: (event) => {
          if (done) return undefined;
          arm();
          if (event.type === "ERROR") {
            const error = KubeApiError.fromStatus(0, event.object);
            end(error.kind === "expired" ? { end: "expired" } : { end: "error", error });
            return undefined;
          }
          const objectRv = (event.object as ObjectMeta).metadata?.resourceVersion;
          if (objectRv) lastRv = objectRv;
          if (event.type === "BOOKMARK") return undefined;
          events++;
          const pending = o.handler.watchEvent(event.type, event.object as T);
          if (!pending) return undefined;
          handling = pending.finally(() => {
            handling = undefined;
          });
          return handling;
        },
        onEnd: (error) => {
          if (!error) end({ end: "closed" });
          else end(error.kind === "expired" ? { end: "expired" } : { end: "error", error });
        },
      }).then(
        (s) => {
          if (done) s.abort();
          else stream = s;
        },
        (err: unknown) => end({ end: "error", error: KubeApiError.from(err) }),
      );
    });
  }
}
