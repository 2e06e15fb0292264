import { isIP } from "node:net";
import type { KubeConfig } from "@kubernetes/client-node";
import type { KubernetesConfig } from "../../config.js";
import type { Location } from "../../inventory.js";
import { missingPermission, type KubeApiError } from "../../kube/errors.js";
import { ListWatch, listWatchPacing, objectKey, type ListWatchHandler, type ListWatchReporter } from "../../kube/list-watch.js";
import type { ProbeTarget, TargetProvider } from "../endpoints.js";
import type { NamespaceFilter } from "../namespaces.js";
import { SourceContext } from "../source.js";

/** What discovery reads of any object, as the API server's JSON has it. */
export interface KubeObject {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string; annotations?: Record<string, string> | null };
}

/** `host` for connecting: IPv6 literals in brackets, so that `splitHostPort` reads them unambiguously. */
export function dialHost(host: string): string {
  return isIP(host) === 6 ? `[${host}]` : host;
}

/** `host:port` with IPv6 literals in brackets. */
export function hostPort(host: string, port: number): string {
  return `${dialHost(host)}:${port}`;
}

/** One Kubernetes resource that discovery lists and watches. */
export interface DiscoveredResource {
  /** Plural, as in RBAC: `ingresses`, `services`, `nodes`. Also the key of a scope error location. */
  resource: string;
  /** API group, "" for the core group. */
  group: string;
  /** The collection path to list and watch, in one namespace or (undefined) across the cluster. */
  path(namespace: string | undefined): string;
}

export interface KubeTargetProviderOptions<T> {
  /** The provider's name: its health `source` label and its config key under sources.discovery. */
  name: string;
  resource: DiscoveredResource;
  kubeConfig: KubeConfig;
  kubernetes: KubernetesConfig;
  /** Namespaced resources: the namespaces read. Absent: a cluster-scoped resource (nodes). */
  namespaces?: NamespaceFilter;
  labelSelector?: string;
  /** The probe targets of one object; [] when it has none. Called on every change of the object. */
  targets(object: T): ProbeTarget[];
  /** The object went away (or left scope): forget anything remembered about it, e.g. logged warnings. */
  forget?(namespace: string, name: string): void;
}

/**
 * A TargetProvider over list-and-watch (src/kube/list-watch.ts): the targets of every object in
 * scope, handed over complete whenever one of them changes. One list-and-watch per namespace when
 * the includes are literal names, else one cluster-wide, as the Secrets source does.
 *
 * Health: each provider is a `source` of its own in the exporter's health metrics (`source_up`,
 * `last_success_timestamp_seconds`, `relists_total`, `watch_restarts_total` with `source` =
 * `ingresses`, `services` or `kubelets`), and holds /readyz until its first list. Its `start`
 * resolves at the first list, or at the first failure, so that an unreachable API server never holds
 * up the static endpoints: the discovered targets follow once the list succeeds.
 */
export class KubeTargetProvider<T extends KubeObject> implements TargetProvider {
  readonly name: string;
  readonly #o: KubeTargetProviderOptions<T>;
  readonly #ctx: SourceContext;
  readonly #streams: TargetStream<T>[];
  readonly #failing = new Set<string>();
  #onChange: ((targets: readonly ProbeTarget[]) => void) | undefined;
  #started = false;
  #firstFailure: { promise: Promise<void>; resolve: () => void };

  constructor(options: KubeTargetProviderOptions<T>, ctx: SourceContext) {
    this.name = options.name;
    this.#o = options;
    this.#ctx = ctx;
    let resolve!: () => void;
    const promise = new Promise<void>((r) => (resolve = r));
    this.#firstFailure = { promise, resolve };
    const scopes = options.namespaces ? options.namespaces.scopes() : [undefined];
    this.#streams = scopes.map((namespace) => new TargetStream<T>(namespace, this));
    ctx.health.register(this.name);
  }

  async start(onChange: (targets: readonly ProbeTarget[]) => void): Promise<void> {
    this.#onChange = onChange;
    const started = performance.now();
    await Promise.race([Promise.all(this.#streams.map((s) => s.listWatch.start())), this.#firstFailure.promise]);
    this.#started = true;
    if (this.#failing.size === 0 && this.#streams.every((s) => s.listed)) this.#ctx.health.scanSucceeded(this.name, (performance.now() - started) / 1000);
    onChange(this.#targets());
  }

  async list(): Promise<readonly ProbeTarget[]> {
    const started = performance.now();
    try {
      await Promise.all(this.#streams.map((s) => s.listWatch.listOnce()));
    } catch (err) {
      this.#ctx.health.scanFailed(this.name, (performance.now() - started) / 1000);
      throw err;
    }
    this.#ctx.health.scanSucceeded(this.name, (performance.now() - started) / 1000);
    return this.#targets();
  }

  async stop(): Promise<void> {
    this.#onChange = undefined;
    await Promise.all(this.#streams.map((s) => s.listWatch.stop()));
  }

  // ---------------------------------------------------------------- used by the streams

  get options(): KubeTargetProviderOptions<T> {
    return this.#o;
  }

  get ctx(): SourceContext {
    return this.#ctx;
  }

  changed(): void {
    this.#onChange?.(this.#targets());
  }

  #targets(): ProbeTarget[] {
    return this.#streams.flatMap((s) => s.targets());
  }

  reporter(streamId: string): ListWatchReporter {
    const health = this.#ctx.health;
    const source = this.name;
    const current = () => this.#failing.size === 0 && this.#streams.every((s) => s.listed);
    return {
      relisted: (reason) => health.relists.inc({ source, reason }),
      watchRestarted: (reason) => health.watchRestarts.inc({ source, reason }),
      listSucceeded: (seconds) => {
        if (this.#started && current()) health.scanSucceeded(source, seconds);
      },
      failed: () => {
        this.#failing.add(streamId);
        health.scanFailed(source);
        this.#firstFailure.resolve();
      },
      recovered: () => {
        this.#failing.delete(streamId);
        if (this.#started && current()) health.sourceUp.set({ source }, 1);
      },
    };
  }
}

interface ObjectTargets {
  /** The targets' JSON, so that a change that does not touch them is not handed on. */
  digest: string;
  targets: ProbeTarget[];
}

/** One list-and-watch scope and the targets of the objects in it. */
class TargetStream<T extends KubeObject> implements ListWatchHandler<T> {
  readonly namespace: string | undefined;
  readonly id: string;
  readonly listWatch: ListWatch<T>;
  /** True once a full list completed, or was refused. */
  listed = false;
  readonly #provider: KubeTargetProvider<T>;
  readonly #objects = new Map<string, ObjectTargets>();
  readonly #location: Location;
  /** A full list is under way: targets are handed on once it completes, not page by page. */
  #listing = false;
  #dirty = false;

  constructor(namespace: string | undefined, provider: KubeTargetProvider<T>) {
    this.namespace = namespace;
    this.#provider = provider;
    const o = provider.options;
    const kube = o.kubernetes;
    this.id = `${o.resource.resource} namespace=${namespace ?? "*"}`;
    // A refused scope is an error location of the endpoint source; `name` is never empty for a
    // probed target, so the two cannot collide.
    this.#location = { source: "endpoint", namespace: namespace ?? "", name: "", key: o.resource.resource };
    this.listWatch = new ListWatch<T>({
      description: this.id,
      kubeConfig: o.kubeConfig,
      path: o.resource.path(namespace),
      labelSelector: o.labelSelector,
      ...listWatchPacing(kube),
      handler: this,
      reporter: provider.reporter(this.id),
      log: provider.ctx.log,
    });
  }

  targets(): ProbeTarget[] {
    const out: ProbeTarget[] = [];
    for (const entry of this.#objects.values()) out.push(...entry.targets);
    return out;
  }

  // ---------------------------------------------------------------- ListWatchHandler

  listStarted(): void {
    this.#listing = true;
  }

  listPage(items: readonly T[]): void {
    for (const object of items) this.#apply(objectKey(object), object);
  }

  listCompleted(seen: ReadonlySet<string>): void {
    this.#listing = false;
    for (const key of [...this.#objects.keys()]) if (!seen.has(key)) this.#drop(key, true);
    this.listed = true;
    this.#flush();
  }

  watchEvent(type: "ADDED" | "MODIFIED" | "DELETED", object: T): void {
    const key = objectKey(object);
    if (type === "DELETED") this.#drop(key, true);
    else this.#apply(key, object);
    this.#flush();
  }

  forbidden(verb: "list" | "watch", error: KubeApiError): void {
    const { resource, group } = this.#provider.options.resource;
    const clusterScoped = this.#provider.options.namespaces === undefined;
    const includeKey = clusterScoped ? undefined : `sources.discovery.${this.#provider.name}.namespaces.include`;
    const message = missingPermission(verb, group ? `${resource}.${group}` : resource, this.namespace, includeKey, error);
    if (verb === "list") {
      // Nothing here can be read: what was read before is no longer current.
      this.#listing = false;
      for (const key of [...this.#objects.keys()]) this.#drop(key, true);
      this.listed = true;
      this.#flush();
    }
    this.#provider.ctx.setRefusal(this.#location, verb, message);
  }

  allowed(verb: "list" | "watch"): void {
    this.#provider.ctx.setRefusal(this.#location, verb, undefined);
  }

  // ---------------------------------------------------------------- objects

  #apply(key: string, object: T): void {
    const namespace = object.metadata?.namespace ?? "";
    const filter = this.#provider.options.namespaces;
    if (filter && !filter.allows(namespace)) return this.#drop(key, false);
    const targets = this.#provider.options.targets(object);
    if (targets.length === 0) return this.#drop(key, false);
    const digest = JSON.stringify(targets);
    if (this.#objects.get(key)?.digest === digest) return;
    this.#objects.set(key, { digest, targets });
    this.#dirty = true;
  }

  /** The object has no targets (any more); `gone`: it no longer exists, or cannot be read. */
  #drop(key: string, gone: boolean): void {
    if (this.#objects.delete(key)) this.#dirty = true;
    if (!gone) return;
    const slash = key.indexOf("/");
    this.#provider.options.forget?.(key.slice(0, slash), key.slice(slash + 1));
  }

  /** Hands the provider's targets on when any changed; during a list, only once it completes. */
  #flush(): void {
    if (!this.#dirty || this.#listing) return;
    this.#dirty = false;
    this.#provider.changed();
  }
}


/** Warnings about one object's content (a bad annotation), logged once per object and message. */
export class ObjectWarnings {
  readonly #ctx: SourceContext;
  readonly #logged = new Map<string, Set<string>>();

  constructor(ctx: SourceContext) {
    this.#ctx = ctx;
  }

  warn(namespace: string, name: string, message: string, fields: Record<string, unknown> = {}, level: "warn" | "info" = "warn"): void {
    const key = `${namespace}/${name}`;
    const logged = this.#logged.get(key) ?? new Set<string>();
    if (logged.has(message)) return;
    logged.add(message);
    this.#logged.set(key, logged);
    this.#ctx.log[level]({ source: "endpoint", namespace, name, ...fields }, message);
  }

  forget(namespace: string, name: string): void {
    this.#logged.delete(`${namespace}/${name}`);
  }
}
