import type { KubeConfig } from "@kubernetes/client-node";
import type { DiscoveryConfig, KubernetesConfig } from "../../config.js";
import type { ProbeTarget } from "../endpoints.js";
import type { SourceContext } from "../source.js";
import { resourcePath, type KubeObject } from "../kube-collection.js";
import { ObjectWarnings } from "../object-warnings.js";
import { dialHost, KubeTargetProvider } from "./common.js";

/** What is read of a Node. */
export interface NodeObject extends KubeObject {
  status?: { addresses?: { type?: string | null; address?: string | null }[] | null } | null;
}

export interface KubeletTargetOptions {
  /** The kubelet's port (10250). */
  port: number;
  caFile?: string;
}

/**
 * The kubelet of one Node: `<node name>:<port>` (the location's `name`; namespace ""), dialled at the
 * Node's first InternalIP, with the node name as SNI and as the name checked (kubelet serving
 * certificates name the node). A Node without an InternalIP is skipped with a warning (logged once).
 */
export function kubeletTargets(node: NodeObject, options: KubeletTargetOptions, warnings?: ObjectWarnings): ProbeTarget[] {
  const name = node.metadata?.name ?? "";
  if (!name) return [];
  const ip = (node.status?.addresses ?? []).find((a) => a.type === "InternalIP" && a.address)?.address;
  if (!ip) {
    warnings?.warn("", name, "not probing the kubelet: the Node has no InternalIP address");
    return [];
  }
  const target: ProbeTarget = { namespace: "", address: `${name}:${options.port}`, connectTo: dialHost(ip) };
  if (options.caFile) target.caFile = options.caFile;
  return [target];
}

/** Every Node's kubelet, through list-and-watch of Nodes: `sources.discovery.kubelets`. */
export function kubeletProvider(config: DiscoveryConfig["kubelets"], kubernetes: KubernetesConfig, kubeConfig: KubeConfig, ctx: SourceContext): KubeTargetProvider<NodeObject> {
  const warnings = new ObjectWarnings(ctx.log, "endpoint");
  const options: KubeletTargetOptions = { port: config.port, ...(config.caFile ? { caFile: config.caFile } : {}) };
  return new KubeTargetProvider<NodeObject>(
    {
      name: "kubelets",
      resource: {
        resource: "nodes",
        group: "",
        path: resourcePath("", "v1", "nodes", false),
      },
      kubeConfig,
      kubernetes,
      ...(config.labelSelector ? { labelSelector: config.labelSelector } : {}),
      targets: (node) => kubeletTargets(node, options, warnings),
      forget: (namespace, name) => warnings.forget(namespace, name),
    },
    ctx,
  );
}
