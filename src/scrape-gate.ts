/** Why a scrape got no render slot without waiting: the line was full, or the exporter is shutting down. */
export class ScrapeRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ScrapeRefusedError";
  }
}

interface Waiter {
  admit(): void;
  refuse(error: ScrapeRefusedError): void;
}

export interface ScrapeGateLimits {
  /** Renders at once. */
  maxRunning: number;
  /** Scrapes waiting for a render slot; anyone beyond them is refused at once. */
  maxWaiting: number;
  /** What the refusal calls the requests and their work: "scrapes" and "rendering" unless given. */
  words?: { requests: string; running: string };
}

/**
 * Bounds the work of /metrics: at most `maxRunning` renders at once, each holding its own snapshot
 * and chunks, and a first-in-first-out line of at most `maxWaiting` scrapes behind them, each holding
 * nothing but its connection. A waiter whose signal aborts (its client left, its deadline passed)
 * leaves the line at once, so it neither blocks the line nor takes a slot it cannot use.
 */
export class ScrapeGate {
  readonly #limits: ScrapeGateLimits;
  /** Kept in arrival order, so the first is the oldest; a waiter who leaves is deleted in O(1). */
  readonly #waiting = new Set<Waiter>();
  #running = 0;
  #closed = false;

  constructor(limits: ScrapeGateLimits) {
    this.#limits = limits;
  }

  /**
   * Resolves with the function that frees the slot once one is free. Rejects with a
   * ScrapeRefusedError when the line is full or the gate closed, and with the signal's reason when it
   * aborts while waiting.
   */
  acquire(signal: AbortSignal): Promise<() => void> {
    if (this.#closed) return Promise.reject(new ScrapeRefusedError("the exporter is shutting down"));
    if (this.#running < this.#limits.maxRunning) return Promise.resolve(this.#take());
    if (this.#waiting.size >= this.#limits.maxWaiting) {
      const { requests, running } = this.#limits.words ?? { requests: "scrapes", running: "rendering" };
      return Promise.reject(new ScrapeRefusedError(`too many ${requests} at once: ${this.#running} ${running}, ${this.#waiting.size} waiting`));
    }
    return new Promise((resolve, reject) => {
      const leave = () => {
        this.#waiting.delete(waiter);
        reject(signal.reason);
      };
      const waiter: Waiter = {
        admit: () => {
          signal.removeEventListener("abort", leave);
          resolve(this.#take());
        },
        refuse: (error) => {
          signal.removeEventListener("abort", leave);
          reject(error);
        },
      };
      signal.addEventListener("abort", leave, { once: true });
      this.#waiting.add(waiter);
    });
  }

  /** Refuses everyone waiting and every later scrape, for shutdown; renders already running go on. */
  close(): void {
    this.#closed = true;
    for (const waiter of this.#waiting) waiter.refuse(new ScrapeRefusedError("the exporter is shutting down"));
    this.#waiting.clear();
  }

  #take(): () => void {
    this.#running++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#running--;
      const [next] = this.#waiting;
      if (next) {
        this.#waiting.delete(next);
        next.admit();
      }
    };
  }
}
