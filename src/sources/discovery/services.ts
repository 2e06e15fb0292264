import type { KubeConfig } from "@kubernetes/client-node";
import type { DiscoveryConfig, KubernetesConfig } from "../../config.js";
import { PROBE_PROTOCOLS, type ProbeProtocol } from "../../probe/protocols.js";
import type { ProbeTarget } from "../endpoints.js";
import { NamespaceFilter } from "../namespaces.js";
import type { SourceContext } from "../source.js";
import { resourcePath, type KubeObject } from "../kube-collection.js";
import { ObjectWarnings } from "../object-warnings.js";
import { dialHost, KubeTargetProvider } from "./common.js";

export const ANNOTATION_PROBE = "cert-expiry-exporter.io/probe";
export const ANNOTATION_PORT = "cert-expiry-exporter.io/port";
export const ANNOTATION_SERVER_NAME = "cert-expiry-exporter.io/server-name";
export const ANNOTATION_PROTOCOL = "cert-expiry-exporter.io/probe-protocol";

/** What is read of a Service. */
export interface ServiceObject extends KubeObject {
  spec?: {
    type?: string | null;
    clusterIP?: string | null;
    externalName?: string | null;
    ports?: { name?: string | null; port?: number | null }[] | null;
  } | null;
}

export interface ServiceTargetOptions {
  caFile?: string;
}

/**
 * The probe target of one Service annotated `cert-expiry-exporter.io/probe: "true"` (exactly; any
 * other value, or none, means no target).
 *
 * - Port: `cert-expiry-exporter.io/port`, a port number or the name of one of the Service's ports;
 *   without it, the port named `https`. A Service that names no port it has is skipped with a warning
 *   (logged once).
 * - Name: `<service>.<namespace>.svc:<port>` (the location's `name` label), in the Service's namespace.
 * - Dial: the Service's cluster IP, so the probe depends on no cluster DNS (an exporter on the host
 *   network, or with another DNS policy, still reaches it); a headless Service (`clusterIP: None`) is
 *   dialled by its DNS name, an ExternalName Service at its `externalName`.
 * - SNI and the name checked against the leaf: `cert-expiry-exporter.io/server-name` when set, else
 *   `<service>.<namespace>.svc`.
 * - Protocol: `cert-expiry-exporter.io/probe-protocol`, one of PROBE_PROTOCOLS (`smtp`, `ldap`, …) for
 *   a STARTTLS upgrade; without it, `tls`. A Service naming another protocol is skipped with a
 *   warning (logged once).
 */
export function serviceTargets(service: ServiceObject, options: ServiceTargetOptions = {}, warnings?: ObjectWarnings): ProbeTarget[] {
  const annotations = service.metadata?.annotations ?? {};
  if (annotations[ANNOTATION_PROBE] !== "true") return [];
  const namespace = service.metadata?.namespace ?? "";
  const name = service.metadata?.name ?? "";
  const spec = service.spec ?? {};
  const ports = spec.ports ?? [];
  const wanted = annotations[ANNOTATION_PORT]?.trim();
  let port: number | undefined;
  if (wanted) {
    if (/^\d{1,5}$/.test(wanted)) port = Number(wanted);
    else port = ports.find((p) => p.name === wanted)?.port ?? undefined;
    if (port === undefined || port < 1 || port > 65535) {
      warnings?.warn(namespace, name, `not probing the Service: ${ANNOTATION_PORT} is neither a port number nor the name of one of its ports`, { annotation: ANNOTATION_PORT, value: wanted.slice(0, 100) });
      return [];
    }
  } else {
    port = ports.find((p) => p.name === "https")?.port ?? undefined;
    if (port === undefined) {
      warnings?.warn(namespace, name, `not probing the Service: it has no port named https and no ${ANNOTATION_PORT} annotation`);
      return [];
    }
  }
  const protocol = annotations[ANNOTATION_PROTOCOL]?.trim();
  if (protocol && !(PROBE_PROTOCOLS as readonly string[]).includes(protocol)) {
    warnings?.warn(namespace, name, `not probing the Service: ${ANNOTATION_PROTOCOL} is none of ${PROBE_PROTOCOLS.join(", ")}`, { annotation: ANNOTATION_PROTOCOL, value: protocol.slice(0, 100) });
    return [];
  }
  const target: ProbeTarget = { namespace, address: `${name}.${namespace}.svc:${port}` };
  if (protocol && protocol !== "tls") target.protocol = protocol as ProbeProtocol;
  if (spec.type === "ExternalName" && spec.externalName) target.connectTo = dialHost(spec.externalName);
  else if (spec.clusterIP && spec.clusterIP !== "None") target.connectTo = dialHost(spec.clusterIP);
  const serverName = annotations[ANNOTATION_SERVER_NAME]?.trim();
  if (serverName) target.serverName = serverName;
  if (options.caFile) target.caFile = options.caFile;
  return [target];
}

/** Annotated Services, through list-and-watch: `sources.discovery.services`. */
export function serviceProvider(config: DiscoveryConfig["services"], kubernetes: KubernetesConfig, kubeConfig: KubeConfig, ctx: SourceContext): KubeTargetProvider<ServiceObject> {
  const warnings = new ObjectWarnings(ctx.log, "endpoint");
  const options: ServiceTargetOptions = config.caFile ? { caFile: config.caFile } : {};
  return new KubeTargetProvider<ServiceObject>(
    {
      name: "services",
      resource: {
        resource: "services",
        group: "",
        path: resourcePath("", "v1", "services", true),
      },
      kubeConfig,
      kubernetes,
      namespaces: new NamespaceFilter(config.namespaces),
      ...(config.labelSelector ? { labelSelector: config.labelSelector } : {}),
      targets: (service) => serviceTargets(service, options, warnings),
      forget: (namespace, name) => warnings.forget(namespace, name),
    },
    ctx,
  );
}
