import type { KubeConfig } from "@kubernetes/client-node";
import type { DiscoveryConfig, KubernetesConfig } from "../../config.js";
import type { ProbeTarget } from "../endpoints.js";
import { NamespaceFilter } from "../namespaces.js";
import type { SourceContext } from "../source.js";
import { resourcePath, type KubeObject } from "../kube-collection.js";
import { ObjectWarnings } from "../object-warnings.js";
import { dialHost, KubeTargetProvider } from "./common.js";

/** What is read of an Ingress (networking.k8s.io/v1). */
export interface IngressObject extends KubeObject {
  spec?: { tls?: { hosts?: string[] | null }[] | null } | null;
  status?: { loadBalancer?: { ingress?: { ip?: string | null; hostname?: string | null }[] | null } | null } | null;
}

export interface IngressTargetOptions {
  /** The port probed on every host (443). */
  port: number;
  caFile?: string;
}

/**
 * The probe targets of one Ingress: every host of `spec.tls[].hosts`, once, at `host:port`, in the
 * Ingress's namespace; the host is the SNI and the name checked. When the Ingress has a load-balancer
 * address (`status.loadBalancer.ingress[0]`: its `ip`, else its `hostname`) the probe connects there,
 * so hosts whose DNS does not point at this cluster (yet, or from inside it) are still probed through
 * the ingress controller that serves them. Wildcard hosts (`*.example.com`) name no host that can be
 * dialled; they are skipped (and logged once, at info).
 */
export function ingressTargets(ingress: IngressObject, options: IngressTargetOptions, warnings?: ObjectWarnings): ProbeTarget[] {
  const namespace = ingress.metadata?.namespace ?? "";
  const name = ingress.metadata?.name ?? "";
  const balancer = (ingress.status?.loadBalancer?.ingress ?? []).find((lb) => lb.ip || lb.hostname);
  const connectTo = balancer?.ip || balancer?.hostname || undefined;
  const hosts = new Set<string>();
  for (const tls of ingress.spec?.tls ?? []) {
    for (const raw of tls.hosts ?? []) {
      const host = raw.trim().toLowerCase().replace(/\.$/, "");
      if (!host) continue;
      if (host.startsWith("*")) {
        warnings?.warn(namespace, name, "skipping a wildcard Ingress host: it names no host to probe", { host }, "info");
        continue;
      }
      hosts.add(host);
    }
  }
  return [...hosts].map((host) => {
    const target: ProbeTarget = { namespace, address: `${host}:${options.port}` };
    if (connectTo) target.connectTo = dialHost(connectTo);
    if (options.caFile) target.caFile = options.caFile;
    return target;
  });
}

/** Ingresses, through list-and-watch: `sources.discovery.ingresses`. */
export function ingressProvider(config: DiscoveryConfig["ingresses"], kubernetes: KubernetesConfig, kubeConfig: KubeConfig, ctx: SourceContext): KubeTargetProvider<IngressObject> {
  const warnings = new ObjectWarnings(ctx.log, "endpoint");
  const options: IngressTargetOptions = { port: config.port, ...(config.caFile ? { caFile: config.caFile } : {}) };
  return new KubeTargetProvider<IngressObject>(
    {
      name: "ingresses",
      resource: {
        resource: "ingresses",
        group: "networking.k8s.io",
        path: resourcePath("networking.k8s.io", "v1", "ingresses", true),
      },
      kubeConfig,
      kubernetes,
      namespaces: new NamespaceFilter(config.namespaces),
      ...(config.labelSelector ? { labelSelector: config.labelSelector } : {}),
      targets: (ingress) => ingressTargets(ingress, options, warnings),
      forget: (namespace, name) => warnings.forget(namespace, name),
    },
    ctx,
  );
}
