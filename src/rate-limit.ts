/**
 * The web config's rate_limit, as the exporter-toolkit applies it (Go's rate.Limiter): a token bucket
 * that holds `burst` tokens and gains one every `intervalMs`; a request without a token is refused.
 */
export class TokenBucket {
  readonly #intervalMs: number;
  readonly #burst: number;
  #tokens: number;
  #updated = performance.now();

  constructor({ intervalMs, burst }: { intervalMs: number; burst: number }) {
    this.#intervalMs = intervalMs;
    this.#burst = burst;
    this.#tokens = burst;
  }

  /** Takes a token if there is one. */
  take(): boolean {
    const now = performance.now();
    this.#tokens = Math.min(this.#burst, this.#tokens + (now - this.#updated) / this.#intervalMs);
    this.#updated = now;
    if (this.#tokens < 1) return false;
    this.#tokens--;
    return true;
  }
}
