import type { KubeConfig } from "@kubernetes/client-node";
import type { Config } from "../config.js";
import { loadKubeConfig } from "../kube/client.js";
import { ApiServerTarget } from "./discovery/apiserver.js";
import { DiscoveryContext } from "./discovery/common.js";
import { ingressProvider } from "./discovery/ingresses.js";
import { kubeletProvider } from "./discovery/kubelets.js";
import { serviceProvider } from "./discovery/services.js";
import type { TargetProvider } from "./endpoints.js";
import { SecretsSource } from "./secrets.js";
import type { SourceContext } from "./source.js";

/** Everything that talks to the Kubernetes API; loaded only when the configuration asks for it. */

export function secretsSource(config: Config, ctx: SourceContext): SecretsSource {
  return new SecretsSource({ secrets: config.sources.secrets, kubernetes: config.kubernetes }, ctx);
}

/**
 * The endpoint discovery that `sources.discovery` turns on, with the context the endpoint source
 * then runs in (it keeps discovery's scope errors).
 */
export function discoveryProviders(config: Config, base: SourceContext): { ctx: DiscoveryContext; providers: TargetProvider[] } {
  const { ingresses, services, apiServer, kubelets } = config.sources.discovery;
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
