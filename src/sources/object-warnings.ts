import type { Logger } from "../log.js";

/**
 * Warnings about one object's content (a bad annotation, a port it does not have), logged once per
 * object and message rather than at every relist; forgotten when the object goes.
 */
export class ObjectWarnings {
  readonly #log: Logger;
  readonly #source: string;
  readonly #logged = new Map<string, Set<string>>();

  constructor(log: Logger, source: string) {
    this.#log = log;
    this.#source = source;
  }

  warn(namespace: string, name: string, message: string, fields: Record<string, unknown> = {}, level: "warn" | "info" = "warn"): void {
    const key = `${namespace}/${name}`;
    const logged = this.#logged.get(key) ?? new Set<string>();
    if (logged.has(message)) return;
    logged.add(message);
    this.#logged.set(key, logged);
    this.#log[level]({ source: this.#source, namespace, name, ...fields }, message);
  }

  forget(namespace: string, name: string): void {
    this.#logged.delete(`${namespace}/${name}`);
  }
}
