import type { KubeConfig } from "@kubernetes/client-node";
import type { Config } from "../config.js";
import { loadKubeConfig } from "../kube/client.js";
import { ApiServerTarget } from "./discovery/apiserver.js";
import { DiscoveryContext } from "./discovery/common.js";
import { ingressProvider } from "./discovery/ingresses.js";
import { kubeletProvider } from "./discovery/kubelets.js";
import { serviceProvider } from "./discovery/services.js";
import { EndpointSource, type TargetProvider } from "./endpoints.js";
import { FileSource } from "./files.js";
import { KubeconfigSource } from "./kubeconfig.js";
import { SecretsSource } from "./secrets.js";
import type { Source, SourceContext } from "./source.js";

/** The sources the configuration turns on, in a fixed order. */
export function createSources(config: Config, ctx: SourceContext): Source[] {
  const sources: Source[] = [];
  const { files, kubeconfigs } = config.sources;
  if (files.length) sources.push(new FileSource(files, { intervalSeconds: config.intervals.files, maxFileSize: config.limits.maxFileSize }, ctx));
  if (kubeconfigs.length) {
    sources.push(new KubeconfigSource(kubeconfigs, { intervalSeconds: config.intervals.kubeconfigs, maxFileSize: config.limits.maxFileSize }, ctx));
  }
  if (config.sources.secrets.enabled) sources.push(new SecretsSource({ secrets: config.sources.secrets, kubernetes: config.kubernetes }, ctx));
  const discovery = discoveryProviders(config, ctx);
  if (config.sources.endpoints.length || discovery) {
    const { timeout, connectTimeout, concurrency, jitter } = config.probe;
    const options = { intervalSeconds: config.intervals.endpoints, jitter, concurrency, timeout, connectTimeout };
    sources.push(new EndpointSource(config.sources.endpoints, options, discovery?.ctx ?? ctx, discovery?.providers));
  }
  return sources;
}

/**
 * The endpoint discovery that `sources.discovery` turns on, with the context the endpoint source
 * then runs in (it keeps discovery's scope errors); undefined when none is on.
 */
function discoveryProviders(config: Config, base: SourceContext): { ctx: DiscoveryContext; providers: TargetProvider[] } | undefined {
  const { ingresses, services, apiServer, kubelets } = config.sources.discovery;
  if (!ingresses.enabled && !services.enabled && !apiServer.enabled && !kubelets.enabled) return undefined;
  const ctx = new DiscoveryContext(base);
  const kube = config.kubernetes;
  let kubeConfig: KubeConfig | undefined;
  const kc = () => (kubeConfig ??= loadKubeConfig({ kubeconfig: kube.kubeconfig, context: kube.context }));
  const providers: TargetProvider[] = [];
  if (apiServer.enabled) providers.push(new ApiServerTarget(kc(), ctx.log));
  if (ingresses.enabled) providers.push(ingressProvider(ingresses, kube, kc(), ctx));
  if (services.enabled) providers.push(serviceProvider(services, kube, kc(), ctx));
  if (kubelets.enabled) providers.push(kubeletProvider(kubelets, kube, kc(), ctx));
  return { ctx, providers };
}
