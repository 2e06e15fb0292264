import type { Config } from "../config.js";
import { EndpointSource } from "./endpoints.js";
import { FileSource } from "./files.js";
import { KubeconfigSource } from "./kubeconfig.js";
import { SecretsSource } from "./secrets.js";
import type { Source, SourceContext } from "./source.js";

/** The sources the configuration turns on, in a fixed order. */
export function createSources(config: Config, ctx: SourceContext): Source[] {
  const sources: Source[] = [];
  const { files, kubeconfigs } = config.sources;
  if (files.length) sources.push(new FileSource(files, { intervalSeconds: config.intervals.files, maxFileSize: config.limits.maxFileSize }, ctx));
  if (kubeconfigs.length) {
    sources.push(new KubeconfigSource(kubeconfigs, { intervalSeconds: config.intervals.kubeconfigs, maxFileSize: config.limits.maxFileSize }, ctx));
  }
  if (config.sources.secrets.enabled) sources.push(new SecretsSource({ secrets: config.sources.secrets, kubernetes: config.kubernetes }, ctx));
  if (config.sources.endpoints.length) {
    const { timeout, connectTimeout, concurrency, jitter } = config.probe;
    sources.push(new EndpointSource(config.sources.endpoints, { intervalSeconds: config.intervals.endpoints, jitter, concurrency, timeout, connectTimeout }, ctx));
  }
  return sources;
}
