import { isDeepStrictEqual } from "node:util";
import type { FastifyInstance, FastifyPluginAsync } from "fastify";
import { ParseCache } from "./certs/cache.js";
import { CertificateChecks } from "./checks.js";
import type { Config } from "./config.js";
import { ConfigError } from "./errors.js";
import { DecodePool } from "./decode-pool.js";
import type { Health } from "./health.js";
import { HealthState } from "./health-state.js";
import { Inventory } from "./inventory.js";
import type { SourceKind } from "./model.js";
import { createLogger, type Logger } from "./log.js";
import { resolveShard } from "./shard.js";
import type { EndpointSource } from "./sources/endpoints.js";
import { SOURCE_SLOTS, createSource, createSourceSlots, sourceSettings, type SourceSlot } from "./sources/index.js";
import { SourceContext, type Source } from "./sources/source.js";
import { VERSION } from "./version.js";
import type { WebConfig } from "./web-config.js";

/** Share of http.shutdownTimeout that requests in flight get to finish; the rest is for closing and exiting. */
const SHUTDOWN_GRACE_SHARE = 0.75;

/** What a reload applies (the series selection from the next scrape on). Everything else was read once at start: the listener, the HTTP limits, the shard, the log format, the shared parse cache and decode pool. */
const RELOADABLE_SETTINGS = new Set(["logLevel", "metrics", "intervals", "sources", "kubernetes", "probe", "modules"]);
/** The limits each source reads for itself, so that a rebuilt source applies them. */
const RELOADABLE_LIMITS = new Set(["maxFileSize", "maxGlobEntries"]);

/** The settings of a configuration that a reload cannot change. */
function startupSettings(config: Config): Record<string, unknown> {
  const startup: Record<string, unknown> = Object.fromEntries(Object.entries(config).filter(([key]) => !RELOADABLE_SETTINGS.has(key)));
  startup.limits = Object.fromEntries(Object.entries(config.limits).filter(([key]) => !RELOADABLE_LIMITS.has(key)));
  return startup;
}

const isRecord = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === "object" && !Array.isArray(value);

/** Dotted paths of the values that differ between two settings objects, e.g. `listen.port`. */
function changedPaths(before: unknown, after: unknown, path = ""): string[] {
  if (!isRecord(before) || !isRecord(after)) return isDeepStrictEqual(before, after) ? [] : [path];
  const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
  return [...keys].flatMap((key) => changedPaths(before[key], after[key], path ? `${path}.${key}` : key));
}

/** Socket errors of listen() that the configuration causes, in words. */
const LISTEN_FAILURES: Record<string, string> = {
  EADDRINUSE: "the address is already in use",
  EACCES: "permission denied (a port below 1024 needs privileges)",
  EADDRNOTAVAIL: "the address is not one of this host's",
  ENOTFOUND: "the host name does not resolve",
};

function listenFailure(err: unknown, { address, port }: Config["listen"]): unknown {
  const reason = LISTEN_FAILURES[(err as NodeJS.ErrnoException | undefined)?.code ?? ""];
  return reason ? new ConfigError(`cannot listen on ${address.includes(":") ? `[${address}]` : address}:${port}: ${reason}`) : err;
}

/** With --web.config.file, its serving certificate among the files; its module (a schema of its own) loads only then. */
async function withWeb(config: Config, web: WebConfig | undefined): Promise<Config> {
  return web ? (await import("./web-config.js")).withServingCertificate(config, web) : config;
}

/** A source whose one-off scan could not read anything at all, and why. */
export interface ScanFailure {
  source: SourceKind;
  message: string;
}

/** What a reconfiguration did. */
export interface Reconfiguration {
  /** Slots whose source was rebuilt, added, removed or handed new static endpoints. */
  updated: SourceSlot[];
  /** Changed settings that take effect only after a restart, as dotted paths. */
  restartRequired: string[];
}

/**
 * Everything one exporter process holds: the inventory, its sources and what they share. `H` is the
 * sources' health: with the exporter's own metrics (Health) to serve, without (HealthState) to scan once.
 */
export class Exporter<H extends HealthState = Health> {
  readonly log: Logger;
  readonly inventory: Inventory;
  readonly health: H;
  /**
   * A context for one source: the shared inventory, parse cache, health and decode pool, and state
   * of its own (what it logged, what it was refused), which goes with it when a reload replaces it.
   */
  readonly #newContext: () => SourceContext;
  readonly #sources: Map<SourceSlot, Source>;
  readonly #decoder: DecodePool;
  /** --web.config.file, when given: the server's TLS and auth, and the serving certificate to export. */
  readonly #web: WebConfig | undefined;
  #config: Config;
  #server: FastifyInstance | undefined;
  #started = false;
  #closing = false;
  /** The reconfiguration under way: the next one, and close(), wait for it. */
  #reconfiguring: Promise<unknown> = Promise.resolve();

  /** Builds the exporter and the sources its configuration turns on, with its own metrics (prom-client, loaded here) to serve. */
  static async create(config: Config, log: Logger = createLogger(config.logLevel, config.logFormat), web?: WebConfig): Promise<Exporter> {
    const { Health } = await import("./health.js");
    return Exporter.#build(await withWeb(config, web), log, web, (inventory) => new Health(inventory));
  }

  /** The same without metrics, for a one-off scan (`check`), which serves nothing: it starts without prom-client. */
  static forScan(config: Config, log: Logger = createLogger(config.logLevel, config.logFormat)): Promise<Exporter<HealthState>> {
    return Exporter.#build(config, log, undefined, () => new HealthState());
  }

  static async #build<H extends HealthState>(config: Config, log: Logger, web: WebConfig | undefined, newHealth: (inventory: Inventory) => H): Promise<Exporter<H>> {
    const inventory = new Inventory();
    const health = newHealth(inventory);
    const { limits } = config;
    const cache = new ParseCache(limits.parseCacheEntries, { maxCertificates: limits.maxCertificatesPerLocation, maxLabelValueLength: limits.maxLabelValueLength });
    const decoder = new DecodePool({ timeoutMs: limits.parseTimeout * 1000 });
    const shard = resolveShard(config.shard);
    // Read at start (a restart applies a change): the trust anchors are loaded once.
    const checks = new CertificateChecks(config.checks, cache, log);
    const newContext = () => new SourceContext(inventory, cache, health, log, { shard, limits, decoder, checks });
    return new Exporter(config, { log, inventory, health, newContext }, await createSourceSlots(config, newContext), decoder, web);
  }

  private constructor(
    config: Config,
    shared: Pick<Exporter<H>, "log" | "inventory" | "health"> & { newContext: () => SourceContext },
    sources: Map<SourceSlot, Source>,
    decoder: DecodePool,
    web: WebConfig | undefined,
  ) {
    this.#config = config;
    this.#web = web;
    this.log = shared.log;
    this.inventory = shared.inventory;
    this.health = shared.health;
    this.#newContext = shared.newContext;
    this.#sources = sources;
    this.#decoder = decoder;
  }

  /** The configuration in force: the last one applied, with the settings read at start kept. */
  get config(): Config {
    return this.#config;
  }

  /** The running sources, in start order. */
  get sources(): Source[] {
    return SOURCE_SLOTS.flatMap((slot) => this.#sources.get(slot) ?? []);
  }

  /** One scan of every source, for `check`; returns the sources whose scan failed. */
  async scanOnce(): Promise<ScanFailure[]> {
    const sources = this.sources;
    const outcomes = await Promise.allSettled(sources.map((source) => source.scanOnce()));
    return sources.flatMap((source, i): ScanFailure[] => {
      const outcome = outcomes[i];
      if (outcome?.status === "rejected") return [{ source: source.name, message: outcome.reason instanceof Error ? outcome.reason.message : String(outcome.reason) }];
      // A polled source logs its own failure and marks itself down.
      return source.healthSources().every((name) => this.health.isUp(name)) ? [] : [{ source: source.name, message: "its scan failed" }];
    });
  }

  /**
   * Starts listening at once (so /healthz answers during the first scans), then starts the sources.
   * `plugins` add routes to the server before it listens. A listen address that cannot be used is a
   * ConfigError.
   */
  async serve(this: Exporter<Health>, plugins: readonly FastifyPluginAsync[] = []): Promise<string> {
    const { listen, http, limits } = this.#config;
    // Fastify and the renderer load here, so that `check` never loads them.
    const { buildServer } = await import("./server.js");
    // /probe parses through the cache every source shares, and reads its modules at every request.
    const probes = { cache: this.#newContext().cache, config: () => this.#config };
    let firstScansDone!: () => void;
    const firstScans = new Promise<void>((resolve) => (firstScansDone = resolve));
    const server = buildServer({ inventory: this.inventory, health: this.health, log: this.log, http, maxLabelValueLength: limits.maxLabelValueLength, selection: () => this.#config.metrics, web: this.#web, probes, firstScans });
    this.#server = server;
    for (const plugin of plugins) await server.register(plugin);
    let address: string;
    try {
      address = await server.listen({ host: listen.address, port: listen.port });
    } catch (err) {
      throw listenFailure(err, listen);
    }
    this.#started = true;
    this.log.info({ address, version: VERSION, sources: this.sources.map((s) => s.name) }, "listening");
    void Promise.all(this.sources.map((source) => this.#start(source))).then(firstScansDone);
    return address;
  }

  get port(): number {
    const address = this.#server?.server.address();
    return typeof address === "object" && address ? address.port : this.#config.listen.port;
  }

  /**
   * Applies a new configuration. The log level changes at once. A source whose part of the
   * configuration changed is rebuilt, and every other keeps running as it is: no relist, no new
   * probes. A rebuilt source's series stay until its replacement has scanned once; then what that
   * did not find again goes. Settings read once at start stay as they are and are named in the
   * result. A replacement that cannot be built (its kubeconfig does not load) fails the whole call
   * before anything has changed. Calls run one after another.
   */
  reconfigure(next: Config): Promise<Reconfiguration> {
    const run = this.#reconfiguring.then(async () => this.#reconfigure(await withWeb(next, this.#web)));
    this.#reconfiguring = run.catch(() => undefined);
    return run;
  }

  async #reconfigure(next: Config): Promise<Reconfiguration> {
    if (this.#closing) throw new Error("the exporter is shutting down");
    const current = this.#config;
    const kept = startupSettings(current);
    const applied = { ...next, ...kept, limits: { ...next.limits, ...(kept.limits as object) } } as Config;
    const restartRequired = changedPaths(kept, startupSettings(next));
    const changed = SOURCE_SLOTS.filter((slot) => !isDeepStrictEqual(sourceSettings(slot, current), sourceSettings(slot, applied)));
    // Kubernetes sources first: only they can fail to be built, and then nothing else has been.
    const replacements = new Map<SourceSlot, Source | undefined>();
    for (const slot of [...changed].reverse()) replacements.set(slot, await createSource(slot, applied, this.#newContext()));
    for (const slot of changed) await this.#replace(slot, replacements.get(slot));
    const updated = [...changed];
    // What createSource puts in this slot; its module is loaded only when the slot is on.
    const endpoints = this.#sources.get("endpoints") as EndpointSource | undefined;
    if (!changed.includes("endpoints") && endpoints && !isDeepStrictEqual(current.sources.endpoints, applied.sources.endpoints)) {
      endpoints.setStaticTargets(applied.sources.endpoints);
      updated.push("endpoints");
    }
    this.log.level = applied.logLevel;
    if (this.#server) this.#server.log.level = applied.logLevel;
    this.#config = applied;
    return { updated, restartRequired };
  }

  /** Starts a source, in the background of everything else; resolves once its first scan is done. */
  #start(source: Source): Promise<boolean> {
    return source.start().then(
      () => true,
      (err: unknown) => {
        this.log.error({ source: source.name, err }, "source failed to start");
        return false;
      },
    );
  }

  /** Puts `replacement` in the slot. The old source stops at once; its series go once the replacement has scanned, or at once when nothing replaces it. */
  async #replace(slot: SourceSlot, replacement: Source | undefined): Promise<void> {
    const old = this.#sources.get(slot);
    await old?.stop();
    if (replacement) this.#sources.set(slot, replacement);
    else this.#sources.delete(slot);
    const stale = old ? [...this.inventory.entries()].filter((entry) => entry.location.source === old.name) : [];
    // An entry the replacement published again is a new object: what is still the same object was not found again.
    const pruneStale = () => {
      for (const entry of stale) if (this.inventory.get(entry.location) === entry && !replacement?.adopt?.(entry.location)) this.inventory.remove(entry.location);
    };
    if (!replacement) {
      pruneStale();
      for (const name of old?.healthSources() ?? []) this.health.unregister(name);
    } else if (this.#started) {
      void this.#start(replacement).then((scanned) => scanned && pruneStale());
    }
  }

  /**
   * Stops the sources and the server together. Idle connections close at once and requests in flight
   * get most of http.shutdownTimeout to finish; then every connection left is cut, so a stalled or
   * slow client cannot hold the exit.
   */
  async close(): Promise<void> {
    this.#closing = true;
    await this.#reconfiguring;
    const server = this.#server;
    const cutOff = setTimeout(() => server?.server.closeAllConnections(), this.#config.http.shutdownTimeout * SHUTDOWN_GRACE_SHARE * 1000);
    try {
      // The decode pool goes first: a source waiting on a decode then stops at once.
      await Promise.all([this.#decoder.close(), ...this.sources.map((source) => source.stop()), server?.close()]);
    } finally {
      clearTimeout(cutOff);
    }
  }
}
