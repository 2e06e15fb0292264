import type { KubeConfig } from "@kubernetes/client-node";
import picomatch from "picomatch";
import type { ConfigMapsConfig, KubernetesConfig } from "../config.js";
import type { CertReadError } from "../errors.js";
import { byteField, fieldsDigest, KubeCertificateSource, parseFound, type CertificateKind } from "./kube-certificates.js";
import { resourcePath, type KubeObject } from "./kube-collection.js";
import { NamespaceFilter } from "./namespaces.js";
import type { SourceContext } from "./source.js";

/** What is read of a ConfigMap. */
export interface ConfigMapObject extends KubeObject {
  data?: Record<string, string> | null;
  binaryData?: Record<string, string> | null;
}

/** One key of a ConfigMap that may hold certificates, its value as it came. */
export interface ConfigMapEntry {
  key: string;
  field: "data" | "binaryData";
  raw: string;
}

/** An entry's bytes: `data` is UTF-8 text, `binaryData` base64. */
export function configMapBytes(entry: ConfigMapEntry): Buffer | CertReadError {
  return entry.field === "data" ? Buffer.from(entry.raw, "utf8") : byteField(entry.raw, `binaryData ${entry.key}`);
}

/**
 * The keys of `data` (UTF-8 text) and `binaryData` (base64) that `matchKey` selects, sorted; empty
 * values are skipped. Pure: the whole ConfigMap is read here and nothing of it is kept.
 */
export function configMapEntries(configMap: ConfigMapObject, matchKey: (key: string) => boolean): ConfigMapEntry[] {
  const out: ConfigMapEntry[] = [];
  for (const [field, values] of [
    ["data", configMap.data],
    ["binaryData", configMap.binaryData],
  ] as const) {
    if (!values) continue;
    for (const key of Object.keys(values)) {
      const raw = values[key];
      if (typeof raw !== "string" || raw === "" || !matchKey(key)) continue;
      out.push({ key, field, raw });
    }
  }
  return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/**
 * ConfigMaps as a kind of the collection engine. Locations: `{source: "configmap", namespace, name:
 * <ConfigMap>, key: <data or binaryData key>}`. ConfigMaps cannot be selected by content on the
 * server, so every one in scope is sent; each list page is read and dropped, and only a digest of
 * the matching keys and the certificate facts are kept.
 */
export function configMapKind(config: ConfigMapsConfig, ctx: SourceContext): CertificateKind<ConfigMapObject> {
  const matchKey = picomatch(config.keys, { dot: true });
  return {
    name: "configmap",
    source: "configmap",
    resource: { resource: "configmaps", group: "", path: resourcePath("", "v1", "configmaps", true) },
    namespaces: new NamespaceFilter(config.namespaces, ctx.shard),
    includeKey: "sources.configMaps.namespaces.include",
    ...(config.labelSelector ? { labelSelector: config.labelSelector } : {}),
    digest: (configMap) => fieldsDigest(configMapEntries(configMap, matchKey)),
    read: (configMap) => configMapEntries(configMap, matchKey).map((entry) => parseFound(ctx, entry.key, configMapBytes(entry))),
  };
}

export function configMapsSource(config: ConfigMapsConfig, kubeConfig: KubeConfig, kubernetes: KubernetesConfig, ctx: SourceContext): KubeCertificateSource {
  return new KubeCertificateSource("configmap", [configMapKind(config, ctx)], kubeConfig, kubernetes, ctx);
}
