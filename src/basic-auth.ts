/**
 * HTTP basic authentication against the bcrypt hashes of the web config's basic_auth_users, as the
 * exporter-toolkit does it: bcrypt runs once per user and password, and a success is remembered.
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { Worker } from "node:worker_threads";

/**
 * bcryptjs is plain JavaScript: one comparison at cost 10 holds its thread for about 75 ms, and the
 * costs users choose go higher. It runs on a thread of its own, so that wrong passwords (which are
 * never cached) cannot stall /healthz or a scrape; comparisons run there one at a time, in order.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
import(workerData.bcrypt).then(({ default: bcrypt }) => {
  parentPort.on("message", ({ password, hash }) => {
    let match = false;
    try {
      match = bcrypt.compareSync(password, hash);
    } catch {}
    parentPort.postMessage(match);
  });
});`;

/** Runs bcrypt comparisons on one worker thread, started when first needed; replies come in request order. */
class BcryptThread {
  #worker: Worker | undefined;
  readonly #waiting: { resolve: (match: boolean) => void; reject: (err: Error) => void }[] = [];

  compare(password: string, hash: string): Promise<boolean> {
    const worker = (this.#worker ??= this.#start());
    return new Promise((resolve, reject) => {
      this.#waiting.push({ resolve, reject });
      worker.postMessage({ password, hash });
    });
  }

  async close(): Promise<void> {
    const worker = this.#worker;
    this.#worker = undefined;
    await worker?.terminate();
  }

  #start(): Worker {
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { bcrypt: import.meta.resolve("bcryptjs") }, resourceLimits: { maxOldGenerationSizeMb: 16 } });
    // Idle, it must not keep the process alive; a request waiting on it holds its own socket open.
    worker.unref();
    worker.on("message", (match: boolean) => this.#waiting.shift()?.resolve(match));
    const fail = (err: Error) => {
      if (this.#worker === worker) this.#worker = undefined;
      for (const waiter of this.#waiting.splice(0)) waiter.reject(err);
    };
    worker.on("error", fail);
    worker.on("exit", (code) => fail(new Error(`the bcrypt thread stopped (exit code ${code})`)));
    return worker;
  }
}

/** The user and password of an `Authorization: Basic …` header, or undefined for any other header. */
function credentials(header: string | undefined): { user: string; password: string } | undefined {
  const match = header && /^basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!match) return undefined;
  const decoded = Buffer.from(match[1] as string, "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  return colon < 0 ? undefined : { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

export class BasicAuth {
  readonly #users: ReadonlyMap<string, string>;
  readonly #bcrypt = new BcryptThread();
  /**
   * Per user, a keyed hash of the last password that verified. Bounded by the configured users; a
   * failure is never cached, so a wrong password costs a bcrypt every time, as it must.
   */
  readonly #verified = new Map<string, Buffer>();
  /** Keys the cached hashes, so that a memory dump does not hold a plain hash of a password. */
  readonly #key = randomBytes(32);
  /** Checked in place of an unknown user's hash, so an unknown user costs what a known one does. */
  readonly #decoy: string;

  /** `users`: user name to bcrypt hash; at least one. */
  constructor(users: ReadonlyMap<string, string>) {
    this.#users = users;
    this.#decoy = users.values().next().value as string;
  }

  /** True when the Authorization header carries a configured user and that user's password. */
  async verify(header: string | undefined): Promise<boolean> {
    const given = credentials(header);
    if (!given) return false;
    const digest = createHmac("sha256", this.#key).update(given.user).update("\0").update(given.password).digest();
    const cached = this.#verified.get(given.user);
    if (cached && timingSafeEqual(cached, digest)) return true;
    const hash = this.#users.get(given.user);
    const match = await this.#bcrypt.compare(given.password, hash ?? this.#decoy);
    if (!match || hash === undefined) return false;
    this.#verified.set(given.user, digest);
    return true;
  }

  close(): Promise<void> {
    return this.#bcrypt.close();
  }
}
