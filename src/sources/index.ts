import type { Config } from "../config.js";
import { EndpointSource } from "./endpoints.js";
import { FileSource } from "./files.js";
import { KubeconfigSource } from "./kubeconfig.js";
import type { Source, SourceContext } from "./source.js";

/**
 * The sources the configuration turns on, in a fixed order. The Kubernetes client (about 70 MiB and
 * a second of start-up) is loaded only when a Kubernetes source is on, so a file-only `check` in a
 * pipeline starts without it.
 */
export async function createSources(config: Config, ctx: SourceContext): Promise<Source[]> {
  const sources: Source[] = [];
  const { files, kubeconfigs, secrets, discovery, endpoints } = config.sources;
  const { maxFileSize, maxGlobEntries } = config.limits;
  if (files.length) sources.push(new FileSource(files, { intervalSeconds: config.intervals.files, maxFileSize, maxGlobEntries }, ctx));
  if (kubeconfigs.length) sources.push(new KubeconfigSource(kubeconfigs, { intervalSeconds: config.intervals.kubeconfigs, maxFileSize, maxGlobEntries }, ctx));
  const discovering = Object.values(discovery).some((kind) => kind.enabled);
  const kubernetes = secrets.enabled || discovering ? (await import("./kubernetes.js")).kubernetesSources(config, ctx) : {};
  if (kubernetes.secrets) sources.push(kubernetes.secrets);
  const found = kubernetes.discovery;
  if (endpoints.length || found) {
    const { timeout, connectTimeout, concurrency, jitter } = config.probe;
    const options = { intervalSeconds: config.intervals.endpoints, jitter, concurrency, timeout, connectTimeout, maxFileSize };
    sources.push(new EndpointSource(endpoints, options, ctx, found));
  }
  return sources;
}
