import { isIP } from "node:net";
import type { KubeConfig } from "@kubernetes/client-node";
import type { KubernetesConfig } from "../../config.js";
import type { ProbeTarget, TargetProvider } from "../endpoints.js";
import { KubeCollection, type KubeObject, type KubeResource } from "../kube-collection.js";
import type { NamespaceFilter } from "../namespaces.js";
import type { SourceContext } from "../source.js";

/** `host` for connecting: IPv6 literals in brackets, so that `splitHostPort` reads them unambiguously. */
export function dialHost(host: string): string {
  return isIP(host) === 6 ? `[${host}]` : host;
}

/** `host:port` with IPv6 literals in brackets. */
export function hostPort(host: string, port: number): string {
  return `${dialHost(host)}:${port}`;
}

export interface KubeTargetProviderOptions<T> {
  /** The provider's name: its health `source` label and its config key under sources.discovery. */
  name: string;
  resource: KubeResource;
  kubeConfig: KubeConfig;
  kubernetes: KubernetesConfig;
  /** Namespaced resources: the namespaces read. Absent: a cluster-scoped resource (nodes). */
  namespaces?: NamespaceFilter;
  labelSelector?: string;
  /** The probe targets of one object; [] when it has none. Called on every change of the object. */
  targets(object: T): ProbeTarget[];
  /** The object went away: forget anything remembered about it, e.g. logged warnings. */
  forget?(namespace: string, name: string): void;
}

/**
 * A TargetProvider over the collection engine (src/sources/kube-collection.ts): the targets of every
 * object in scope, handed over complete whenever one of them changes, never in the middle of a list.
 *
 * Health: each provider is a `source` of its own in the exporter's health metrics (`source_up`,
 * `last_success_timestamp_seconds`, `relists_total`, `watch_restarts_total` with `source` =
 * `ingresses`, `services` or `kubelets`), and holds /readyz until its first list. Its `start`
 * resolves at the first list, or at the first failure, so that an unreachable API server never holds
 * up the static endpoints: the discovered targets follow once the list succeeds. A refused scope
 * keeps its last-known targets, which go on being probed.
 */
export class KubeTargetProvider<T extends KubeObject> implements TargetProvider {
  readonly name: string;
  readonly healthSource: string;
  readonly #collection: KubeCollection<T, ProbeTarget[]>;
  #onChange: ((targets: readonly ProbeTarget[]) => void) | undefined;

  constructor(o: KubeTargetProviderOptions<T>, ctx: SourceContext) {
    this.name = o.name;
    this.healthSource = o.name;
    const { resource } = o.resource;
    this.#collection = new KubeCollection<T, ProbeTarget[]>(
      {
        name: o.name,
        resource: o.resource,
        ...(o.namespaces ? { namespaces: o.namespaces, includeKey: `sources.discovery.${o.name}.namespaces.include` } : {}),
        ...(o.labelSelector ? { labelSelector: o.labelSelector } : {}),
        // A refused scope is an error location of the endpoint source; `name` is never empty for a
        // probed target, so the two cannot collide.
        refusalLocation: (namespace) => ({ source: "endpoint", namespace: namespace ?? "", name: "", key: resource }),
        digest: (object) => {
          const targets = o.targets(object);
          return targets.length === 0 ? undefined : JSON.stringify(targets);
        },
        read: (object) => o.targets(object),
        drop: (namespace, name, _targets, gone) => {
          if (gone) o.forget?.(namespace, name);
        },
        changed: () => this.#onChange?.(this.#targets()),
      },
      o.kubeConfig,
      o.kubernetes,
      ctx,
    );
  }

  async start(onChange: (targets: readonly ProbeTarget[]) => void): Promise<void> {
    this.#onChange = onChange;
    await this.#collection.start();
    onChange(this.#targets());
  }

  async list(): Promise<readonly ProbeTarget[]> {
    await this.#collection.listOnce();
    return this.#targets();
  }

  async stop(): Promise<void> {
    this.#onChange = undefined;
    await this.#collection.stop();
  }

  #targets(): ProbeTarget[] {
    return this.#collection.states().flat();
  }
}
