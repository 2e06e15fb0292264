import type { KubeConfig } from "@kubernetes/client-node";
import type { CaBundlesConfig, KubernetesConfig } from "../config.js";
import type { CertReadError } from "../errors.js";
import { byteField, fieldsDigest, KubeCertificateSource, parseFound, type CertificateKind } from "./kube-certificates.js";
import { resourcePath, type KubeObject, type KubeResource } from "./kube-collection.js";
import type { SourceContext } from "./source.js";

/** Where the API server sends a call: a Service in the cluster, or a URL. */
export interface ClientConfig {
  caBundle?: string | null;
  service?: { namespace?: string | null; name?: string | null; path?: string | null; port?: number | null } | null;
  url?: string | null;
}

/** What is read of the objects of the four kinds. */
export interface CaBundleObject extends KubeObject {
  webhooks?: { name?: string | null; clientConfig?: ClientConfig | null }[] | null;
  spec?: {
    caBundle?: string | null;
    service?: { namespace?: string | null; name?: string | null; port?: number | null } | null;
    conversion?: { strategy?: string | null; webhook?: { clientConfig?: ClientConfig | null } | null } | null;
  } | null;
}

/** One caBundle field of an object and where the API server calls with it. */
export interface CaBundleEntry {
  /** The location key: `webhooks/<name>`, `spec.caBundle` or `spec.conversion.webhook.clientConfig.caBundle`. */
  key: string;
  caBundle: string;
  service?: { namespace: string; name: string; port: number; path: string };
  url?: string;
}

/** The kinds that carry caBundle fields, by their key under sources.caBundles. */
export const CA_BUNDLE_KINDS = {
  validatingWebhooks: { kind: "ValidatingWebhookConfiguration", group: "admissionregistration.k8s.io", resource: "validatingwebhookconfigurations" },
  mutatingWebhooks: { kind: "MutatingWebhookConfiguration", group: "admissionregistration.k8s.io", resource: "mutatingwebhookconfigurations" },
  apiServices: { kind: "APIService", group: "apiregistration.k8s.io", resource: "apiservices" },
  crdConversions: { kind: "CustomResourceDefinition", group: "apiextensions.k8s.io", resource: "customresourcedefinitions" },
} as const;
export type CaBundleKindKey = keyof typeof CA_BUNDLE_KINDS;

function entry(key: string, client: ClientConfig | null | undefined, defaultPath: string): CaBundleEntry | undefined {
  const caBundle = client?.caBundle;
  // Empty: the API server trusts its own roots for this call; there is no bundle of ours to watch.
  if (typeof caBundle !== "string" || caBundle === "") return undefined;
  const out: CaBundleEntry = { key, caBundle };
  const service = client?.service;
  if (service?.name && service.namespace) out.service = { namespace: service.namespace, name: service.name, port: service.port ?? 443, path: service.path ?? defaultPath };
  else if (client?.url) out.url = client.url;
  return out;
}

/**
 * The caBundle fields of one object, pure: every webhook of a webhook configuration, an APIService's
 * `spec.caBundle` (called at `spec.service`), a CRD's conversion webhook. Fields that are absent or
 * empty are left out: the API server uses its system roots for those calls.
 */
export function caBundleEntries(kindKey: CaBundleKindKey, object: CaBundleObject): CaBundleEntry[] {
  const out: (CaBundleEntry | undefined)[] = [];
  switch (kindKey) {
    case "validatingWebhooks":
    case "mutatingWebhooks":
      for (const webhook of object.webhooks ?? []) out.push(entry(`webhooks/${webhook.name ?? ""}`, webhook.clientConfig, "/"));
      break;
    case "apiServices": {
      const spec = object.spec;
      out.push(entry("spec.caBundle", spec ? { caBundle: spec.caBundle ?? null, service: spec.service ? { ...spec.service, path: "/" } : null } : undefined, "/"));
      break;
    }
    case "crdConversions":
      if (object.spec?.conversion?.strategy === "Webhook") out.push(entry("spec.conversion.webhook.clientConfig.caBundle", object.spec.conversion.webhook?.clientConfig, "/"));
      break;
  }
  return out.filter((e): e is CaBundleEntry => e !== undefined);
}

/** A caBundle's bytes (base64 of PEM), or bad_base64. */
export function caBundleBytes(entry: CaBundleEntry): Buffer | CertReadError {
  return byteField(entry.caBundle, `${entry.key}: caBundle`);
}

/**
 * One kind with caBundle fields, as a kind of the collection engine. Locations: `{source:
 * "cabundle", namespace: "", name: "<Kind>/<object>", key}`, the key as in caBundleEntries. Every
 * kind is cluster-scoped; its health `source` is its resource (`validatingwebhookconfigurations`…).
 */
export function caBundleKind(kindKey: CaBundleKindKey, labelSelector: string | undefined, ctx: SourceContext): CertificateKind<CaBundleObject> {
  const { kind, group, resource } = CA_BUNDLE_KINDS[kindKey];
  const kubeResource: KubeResource = { resource, group, path: resourcePath(group, "v1", resource, false) };
  return {
    name: resource,
    source: "cabundle",
    resource: kubeResource,
    ...(labelSelector ? { labelSelector } : {}),
    locationName: (object) => `${kind}/${object.metadata?.name ?? ""}`,
    objectName: (locationName) => (locationName.startsWith(`${kind}/`) ? locationName.slice(kind.length + 1) : undefined),
    digest: (object) => fieldsDigest(caBundleEntries(kindKey, object).map(({ key, caBundle }) => ({ key, raw: caBundle }))),
    read: (object) => caBundleEntries(kindKey, object).map((e) => parseFound(ctx, e.key, caBundleBytes(e))),
  };
}

/** The enabled caBundle kinds as one source, `cabundle`. */
export function caBundlesSource(config: CaBundlesConfig, kubeConfig: KubeConfig, kubernetes: KubernetesConfig, ctx: SourceContext): KubeCertificateSource {
  const kinds = (Object.keys(CA_BUNDLE_KINDS) as CaBundleKindKey[]).filter((key) => config[key].enabled).map((key) => caBundleKind(key, config[key].labelSelector, ctx));
  return new KubeCertificateSource("cabundle", kinds, kubeConfig, kubernetes, ctx);
}
