import type { KubeConfig } from "@kubernetes/client-node";
import type { Config } from "../config.js";
import { loadKubeConfig } from "../kube/client.js";
import { ApiServerTarget } from "./discovery/apiserver.js";
import { ingressProvider } from "./discovery/ingresses.js";
import { kubeletProvider } from "./discovery/kubelets.js";
import { serviceProvider } from "./discovery/services.js";
import { caBundleProbeProviders } from "./discovery/webhooks.js";
import type { TargetProvider } from "./endpoints.js";
import { SecretsSource } from "./secrets.js";
import type { SourceContext } from "./source.js";

/** Everything that talks to the Kubernetes API; loaded only when the configuration asks for it. */

export interface KubernetesSources {
  secrets?: SecretsSource;
  /** Endpoint discovery's target providers, for the endpoint source. */
  discovery?: TargetProvider[];
}

/** The Secrets source and the endpoint discovery the configuration turns on, sharing one client configuration. */
export function kubernetesSources(config: Config, ctx: SourceContext): KubernetesSources {
  const { secrets, discovery } = config.sources;
  const kube = config.kubernetes;
  let kubeConfig: KubeConfig | undefined;
  const kc = () => (kubeConfig ??= loadKubeConfig({ kubeconfig: kube.kubeconfig, context: kube.context }));
  const out: KubernetesSources = {};
  if (secrets.enabled) out.secrets = new SecretsSource({ secrets, kubernetes: kube, kubeConfig: kc() }, ctx);
  const { ingresses, services, apiServer, kubelets } = discovery;
  const probedBundles = Object.values(config.sources.caBundles).some((kind) => kind.probe);
  if (![ingresses, services, apiServer, kubelets].some((kind) => kind.enabled) && !probedBundles) return out;
  const providers: TargetProvider[] = [];
  if (apiServer.enabled) providers.push(new ApiServerTarget(kc(), ctx.log));
  if (ingresses.enabled) providers.push(ingressProvider(ingresses, kube, kc(), ctx));
  if (services.enabled) providers.push(serviceProvider(services, kube, kc(), ctx));
  if (kubelets.enabled) providers.push(kubeletProvider(kubelets, kube, kc(), ctx));
  if (probedBundles) providers.push(...caBundleProbeProviders(config.sources.caBundles, kube, kc(), ctx));
  out.discovery = providers;
  return out;
}
