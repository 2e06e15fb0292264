/**
 * The endpoint source that createSources builds for a configuration's `sources` (discovery, probed
 * caBundles, static endpoints) against the Kubernetes API double, with its inventory, health and
 * captured logs: what the discovery and webhook-probe tests drive.
 */
import { Writable } from "node:stream";
import { pino } from "pino";
import type { Test } from "tap";
import { ParseCache } from "../../src/certs/cache.js";
import { validateConfig } from "../../src/config.js";
import { Health } from "../../src/health.js";
import { Inventory } from "../../src/inventory.js";
import type { Location, LocationEntry } from "../../src/model.js";
import type { EndpointSource } from "../../src/sources/endpoints.js";
import { createSources } from "../../src/sources/index.js";
import { SourceContext } from "../../src/sources/source.js";
import type { FakeApiServer } from "../k8s/apiserver.js";

export interface EndpointRun {
  source: EndpointSource;
  inventory: Inventory;
  health: Health;
  logs: Record<string, unknown>[];
  /** Every endpoint location, sorted by key. */
  endpoints(): LocationEntry[];
  /** `namespace/name/key` of every endpoint location. */
  ids(): string[];
  entry(namespace: string, name: string, key?: string): LocationEntry | undefined;
}

export async function endpointRun(t: Test, api: FakeApiServer, sources: Record<string, unknown>): Promise<EndpointRun> {
  const config = validateConfig({
    logLevel: "debug",
    intervals: { endpoints: 3600 },
    probe: { timeout: 5, connectTimeout: 2, jitter: 0 },
    sources,
    kubernetes: { kubeconfig: api.kubeconfigPath(), backoff: { initial: "20ms", max: "200ms" }, watchTimeout: "5s", requestTimeout: "5s" },
  });
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString("utf8").split("\n")) if (line.trim()) logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const inventory = new Inventory();
  const health = new Health(inventory);
  const ctx = new SourceContext(inventory, new ParseCache(1000), health, pino({ level: "debug" }, sink));
  const built = await createSources(config, ctx);
  t.same(
    built.map((s) => s.name),
    ["endpoint"],
    "only the endpoint source is built",
  );
  const source = built[0] as EndpointSource;
  t.teardown(() => source.stop());
  const endpoints = () => [...inventory.entries()].filter((e) => e.location.source === "endpoint").sort((a, b) => (a.location.key < b.location.key ? -1 : a.location.key > b.location.key ? 1 : 0));
  const ids = () => endpoints().map((e) => `${e.location.namespace}/${e.location.name}/${e.location.key}`).sort();
  const entry = (namespace: string, name: string, key = "") => inventory.get({ source: "endpoint", namespace, name, key } satisfies Location);
  return { source, inventory, health, logs, endpoints, ids, entry };
}
