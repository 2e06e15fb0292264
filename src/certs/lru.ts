/**
 * A bounded map that forgets the least recently used keys first, a generation at a time: keys set or
 * read go into the current generation; when it holds half the bound, it becomes the previous one and
 * the previous one is dropped whole. A key read from the previous generation moves to the current.
 *
 * Two generations rather than one Map kept in use order: moving a key to the end of a Map on every
 * read, and dropping its first key on every write, left deleted slots at the front that each later
 * `keys().next()` walked over again — about 6 µs an operation at 10,000 keys, a second of the sync of
 * 20,000 Secrets. Here no operation walks, and none deletes but a move out of the previous generation.
 */
export class Lru<V> {
  /** Keys a generation holds at most: together the two hold at most the bound. */
  readonly #generation: number;
  #current = new Map<string, V>();
  #previous = new Map<string, V>();

  constructor(max: number) {
    this.#generation = Math.max(1, Math.floor(max / 2));
  }

  get size(): number {
    return this.#current.size + this.#previous.size;
  }

  get(key: string): V | undefined {
    const value = this.#current.get(key);
    if (value !== undefined) return value;
    const old = this.#previous.get(key);
    if (old !== undefined) {
      this.#previous.delete(key);
      this.#put(key, old);
    }
    return old;
  }

  set(key: string, value: V): void {
    this.#previous.delete(key);
    this.#put(key, value);
  }

  clear(): void {
    this.#current.clear();
    this.#previous.clear();
  }

  #put(key: string, value: V): void {
    this.#current.set(key, value);
    if (this.#current.size >= this.#generation) {
      this.#previous = this.#current;
      this.#current = new Map();
    }
  }
}
