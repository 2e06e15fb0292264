import picomatch from "picomatch";
import { UNSHARDED, type Shard } from "../shard.js";

/** `namespaces: { include, exclude }` of a Kubernetes source (Secrets, Ingress and Service discovery). */
export interface NamespaceSelection {
  /** Names or globs; empty: every namespace. */
  include: readonly string[];
  /** Names or globs, applied after include. */
  exclude: readonly string[];
}

function isLiteral(pattern: string): boolean {
  return !picomatch.scan(pattern).isGlob;
}

/**
 * Which namespaces a Kubernetes source reads, and how it lists them. When every include is a literal
 * name, each allowed namespace gets its own list-and-watch (a namespaced Role is enough); otherwise
 * one cluster-wide list-and-watch, with the namespaces filtered as objects arrive.
 */
export class NamespaceFilter {
  readonly #selection: NamespaceSelection;
  readonly #include: ((ns: string) => boolean) | undefined;
  readonly #exclude: ((ns: string) => boolean) | undefined;
  readonly #shard: Shard;

  /**
   * With a shard, only the namespaces this replica owns are allowed: a namespace is the shard key of
   * the objects in it. Endpoint discovery passes none: every replica discovers every target and the
   * endpoint source keeps those whose host:port it owns, so no target falls between two replicas.
   */
  constructor(selection: NamespaceSelection, shard: Shard = UNSHARDED) {
    this.#selection = selection;
    this.#shard = shard;
    this.#include = selection.include.length ? picomatch([...selection.include], { dot: true }) : undefined;
    this.#exclude = selection.exclude.length ? picomatch([...selection.exclude], { dot: true }) : undefined;
  }

  allows(namespace: string): boolean {
    if (this.#include && !this.#include(namespace)) return false;
    if (this.#exclude?.(namespace)) return false;
    return this.#shard.owns(namespace);
  }

  /** The list-and-watch scopes: literal namespaces one by one, or `[undefined]` for the cluster scope. */
  scopes(): (string | undefined)[] {
    const { include } = this.#selection;
    if (include.length > 0 && include.every(isLiteral)) return [...new Set(include)].filter((ns) => this.allows(ns));
    return [undefined];
  }
}
