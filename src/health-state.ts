/**
 * Which sources are up and ready, as the sources report it: all a one-off scan (`check`) needs.
 * Health (src/health.ts) adds the exporter's own metrics over it, with prom-client, for `serve`
 * alone: `check` starts without loading prom-client.
 */
export class HealthState {
  readonly #ready = new Map<string, boolean>();
  readonly #up = new Map<string, boolean>();

  /** The one handle through which a source reports its health; registers the source. */
  source(source: string): SourceHealth {
    this.register(source);
    return new SourceHealth(this, source);
  }

  /** Marks a source as enabled but not yet through its first full scan: not ready, and not up. */
  register(source: string): void {
    if (this.#ready.has(source)) return;
    this.#ready.set(source, false);
    this.setUp(source, false);
  }

  /** Forgets a source a reload turned off: it no longer holds /readyz. */
  unregister(source: string): void {
    this.#ready.delete(source);
    this.#up.delete(source);
  }

  scanSucceeded(source: string, _durationSeconds: number): void {
    this.#ready.set(source, true);
    this.setUp(source, true);
  }

  scanFailed(source: string, _durationSeconds?: number): void {
    this.setUp(source, false);
  }

  /** Whether the source's last scan, sync or request succeeded. */
  setUp(source: string, up: boolean): void {
    this.#up.set(source, up);
  }

  isUp(source: string): boolean {
    return this.#up.get(source) === true;
  }

  /** A location of `source` turned to an error; counted where there are metrics. */
  readError(_source: string, _reason: string): void {}

  /** A Kubernetes source listed everything again; counted where there are metrics. */
  relisted(_source: string, _reason: string): void {}

  /** A Kubernetes watch restarted; counted where there are metrics. */
  watchRestarted(_source: string, _reason: string): void {}

  /** Sources that have not finished a first full scan; /readyz is ready when this is empty. */
  pendingSources(): string[] {
    return [...this.#ready].filter(([, ready]) => !ready).map(([source]) => source);
  }
}

/**
 * One source's view of its health: every source reports through one of these, so `up`, readiness,
 * the last success and the counters follow the same rules whatever the kind.
 */
export class SourceHealth {
  readonly #health: HealthState;
  readonly name: string;

  constructor(health: HealthState, name: string) {
    this.#health = health;
    this.name = name;
  }

  /** A full scan or list completed: up, ready, and its duration and time recorded. */
  succeeded(durationSeconds: number): void {
    this.#health.scanSucceeded(this.name, durationSeconds);
  }

  /** The source is not current: down (readiness, once reached, is kept). */
  failed(durationSeconds?: number): void {
    this.#health.scanFailed(this.name, durationSeconds);
  }

  /** Requests work again after failures, with no full scan to time. */
  restored(): void {
    this.#health.setUp(this.name, true);
  }

  /** Runs one full scan, recording success or failure and its duration; rethrows. */
  async scan<T>(run: () => Promise<T>): Promise<T> {
    const started = performance.now();
    const seconds = () => (performance.now() - started) / 1000;
    let result: T;
    try {
      result = await run();
    } catch (err) {
      this.failed(seconds());
      throw err;
    }
    this.succeeded(seconds());
    return result;
  }

  relisted(reason: string): void {
    this.#health.relisted(this.name, reason);
  }

  watchRestarted(reason: string): void {
    this.#health.watchRestarted(this.name, reason);
  }
}
