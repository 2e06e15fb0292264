import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import type { KubeconfigEntry } from "./certs/kubeconfig.js";
import { CertReadError, type ReadErrorReason } from "./errors.js";

/** Decodes whose work the input chooses and whose code is not ours: they run here. */
export type DecodeTask =
  | { kind: "pkcs12"; bytes: Uint8Array; passphrases: readonly string[]; maxIterations: number }
  | { kind: "kubeconfig"; bytes: Uint8Array; baseDir: string | null };

/** A kubeconfig entry as it crosses the thread boundary: errors travel as their reason and message. */
export type WireKubeconfigEntry =
  | Exclude<KubeconfigEntry, { kind: "error" }>
  | { key: string; kind: "error"; reason: ReadErrorReason; message: string };

export type DecodeResult = { kind: "pkcs12"; certificates: Uint8Array[] } | { kind: "kubeconfig"; entries: WireKubeconfigEntry[] };

export interface DecodeRequest {
  id: number;
  task: DecodeTask;
}

export interface DecodeReply {
  /** 0 for the worker's first message: its modules are loaded and it takes work. */
  id: number;
  result?: DecodeResult;
  error?: { reason: ReadErrorReason; message: string };
}

export interface DecodePoolOptions {
  /** A decode running longer is stopped (its worker is terminated) and fails with `parse_timeout`. */
  timeoutMs: number;
  /** Worker threads at most; each is started on demand. */
  size?: number;
  /** A worker without work for this long is stopped, so an idle exporter holds no second heap. */
  idleMs?: number;
  /** Old-generation heap of one worker; a decode that outgrows it fails with `parse_timeout`. */
  heapMb?: number;
}

interface Pending {
  id: number;
  task: DecodeTask;
  resolve: (result: DecodeResult) => void;
  reject: (error: CertReadError) => void;
}

/** Starts the worker script beside this module: compiled, or from TypeScript sources (tests, development). */
function startWorker(heapMb: number): Worker {
  const script = import.meta.url.endsWith(".ts") ? "./decode-worker-source.mjs" : "./decode-worker.js";
  return new Worker(new URL(script, import.meta.url), { resourceLimits: { maxOldGenerationSizeMb: heapMb, maxYoungGenerationSizeMb: 8, stackSizeMb: 4 } });
}

class Slot {
  readonly worker: Worker;
  /** Loaded and listening; a decode's time budget starts only then, not while the worker boots. */
  ready = false;
  current: Pending | undefined;
  timer: NodeJS.Timeout | undefined;
  idle: NodeJS.Timeout | undefined;

  /** Started for a queued decode, so it holds the process until it settles; idle, it does not. */
  constructor(heapMb: number) {
    this.worker = startWorker(heapMb);
  }
}

/**
 * Runs decodes of untrusted bytes off the event loop, each with a time budget and a heap limit.
 *
 * Our own decoders (PEM, DER, PKCS#7) run inline: their work is linear in the input and the input
 * is capped, so their worst case is measured and small (bench/hostile.ts). node-forge's PKCS#12 and
 * the yaml library are not ours: PKCS#12 lets the file choose how many hash rounds a key takes, and
 * YAML parsing costs about a microsecond per byte. They run here, where a runaway decode costs one
 * location a `parse_timeout` error and a terminated worker, never the process its /healthz.
 */
export class DecodePool {
  readonly #timeoutMs: number;
  readonly #size: number;
  readonly #idleMs: number;
  readonly #heapMb: number;
  readonly #slots = new Set<Slot>();
  readonly #queue: Pending[] = [];
  #nextId = 1;
  #closed = false;

  constructor(options: DecodePoolOptions) {
    this.#timeoutMs = options.timeoutMs;
    this.#size = options.size ?? Math.max(1, Math.min(2, availableParallelism() - 1));
    this.#idleMs = options.idleMs ?? 30_000;
    this.#heapMb = options.heapMb ?? 64;
  }

  /** The certificates (DER) of a PKCS#12 bundle that one of `passphrases` opens; see openPkcs12. */
  async pkcs12(bytes: Uint8Array, passphrases: readonly string[], maxIterations: number): Promise<Uint8Array[]> {
    const result = await this.#run({ kind: "pkcs12", bytes, passphrases, maxIterations });
    return result.kind === "pkcs12" ? result.certificates : [];
  }

  /** The entries of a kubeconfig; see parseKubeconfig. */
  async kubeconfig(bytes: Uint8Array, baseDir: string | null): Promise<KubeconfigEntry[]> {
    const result = await this.#run({ kind: "kubeconfig", bytes, baseDir });
    if (result.kind !== "kubeconfig") return [];
    return result.entries.map((entry) => (entry.kind === "error" ? { key: entry.key, kind: "error", error: new CertReadError(entry.reason, entry.message) } : entry));
  }

  /** Decodes in a worker. Rejects with a CertReadError: the decoder's own, or `parse_timeout`. */
  #run(task: DecodeTask): Promise<DecodeResult> {
    if (this.#closed) return Promise.reject(new CertReadError("parse_timeout", "the exporter is shutting down"));
    return new Promise((resolve, reject) => {
      this.#queue.push({ id: this.#nextId++, task, resolve, reject });
      this.#dispatch();
    });
  }

  /** Stops every worker; queued and running decodes fail. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const pending of this.#queue.splice(0)) pending.reject(new CertReadError("parse_timeout", "the exporter is shutting down"));
    await Promise.all([...this.#slots].map((slot) => this.#retire(slot, "the exporter is shutting down")));
  }

  #dispatch(): void {
    while (this.#queue.length > 0) {
      const slot = this.#freeSlot();
      if (!slot?.ready) return;
      const pending = this.#queue.shift() as Pending;
      clearTimeout(slot.idle);
      slot.current = pending;
      slot.worker.ref();
      slot.timer = setTimeout(() => void this.#retire(slot, `decoding took longer than ${this.#timeoutMs} ms (limits.parseTimeout)`), this.#timeoutMs);
      // A copy of the bytes is transferred: the caller's Buffer may share memory with others.
      const bytes = new Uint8Array(pending.task.bytes);
      slot.worker.postMessage({ id: pending.id, task: { ...pending.task, bytes } } satisfies DecodeRequest, [bytes.buffer]);
    }
  }

  #freeSlot(): Slot | undefined {
    for (const slot of this.#slots) if (slot.ready && !slot.current) return slot;
    if (this.#slots.size >= this.#size) return undefined;
    const slot = new Slot(this.#heapMb);
    slot.worker.on("message", (reply: DecodeReply) => {
      if (reply.id !== 0) return this.#settle(slot, reply);
      slot.ready = true;
      this.#dispatch();
    });
    // A worker that dies (out of memory, a crash) fails its decode; the next decode gets a new worker.
    slot.worker.on("error", (err: Error & { code?: string }) => {
      const outOfMemory = err.code === "ERR_WORKER_OUT_OF_MEMORY";
      void this.#retire(slot, outOfMemory ? `decoding outgrew its ${this.#heapMb} MiB heap` : "the decoder failed");
    });
    slot.worker.on("exit", () => void this.#retire(slot, "the decoder stopped"));
    this.#slots.add(slot);
    return slot;
  }

  #settle(slot: Slot, reply: DecodeReply): void {
    const pending = slot.current;
    if (!pending || pending.id !== reply.id) return;
    clearTimeout(slot.timer);
    slot.current = undefined;
    slot.worker.unref();
    if (reply.result) pending.resolve(reply.result);
    else pending.reject(new CertReadError(reply.error?.reason ?? "corrupt_certificate", reply.error?.message ?? "decoding failed"));
    slot.idle = setTimeout(() => void this.#retire(slot, "idle"), this.#idleMs);
    slot.idle.unref();
    this.#dispatch();
  }

  /** Stops a worker; its decode, if any, fails with `parse_timeout` and `why`. */
  async #retire(slot: Slot, why: string): Promise<void> {
    if (!this.#slots.delete(slot)) return;
    clearTimeout(slot.timer);
    clearTimeout(slot.idle);
    const pending = slot.current;
    slot.current = undefined;
    pending?.reject(new CertReadError("parse_timeout", why));
    // A worker that died before it could take work would die again: the queued decodes fail rather
    // than start workers in a loop, and the next decode asked for tries a new one.
    if (!slot.ready) for (const queued of this.#queue.splice(0)) queued.reject(new CertReadError("parse_timeout", `the decoder could not start: ${why}`));
    await slot.worker.terminate();
    if (!this.#closed) this.#dispatch();
  }
}
