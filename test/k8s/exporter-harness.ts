/**
 * Runs a Kubernetes source (the Secrets source by default, or any KubeCertificateSource through
 * startKubeHarness) against the API server double and compares what the exporter holds with what
 * the double stores: one helper computes the expected locations from the double's state, so each
 * fault test ends with "exactly the server's state, nothing missing, stale or duplicated".
 */
import { X509Certificate } from "node:crypto";
import { Writable } from "node:stream";
import type { KubeConfig } from "@kubernetes/client-node";
import picomatch from "picomatch";
import { pino } from "pino";
import { ParseCache } from "../../src/certs/cache.js";
import { validateConfig, type Config } from "../../src/config.js";
import { Health } from "../../src/health.js";
import { Inventory } from "../../src/inventory.js";
import type { SourceKind } from "../../src/model.js";
import { loadKubeConfig } from "../../src/kube/client.js";
import { MetricsRenderer } from "../../src/metrics.js";
import { SecretsSource } from "../../src/sources/secrets.js";
import type { Source } from "../../src/sources/source.js";
import type { Shard } from "../../src/shard.js";
import { SourceContext } from "../../src/sources/source.js";
import { CertificateChecks } from "../../src/checks.js";
import { makeCert, type Issued } from "../../scripts/certgen.js";
import { FakeApiServer, type ApiServerOptions, type K8sObject } from "./apiserver.js";

export interface HarnessOptions {
  api?: ApiServerOptions;
  /** Reuse a running double (not closed by the harness). */
  server?: FakeApiServer;
  /** sources.secrets, merged over `enabled: true`. */
  secrets?: Record<string, unknown>;
  /** kubernetes, merged over fast test timings and the double's kubeconfig. */
  kubernetes?: Record<string, unknown>;
  /** Parse cache size; default 1000. */
  cacheEntries?: number;
  /** This replica's shard; default: one replica. */
  shard?: Shard;
  /** The configuration's `checks`, merged over the defaults; absent: no key or chain checks. */
  checks?: Record<string, unknown>;
}

export interface KubeHarnessOptions<S extends Source> extends Omit<HarnessOptions, "secrets"> {
  /** The configuration's `sources`, validated with the rest (every source off unless enabled here). */
  sources: Record<string, unknown>;
  /** Builds the source under test from the validated configuration, its context and the double's client configuration. */
  build(config: Config, ctx: SourceContext, kubeConfig: KubeConfig): S;
}

export interface KubeHarness<S extends Source> {
  api: FakeApiServer;
  source: S;
  config: Config;
  ctx: SourceContext;
  inventory: Inventory;
  health: Health;
  cache: ParseCache;
  /** Renders the inventory and the exporter's own metrics as /metrics does. */
  renderer: MetricsRenderer;
  /** Log lines (parsed JSON) written so far. */
  logs: Record<string, unknown>[];
  close(): Promise<void>;
}

export type Harness = KubeHarness<SecretsSource>;

interface Teardown {
  teardown(fn: () => unknown): void;
}

/** The Secrets source against the double (sources.secrets merged over `enabled: true`). */
export function startHarness(t: Teardown, opts: HarnessOptions = {}): Promise<Harness> {
  const { secrets, ...rest } = opts;
  return startKubeHarness(t, {
    ...rest,
    sources: { secrets: { enabled: true, ...secrets } },
    build: (config, ctx, kubeConfig) => new SecretsSource({ secrets: config.sources.secrets, kubernetes: config.kubernetes, kubeConfig }, ctx),
  });
}

/** Any Kubernetes source against the double, built by `opts.build`; stopped (and the double closed, unless shared) at teardown. */
export async function startKubeHarness<S extends Source>(t: Teardown, opts: KubeHarnessOptions<S>): Promise<KubeHarness<S>> {
  const api = opts.server ?? (await FakeApiServer.start({ bookmarkIntervalMs: 200, ...opts.api }));
  const config = validateConfig({
    logLevel: "debug",
    sources: opts.sources,
    ...(opts.checks ? { checks: opts.checks } : {}),
    kubernetes: { kubeconfig: api.kubeconfigPath(), backoff: { initial: "20ms", max: "200ms" }, watchTimeout: "5s", requestTimeout: "5s", ...opts.kubernetes },
  });
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString("utf8").split("\n")) if (line.trim()) logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const log = pino({ level: "debug" }, sink);
  const inventory = new Inventory();
  const health = new Health(inventory);
  const cache = new ParseCache(opts.cacheEntries ?? 1000);
  const checks = opts.checks ? new CertificateChecks(config.checks, cache, log) : undefined;
  const ctx = new SourceContext(inventory, cache, health, log, { shard: opts.shard, ...(checks ? { checks } : {}) });
  const kubeConfig = loadKubeConfig({ kubeconfig: config.kubernetes.kubeconfig, context: config.kubernetes.context });
  const source = opts.build(config, ctx, kubeConfig);
  const renderer = new MetricsRenderer(inventory, health);
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await source.stop();
    if (!opts.server) await api.close();
  };
  t.teardown(close);
  return { api, source, config, ctx, inventory, health, cache, renderer, logs, close };
}

// ---------------------------------------------------------------- certificates

let certs: Issued[] | undefined;

/** A pool of distinct certificates (cached for the process). */
export async function certPool(n = 8): Promise<Issued[]> {
  certs ??= [];
  while (certs.length < n) certs.push(await makeCert({ cn: `cert-${certs.length}.example`, notAfterDays: 30 + certs.length }));
  return certs.slice(0, n);
}

export function serialsOfPem(text: string): string[] {
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((b) => new X509Certificate(b).serialNumber.toLowerCase().replace(/^0+(?=.)/, ""));
}

// ---------------------------------------------------------------- expected vs actual

export interface ExpectSpec {
  /** Secret types read; undefined: every type. Default ["kubernetes.io/tls"]. */
  types?: string[] | undefined;
  /** Data key globs read (PEM only). Default tls.crt, ca.crt. */
  keys?: string[];
  include?: string[];
  exclude?: string[];
  /** Label requirement as key=value. */
  label?: string;
  /** Namespaces the exporter may not read: expect one forbidden error location there instead. */
  forbidden?: string[];
}

/**
 * The locations the exporter must hold for the double's current Secrets, as `ns/name/key` →
 * serials (PEM keys) or `!reason` (error locations). Computed independently of the source's code.
 */
export function expectedLocations(api: FakeApiServer, spec: ExpectSpec = {}): Record<string, string> {
  const types = "types" in spec ? spec.types : ["kubernetes.io/tls"];
  const keyMatch = picomatch(spec.keys ?? ["tls.crt", "ca.crt"], { dot: true });
  const inc = spec.include?.length ? picomatch(spec.include) : () => true;
  const exc = spec.exclude?.length ? picomatch(spec.exclude) : () => false;
  const out: Record<string, string> = {};
  for (const ns of spec.forbidden ?? []) out[`${ns}//`] = "!forbidden";
  for (const s of api.list("secrets") as (K8sObject & { type?: string; data?: Record<string, string> })[]) {
    const ns = s.metadata.namespace ?? "";
    if (!inc(ns) || exc(ns) || spec.forbidden?.includes(ns)) continue;
    if (types && !types.includes(s.type ?? "")) continue;
    if (spec.label) {
      const [k, v] = spec.label.split("=");
      if (s.metadata.labels?.[k!] !== v) continue;
    }
    for (const [key, value] of Object.entries(s.data ?? {})) {
      if (!value || !keyMatch(key)) continue;
      const text = Buffer.from(value, "base64").toString("utf8");
      const serials = serialsOfPem(text);
      out[`${ns}/${s.metadata.name}/${key}`] = serials.length ? serials.join(",") : "!error";
    }
  }
  return sortKeys(out);
}

/** What the exporter holds for one source (default "secret"), in the same form. */
export function actualLocations(inventory: Inventory, source: SourceKind = "secret"): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of inventory.entries()) {
    if (e.location.source !== source) continue;
    const id = `${e.location.namespace}/${e.location.name}/${e.location.key}`;
    if (id in out) throw new Error(`duplicate location ${id}`);
    out[id] = e.error ? (e.error.reason === "forbidden" ? "!forbidden" : "!error") : e.certificates.map((c) => c.serial.replace(/^0+(?=.)/, "")).join(",");
  }
  return sortKeys(out);
}

export function sortKeys(o: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** Polls `check` every 20 ms until it returns true, at most `tries` times; returns the last result. */
export async function eventually(check: () => boolean | Promise<boolean>, tries = 500): Promise<boolean> {
  for (let i = 0; i < tries; i++) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return check();
}

export interface Convergence {
  actual: Record<string, string>;
  expected: Record<string, string>;
}

/** Waits until `actual()` equals `expected()` (both recomputed each poll); returns the last of both for t.same. */
export async function convergeWith(actualOf: () => Record<string, string>, expectedOf: () => Record<string, string>, tries = 500): Promise<Convergence> {
  let actual: Record<string, string> = {};
  let expected: Record<string, string> = {};
  await eventually(() => {
    actual = actualOf();
    expected = expectedOf();
    return JSON.stringify(actual) === JSON.stringify(expected);
  }, tries);
  return { actual, expected };
}

/** Waits until the exporter's Secret locations equal the expected ones; returns both for t.same. */
export function converge(h: Pick<Harness, "api" | "inventory">, spec: ExpectSpec = {}, tries = 500): Promise<Convergence> {
  return convergeWith(
    () => actualLocations(h.inventory),
    () => expectedLocations(h.api, spec),
    tries,
  );
}

/** A TLS Secret with the given certificates (PEM) in tls.crt and optionally ca.crt. */
export function putTls(api: FakeApiServer, ns: string, name: string, crt: Issued[], ca?: Issued, opts: { labels?: Record<string, string>; annotations?: Record<string, string> } = {}): K8sObject {
  const data: Record<string, string> = { "tls.crt": crt.map((c) => c.pem).join(""), "tls.key": "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n" };
  if (ca) data["ca.crt"] = ca.pem;
  return api.putSecret(ns, name, data, { type: "kubernetes.io/tls", ...opts });
}

/** Counter value of a prom-client metric with these labels (0 when absent). */
export async function counter(h: { health: Health }, metric: "relists" | "watchRestarts" | "readErrors", labels: Record<string, string>): Promise<number> {
  const data = await h.health[metric].get();
  return data.values.filter((v) => Object.entries(labels).every(([k, val]) => (v.labels as Record<string, unknown>)[k] === val)).reduce((sum, v) => sum + v.value, 0);
}
