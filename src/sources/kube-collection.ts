import type { KubeConfig } from "@kubernetes/client-node";
import type { KubernetesConfig } from "../config.js";
import type { SourceHealth } from "../health-state.js";
import type { Location } from "../model.js";
import { missingPermission, type KubeApiError } from "../kube/errors.js";
import { ListWatch, listWatchPacing, objectKey, type ListWatchHandler, type ListWatchReporter } from "../kube/list-watch.js";
import type { NamespaceFilter } from "./namespaces.js";
import type { SourceContext } from "./source.js";
import { TimeSlice } from "./time-slice.js";

/** What the engine reads of any object, as the API server's JSON has it. */
export interface KubeObject {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string; annotations?: Record<string, string> | null; labels?: Record<string, string> | null };
}

/** One Kubernetes resource, as RBAC and the API paths name it. */
export interface KubeResource {
  /** Plural, as in RBAC: `secrets`, `validatingwebhookconfigurations`. */
  resource: string;
  /** API group, "" for the core group. */
  group: string;
  /** The collection path, in one namespace or (undefined) across the cluster. */
  path(namespace: string | undefined): string;
}

/** `/api/v1/…` for the core group, `/apis/<group>/<version>/…` for the others. */
export function resourcePath(group: string, version: string, resource: string, namespaced: boolean): KubeResource["path"] {
  const base = group ? `/apis/${group}/${version}` : `/api/${version}`;
  return (namespace) => (namespaced && namespace !== undefined ? `${base}/namespaces/${encodeURIComponent(namespace)}/${resource}` : `${base}/${resource}`);
}

/**
 * One kind of Kubernetes object, as the engine needs it: where it lives and what to do with an
 * object. `S` is what the kind remembers of an object it read (never the object's data).
 */
export interface KindDescriptor<T extends KubeObject, S> {
  /** The health `source` label of the collection. */
  name: string;
  resource: KubeResource;
  /** Namespaced kinds: the namespaces read. Absent: cluster-scoped. */
  namespaces?: NamespaceFilter;
  /** The configuration key that names the namespaces, for the message of a refusal. */
  includeKey?: string;
  labelSelector?: string;
  /** One list-and-watch per selector and scope (e.g. a Secret type each); default one, unselected. */
  fieldSelectors?: readonly (string | undefined)[];
  /** The error location that stands for a refused scope. */
  refusalLocation(namespace: string | undefined): Location;
  /** A hash of what decides the object's result; undefined when it holds nothing of interest. */
  digest(object: T): string | undefined;
  /** Reads an object whose digest changed; `previous` is what the last read returned. */
  read(object: T, previous: S | undefined): Promise<S> | S;
  /**
   * The object is gone (`gone`) or holds nothing of interest any more: undo what reads did.
   * `lastKnownOnly`: the state was adopted (see adoptable), so undo only what is still last-known.
   */
  drop(namespace: string, name: string, state: S, gone: boolean, lastKnownOnly: boolean): void;
  /** The scope of a read object is refused (`true`), or current again: its last-known state is kept meanwhile. */
  stale?(state: S, stale: boolean): void;
  /** Something changed, after a complete list or a watch event; not during a list. */
  changed?(): void;
  /**
   * A last-known location of the collection this one replaces (a reload), as the key and namespace
   * of the object it came from and how it joins that object's state; undefined when it is not of
   * this kind or not in its scope.
   */
  adoptable?(location: Location): { key: string; namespace: string; join(previous: S | undefined): S } | undefined;
}

interface Held<S> {
  digest: string;
  state: S;
  stale: boolean;
  /** Taken over from a replaced collection while the scope is refused; never read here. */
  adopted: boolean;
}

/**
 * The collection engine every Kubernetes kind shares: list-and-watch per scope (a namespace, or the
 * cluster, times a field selector), the objects' digests so that an unchanged object is not read
 * again, objects dropped when a relist no longer has them, refusals as a scope error location,
 * and one health handle.
 *
 * A scope refused (403 on list) keeps its objects' last-known results, marked stale, until the scope
 * can be read again: an RBAC change must not silence a certificate's alert. They go when the object
 * is known to be gone (a list without it, a deletion) or the collection stops being configured.
 *
 * `start` resolves once every scope has listed (or been refused) or at the first failure, so an
 * unreachable API server never holds up anything else; the source turns up once all scopes list.
 */
export class KubeCollection<T extends KubeObject, S> {
  readonly kind: KindDescriptor<T, S>;
  readonly health: SourceHealth;
  readonly #ctx: SourceContext;
  readonly #streams: KindStream<T, S>[];
  readonly #failing = new Set<string>();
  #started = false;
  #firstFailure: { promise: Promise<void>; resolve: () => void };

  constructor(kind: KindDescriptor<T, S>, kubeConfig: KubeConfig, kubernetes: KubernetesConfig, ctx: SourceContext) {
    this.kind = kind;
    this.#ctx = ctx;
    this.health = ctx.health.source(kind.name);
    let resolve!: () => void;
    const promise = new Promise<void>((r) => (resolve = r));
    this.#firstFailure = { promise, resolve };
    const scopes = kind.namespaces ? kind.namespaces.scopes() : [undefined];
    const selectors = kind.fieldSelectors ?? [undefined];
    this.#streams = scopes.flatMap((namespace) => selectors.map((fieldSelector) => new KindStream<T, S>(namespace, fieldSelector, this, kubeConfig, kubernetes)));
  }

  get ctx(): SourceContext {
    return this.#ctx;
  }

  /** The list-and-watch scopes, for tests and logs. */
  get scopes(): { namespace: string | undefined; fieldSelector: string | undefined }[] {
    return this.#streams.map((s) => ({ namespace: s.namespace, fieldSelector: s.fieldSelector }));
  }

  /** Every state held, stale or not. */
  states(): S[] {
    return this.#streams.flatMap((s) => s.states());
  }

  async start(): Promise<void> {
    const started = performance.now();
    await Promise.race([Promise.all(this.#streams.map((s) => s.listWatch.start())), this.#firstFailure.promise]);
    this.#started = true;
    if (this.#current()) this.health.succeeded((performance.now() - started) / 1000);
  }

  /** One full list of every scope and nothing after it (for `check`); throws when one cannot be listed. */
  listOnce(): Promise<void> {
    return this.health.scan(async () => {
      await Promise.all(this.#streams.map((s) => s.listWatch.listOnce()));
    });
  }

  async stop(): Promise<void> {
    await Promise.all(this.#streams.map((s) => s.listWatch.stop()));
  }

  /**
   * Takes over a last-known location of the collection a reload replaced, when its scope is refused
   * here too: it stays, stale, until the scope can be listed and the object is known gone or read
   * again. False when the location is not this collection's to keep.
   */
  adopt(location: Location): boolean {
    const adoptable = this.kind.adoptable?.(location);
    if (!adoptable) return false;
    return this.#streams.find((s) => s.covers(adoptable.namespace))?.adopt(adoptable.key, adoptable.join) ?? false;
  }

  #current(): boolean {
    return this.#failing.size === 0 && this.#streams.every((s) => s.listed);
  }

  reporter(streamId: string): ListWatchReporter {
    return {
      relisted: (reason) => this.health.relisted(reason),
      watchRestarted: (reason) => this.health.watchRestarted(reason),
      listSucceeded: (seconds) => {
        if (this.#started && this.#current()) this.health.succeeded(seconds);
      },
      failed: () => {
        this.#failing.add(streamId);
        this.health.failed();
        this.#firstFailure.resolve();
      },
      recovered: () => {
        this.#failing.delete(streamId);
        if (this.#started && this.#current()) this.health.restored();
      },
    };
  }
}

/** One list-and-watch scope and what its objects gave. */
class KindStream<T extends KubeObject, S> implements ListWatchHandler<T> {
  readonly namespace: string | undefined;
  readonly fieldSelector: string | undefined;
  readonly id: string;
  readonly listWatch: ListWatch<T>;
  /** True once a full list completed, or was refused. */
  listed = false;
  /** The last list was refused (403), and none has completed since. */
  #refused = false;
  readonly #collection: KubeCollection<T, S>;
  readonly #kind: KindDescriptor<T, S>;
  readonly #objects = new Map<string, Held<S>>();
  /** A full list is under way: `changed` waits for its end. */
  #listing = false;
  #dirty = false;

  constructor(namespace: string | undefined, fieldSelector: string | undefined, collection: KubeCollection<T, S>, kubeConfig: KubeConfig, kubernetes: KubernetesConfig) {
    this.namespace = namespace;
    this.fieldSelector = fieldSelector;
    this.#collection = collection;
    this.#kind = collection.kind;
    this.id = `${this.#kind.resource.resource} namespace=${namespace ?? "*"}${fieldSelector ? ` fieldSelector=${fieldSelector}` : ""}`;
    this.listWatch = new ListWatch<T>({
      description: this.id,
      kubeConfig,
      path: this.#kind.resource.path(namespace),
      labelSelector: this.#kind.labelSelector,
      fieldSelector,
      ...listWatchPacing(kubernetes),
      handler: this,
      reporter: collection.reporter(this.id),
      log: collection.ctx.log,
    });
  }

  states(): S[] {
    return [...this.#objects.values()].map((held) => held.state);
  }

  /** Whether objects of `namespace` are listed here. */
  covers(namespace: string): boolean {
    return this.namespace === undefined ? (this.#kind.namespaces?.allows(namespace) ?? true) : this.namespace === namespace;
  }

  /** Keeps an object's last-known state from a replaced collection while this scope is refused. */
  adopt(key: string, join: (previous: S | undefined) => S): boolean {
    if (!this.#refused) return false;
    const held = this.#objects.get(key);
    const state = join(held?.state);
    this.#objects.set(key, { digest: held?.digest ?? "", state, stale: true, adopted: held?.adopted ?? true });
    this.#kind.stale?.(state, true);
    return true;
  }

  // ---------------------------------------------------------------- ListWatchHandler

  listStarted(): void {
    this.#listing = true;
  }

  async listPage(items: readonly T[]): Promise<void> {
    // Pages of hundreds of objects yield now and then, so /healthz and scrapes keep answering.
    const slice = new TimeSlice();
    for (const object of items) {
      await this.#apply(objectKey(object), object);
      await slice.yieldIfDue();
    }
  }

  listCompleted(seen: ReadonlySet<string>): void {
    this.#listing = false;
    this.#refused = false;
    for (const key of [...this.#objects.keys()]) if (!seen.has(key)) this.#drop(key, true);
    this.listed = true;
    this.#flush();
  }

  async watchEvent(type: "ADDED" | "MODIFIED" | "DELETED", object: T): Promise<void> {
    const key = objectKey(object);
    if (type === "DELETED") this.#drop(key, true);
    else await this.#apply(key, object);
    this.#flush();
  }

  forbidden(verb: "list" | "watch", error: KubeApiError): void {
    const { resource, group } = this.#kind.resource;
    const message = missingPermission(verb, group ? `${resource}.${group}` : resource, this.namespace, this.#kind.includeKey, error);
    if (verb === "list") {
      this.#listing = false;
      this.#refused = true;
      this.listed = true;
      this.#markStale(true);
      this.#flush();
    }
    this.#collection.ctx.setRefusal(this.#kind.refusalLocation(this.namespace), `${this.id} ${verb}`, message);
  }

  allowed(verb: "list" | "watch"): void {
    this.#collection.ctx.setRefusal(this.#kind.refusalLocation(this.namespace), `${this.id} ${verb}`, undefined);
  }

  // ---------------------------------------------------------------- objects

  #markStale(stale: boolean): void {
    for (const held of this.#objects.values()) {
      if (held.stale === stale) continue;
      held.stale = stale;
      this.#kind.stale?.(held.state, stale);
    }
  }

  async #apply(key: string, object: T): Promise<void> {
    const namespace = object.metadata?.namespace ?? "";
    if (this.#kind.namespaces && !this.#kind.namespaces.allows(namespace)) return this.#drop(key, false);
    const digest = this.#kind.digest(object);
    if (digest === undefined) return this.#drop(key, false);
    const held = this.#objects.get(key);
    if (held?.digest === digest) {
      if (held.stale) {
        held.stale = false;
        this.#kind.stale?.(held.state, false);
      }
      return;
    }
    const state = await this.#kind.read(object, held?.state);
    this.#objects.set(key, { digest, state, stale: false, adopted: false });
    this.#dirty = true;
  }

  /** The object holds nothing of interest any more; `gone`: it no longer exists. */
  #drop(key: string, gone: boolean): void {
    const held = this.#objects.get(key);
    if (!held) return;
    this.#objects.delete(key);
    this.#dirty = true;
    const slash = key.indexOf("/");
    this.#kind.drop(key.slice(0, slash), key.slice(slash + 1), held.state, gone, held.adopted);
  }

  #flush(): void {
    if (!this.#dirty || this.#listing) return;
    this.#dirty = false;
    this.#kind.changed?.();
  }
}
