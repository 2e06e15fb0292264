/**
 * prom-client's metric classes, each from its own file. The package's index also loads every default
 * metric, and with `process_cpu_seconds_total` the whole of @opentelemetry/api (51 files) for
 * exemplars this exporter never takes: about 30 ms of every start on Node 20 (docs/benchmarks.md,
 * "Start time"). The classes are the same objects the index exports (one CommonJS module each), so
 * `instanceof` holds across both.
 */
import { createRequire } from "node:module";
import type * as PromClient from "prom-client";

const load = createRequire(import.meta.url);

export const Registry = load("prom-client/lib/registry.js") as typeof PromClient.Registry;
export type Registry<T extends PromClient.RegistryContentType = PromClient.PrometheusContentType> = PromClient.Registry<T>;
export const Counter = load("prom-client/lib/counter.js") as typeof PromClient.Counter;
export type Counter<T extends string = string> = PromClient.Counter<T>;
export const Gauge = load("prom-client/lib/gauge.js") as typeof PromClient.Gauge;
export type Gauge<T extends string = string> = PromClient.Gauge<T>;
export type { Metric, RegistryContentType } from "prom-client";
