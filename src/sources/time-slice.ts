import { setImmediate as yieldToEventLoop } from "node:timers/promises";

/** Work done between two yields to the event loop; /healthz and other sources wait at most about this. */
const SLICE_MS = 20;

/**
 * Cooperative pacing for loops over untrusted items (a LIST page of 500 Secrets of up to a megabyte
 * each): each item's work is bounded, and between items the loop gives the event loop a turn once
 * a slice of time is used up, so the whole page never holds it.
 */
export class TimeSlice {
  #start = performance.now();

  async yieldIfDue(): Promise<void> {
    if (performance.now() - this.#start < SLICE_MS) return;
    await yieldToEventLoop();
    this.#start = performance.now();
  }
}
