import type { SourceHealth } from "../health-state.js";
import type { SourceKind } from "../model.js";
import type { Source, SourceContext } from "./source.js";

/**
 * Runs a source's full scan now and then every `intervalSeconds`, recording health.
 * Scans never overlap: the next one is scheduled only after the previous one ended.
 */
export class Poller {
  readonly #name: string;
  readonly #intervalMs: number;
  readonly #scan: () => Promise<void>;
  readonly #ctx: SourceContext;
  readonly #health: SourceHealth;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #stopped = false;

  constructor(name: string, intervalSeconds: number, scan: () => Promise<void>, ctx: SourceContext) {
    this.#name = name;
    this.#intervalMs = intervalSeconds * 1000;
    this.#scan = scan;
    this.#ctx = ctx;
    this.#health = ctx.health.source(name);
  }

  /** Runs the first scan, resolves when it is done, then keeps scanning until stop(). */
  async start(): Promise<void> {
    this.#stopped = false;
    await this.runOnce();
    this.#schedule();
  }

  /** One scan with health accounting; a failing scan is logged and marks the source down. */
  async runOnce(): Promise<void> {
    this.#running = this.#health.scan(this.#scan);
    try {
      await this.#running;
    } catch (err) {
      this.#ctx.log.error({ source: this.#name, err }, "scan failed");
    } finally {
      this.#running = undefined;
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#running?.catch(() => undefined);
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      void this.runOnce().then(() => this.#schedule());
    }, this.#intervalMs);
  }
}

/** A source whose work is one full scan, repeated every `intervalSeconds` by a Poller. */
export abstract class PolledSource implements Source {
  readonly name: SourceKind;
  readonly #poller: Poller;

  protected constructor(name: SourceKind, intervalSeconds: number, ctx: SourceContext) {
    this.name = name;
    this.#poller = new Poller(name, intervalSeconds, () => this.scan(), ctx);
  }

  healthSources(): string[] {
    return [this.name];
  }

  start(): Promise<void> {
    return this.#poller.start();
  }

  scanOnce(): Promise<void> {
    return this.#poller.runOnce();
  }

  stop(): Promise<void> {
    return this.#poller.stop();
  }

  /** One full scan; a throw marks the source down until the next scan succeeds. */
  protected abstract scan(): Promise<void>;
}
