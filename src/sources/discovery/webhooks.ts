import type { KubeConfig } from "@kubernetes/client-node";
import type { CaBundlesConfig, KubernetesConfig } from "../../config.js";
import { CertReadError } from "../../errors.js";
import { caBundleBytes, caBundleEntries, CA_BUNDLE_KINDS, type CaBundleKindKey, type CaBundleObject } from "../cabundles.js";
import type { ProbeTarget } from "../endpoints.js";
import { resourcePath } from "../kube-collection.js";
import { ObjectWarnings } from "../object-warnings.js";
import type { SourceContext } from "../source.js";
import { hostPort, KubeTargetProvider } from "./common.js";

/** `host` and `port` of an https URL, the way the API server dials it (port 443 when absent). */
function urlHostPort(url: string): { host: string; port: number } | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return undefined;
  }
  if (parsed.protocol !== "https:" || !parsed.hostname) return undefined;
  const host = parsed.hostname.startsWith("[") ? parsed.hostname.slice(1, -1) : parsed.hostname;
  return { host, port: parsed.port ? Number(parsed.port) : 443 };
}

/**
 * The serving endpoints behind an object's caBundle fields, probed the way the API server calls
 * them: a Service reference at `<service>.<namespace>.svc:<port>` (port 443 when unset), resolved by
 * cluster DNS as the API server's webhook client does, with that name as SNI and as the name checked;
 * a URL at its host and port. The object's caBundle is the only trust anchor, so
 * `cert_endpoint_chain_verified` 0 means the API server would reject the certificate: a serving
 * certificate renewed by a CA the bundle does not hold yet shows here before any call fails.
 *
 * The location: `{source: "endpoint", namespace: <Service namespace, "" for a URL>, name: host:port,
 * key: "<Kind>/<object>/<caBundle key>"}`, one per webhook, so that two webhooks sharing a Service
 * with different bundles are each verified against their own. A bundle that is not base64 is the
 * cabundle source's read error; it is not probed.
 */
export function caBundleProbeTargets(kindKey: CaBundleKindKey, object: CaBundleObject, warnings?: ObjectWarnings): ProbeTarget[] {
  const { kind } = CA_BUNDLE_KINDS[kindKey];
  const objectName = object.metadata?.name ?? "";
  const out: ProbeTarget[] = [];
  for (const entry of caBundleEntries(kindKey, object)) {
    const bytes = caBundleBytes(entry);
    if (bytes instanceof CertReadError) continue;
    const key = `${kind}/${objectName}/${entry.key}`;
    const trust = { caPem: [bytes.toString("latin1")], caOnly: true, key };
    if (entry.service) {
      const host = `${entry.service.name}.${entry.service.namespace}.svc`;
      out.push({ namespace: entry.service.namespace, address: hostPort(host, entry.service.port), serverName: host, ...trust });
      continue;
    }
    const url = entry.url === undefined ? undefined : urlHostPort(entry.url);
    if (!url) {
      warnings?.warn("", objectName, "not probing a caBundle that names neither a Service nor an https URL", { key: entry.key });
      continue;
    }
    out.push({ namespace: "", address: hostPort(url.host, url.port), ...trust });
  }
  return out;
}

/** The probe targets of every enabled kind's objects: one provider each, `serving/<resource>` in health. */
export function caBundleProbeProviders(config: CaBundlesConfig, kubernetes: KubernetesConfig, kubeConfig: KubeConfig, ctx: SourceContext): KubeTargetProvider<CaBundleObject>[] {
  return (Object.keys(CA_BUNDLE_KINDS) as CaBundleKindKey[])
    .filter((key) => config[key].probe)
    .map((key) => {
      const { group, resource } = CA_BUNDLE_KINDS[key];
      const warnings = new ObjectWarnings(ctx.log, "endpoint");
      const labelSelector = config[key].labelSelector;
      return new KubeTargetProvider<CaBundleObject>(
        {
          name: `serving/${resource}`,
          resource: { resource, group, path: resourcePath(group, "v1", resource, false) },
          kubeConfig,
          kubernetes,
          ...(labelSelector ? { labelSelector } : {}),
          targets: (object) => caBundleProbeTargets(key, object, warnings),
          forget: (namespace, name) => warnings.forget(namespace, name),
        },
        ctx,
      );
    });
}
