import type { Cluster, KubeConfig } from "@kubernetes/client-node";
import type { Logger } from "../../log.js";
import type { ProbeTarget, TargetProvider } from "../endpoints.js";
import { hostPort } from "./common.js";

/**
 * The Kubernetes API server the exporter talks to, as one endpoint target: the `server` URL of the
 * client configuration's current cluster (in a pod: `https://$KUBERNETES_SERVICE_HOST:$PORT`, the
 * `kubernetes` Service's cluster IP), location name `host:port`, namespace "". Its chain is verified
 * against the CA the client configuration trusts (`certificate-authority-data` inline, or the
 * `certificate-authority` file such as the service account's ca.crt, re-read on every probe so a
 * rotated CA is picked up), and the name checked is the kubeconfig's `tls-server-name` when it has
 * one. With `insecure-skip-tls-verify` and no CA, only the system roots are trusted. Returns
 * undefined when the URL is not https.
 */
export function apiServerTarget(cluster: Pick<Cluster, "server" | "caData" | "caFile" | "tlsServerName">): ProbeTarget | undefined {
  let url: URL;
  try {
    url = new URL(cluster.server);
  } catch {
    return undefined;
  }
  if (url.protocol !== "https:") return undefined;
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  const port = url.port ? Number(url.port) : 443;
  const target: ProbeTarget = { namespace: "", address: hostPort(host, port) };
  if (cluster.tlsServerName) target.serverName = cluster.tlsServerName;
  if (cluster.caData) target.caPem = [Buffer.from(cluster.caData, "base64").toString("utf8")];
  else if (cluster.caFile) target.caFile = cluster.caFile;
  return target;
}

/** `sources.discovery.apiServer`: no API call; the target comes from the client configuration. */
export class ApiServerTarget implements TargetProvider {
  readonly name = "apiserver";
  readonly #targets: readonly ProbeTarget[];

  constructor(kubeConfig: KubeConfig, log: Logger) {
    const cluster = kubeConfig.getCurrentCluster();
    const target = cluster ? apiServerTarget(cluster) : undefined;
    if (!target) log.warn({ source: "endpoint", server: cluster?.server }, "not probing the API server: its URL in the client configuration is not https");
    this.#targets = target ? [target] : [];
  }

  async start(onChange: (targets: readonly ProbeTarget[]) => void): Promise<void> {
    onChange(this.#targets);
  }

  async list(): Promise<readonly ProbeTarget[]> {
    return this.#targets;
  }

  async stop(): Promise<void> {}
}
