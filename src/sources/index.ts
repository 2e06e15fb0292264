import type { KubeConfig } from "@kubernetes/client-node";
import type { Config } from "../config.js";
import { FileSource } from "./files.js";
import { KubeconfigSource } from "./kubeconfig.js";
import type { Source, SourceContext } from "./source.js";

/** The sources there can be, one per part of the configuration, in the order they start. */
export const SOURCE_SLOTS = ["files", "kubeconfigs", "secrets", "configMaps", "caBundles", "csrs", "endpoints"] as const;
export type SourceSlot = (typeof SOURCE_SLOTS)[number];

const discovering = (config: Config): boolean =>
  Object.values(config.sources.discovery).some((kind) => kind.enabled) || Object.values(config.sources.caBundles).some((kind) => kind.probe);

/**
 * What a slot's source is built from, or undefined when the configuration leaves the slot off. A
 * reload rebuilds a source only when this changed. The static endpoints are not in it: a running
 * endpoint source takes a new list as it is (EndpointSource.setStaticTargets).
 */
export function sourceSettings(slot: SourceSlot, config: Config): unknown {
  const { sources, intervals, limits } = config;
  const fileLimits = { maxFileSize: limits.maxFileSize, maxGlobEntries: limits.maxGlobEntries };
  switch (slot) {
    case "files":
      return sources.files.length ? { groups: sources.files, intervalSeconds: intervals.files, ...fileLimits } : undefined;
    case "kubeconfigs":
      return sources.kubeconfigs.length ? { groups: sources.kubeconfigs, intervalSeconds: intervals.kubeconfigs, ...fileLimits } : undefined;
    case "secrets":
      return sources.secrets.enabled ? { secrets: sources.secrets, kubernetes: config.kubernetes } : undefined;
    case "configMaps":
      return sources.configMaps.enabled ? { configMaps: sources.configMaps, kubernetes: config.kubernetes } : undefined;
    case "caBundles": {
      const read = Object.entries(sources.caBundles).filter(([, kind]) => kind.enabled);
      return read.length ? { caBundles: Object.fromEntries(read.map(([key, { labelSelector }]) => [key, labelSelector])), kubernetes: config.kubernetes } : undefined;
    }
    case "csrs":
      return sources.csrs.enabled ? { csrs: sources.csrs, kubernetes: config.kubernetes } : undefined;
    case "endpoints": {
      const kubernetes = discovering(config) ? config.kubernetes : undefined;
      if (!sources.endpoints.length && !kubernetes) return undefined;
      const probedBundles = Object.fromEntries(Object.entries(sources.caBundles).map(([kind, { probe, labelSelector }]) => [kind, probe && { labelSelector }]));
      return { discovery: sources.discovery, probedBundles, kubernetes, probe: config.probe, intervalSeconds: intervals.endpoints, maxFileSize: limits.maxFileSize };
    }
  }
}

/** The Kubernetes client configuration; the client is loaded only when a Kubernetes source is on. */
async function clientConfig(config: Config): Promise<KubeConfig> {
  const { loadKubeConfig } = await import("../kube/client.js");
  return loadKubeConfig({ kubeconfig: config.kubernetes.kubeconfig, context: config.kubernetes.context });
}

/**
 * The source of one slot, or undefined when the configuration leaves it off. Only the Kubernetes
 * sources can fail to be built (a client configuration that does not load: a ConfigError). The
 * Kubernetes client (about 70 MiB and a second of start-up) is loaded only when one of them is on,
 * and the prober (p-limit, node:tls) only when endpoints are, so a file-only `check` in a pipeline
 * starts without them.
 */
export async function createSource(slot: SourceSlot, config: Config, ctx: SourceContext): Promise<Source | undefined> {
  if (sourceSettings(slot, config) === undefined) return undefined;
  const { sources, intervals, limits } = config;
  const { maxFileSize, maxGlobEntries } = limits;
  switch (slot) {
    case "files":
      return new FileSource(sources.files, { intervalSeconds: intervals.files, maxFileSize, maxGlobEntries }, ctx);
    case "kubeconfigs":
      return new KubeconfigSource(sources.kubeconfigs, { intervalSeconds: intervals.kubeconfigs, maxFileSize, maxGlobEntries }, ctx);
    case "secrets": {
      const { SecretsSource } = await import("./secrets.js");
      return new SecretsSource({ secrets: sources.secrets, kubernetes: config.kubernetes }, ctx);
    }
    case "configMaps": {
      const [{ configMapsSource }, kubeConfig] = await Promise.all([import("./configmaps.js"), clientConfig(config)]);
      return configMapsSource(sources.configMaps, kubeConfig, config.kubernetes, ctx);
    }
    case "caBundles": {
      const [{ caBundlesSource }, kubeConfig] = await Promise.all([import("./cabundles.js"), clientConfig(config)]);
      return caBundlesSource(sources.caBundles, kubeConfig, config.kubernetes, ctx);
    }
    case "csrs": {
      const [{ csrsSource }, kubeConfig] = await Promise.all([import("./csrs.js"), clientConfig(config)]);
      return csrsSource(sources.csrs, kubeConfig, config.kubernetes, ctx);
    }
    case "endpoints": {
      // Discovery alone: the Secrets source is a slot of its own.
      const withoutSecrets = { ...config, sources: { ...sources, secrets: { ...sources.secrets, enabled: false } } };
      const found = discovering(config) ? (await import("./kubernetes.js")).kubernetesSources(withoutSecrets, ctx).discovery : undefined;
      const { EndpointSource } = await import("./endpoints.js");
      const { timeout, connectTimeout, concurrency, jitter } = config.probe;
      const options = { intervalSeconds: intervals.endpoints, jitter, concurrency, timeout, connectTimeout, maxFileSize };
      return new EndpointSource(sources.endpoints, options, ctx, found);
    }
  }
}

/** Every source the configuration turns on, by slot, in start order; `contextFor` gives each its context. */
export async function createSourceSlots(config: Config, contextFor: () => SourceContext): Promise<Map<SourceSlot, Source>> {
  const slots = new Map<SourceSlot, Source>();
  for (const slot of SOURCE_SLOTS) {
    const source = await createSource(slot, config, contextFor());
    if (source) slots.set(slot, source);
  }
  return slots;
}

/** Every source the configuration turns on, in start order. */
export async function createSources(config: Config, ctx: SourceContext): Promise<Source[]> {
  return [...(await createSourceSlots(config, () => ctx)).values()];
}
