import type { FastifyInstance } from "fastify";
import { ParseCache } from "./certs/cache.js";
import type { Config } from "./config.js";
import { DecodePool } from "./decode-pool.js";
import { Health } from "./health.js";
import { Inventory } from "./inventory.js";
import { createLogger, type Logger } from "./log.js";
import { buildServer } from "./server.js";
import { resolveShard } from "./shard.js";
import { createSources } from "./sources/index.js";
import { SourceContext, type Source } from "./sources/source.js";
import { VERSION } from "./version.js";

/** Share of http.shutdownTimeout that requests in flight get to finish; the rest is for closing and exiting. */
const SHUTDOWN_GRACE_SHARE = 0.75;

/** Everything one exporter process holds: the inventory, its sources and their shared context. */
export class Exporter {
  readonly config: Config;
  readonly log: Logger;
  readonly inventory: Inventory;
  readonly health: Health;
  readonly sources: Source[];
  readonly #decoder: DecodePool;
  #server: FastifyInstance | undefined;

  /** Builds the exporter and the sources its configuration turns on. */
  static async create(config: Config, log: Logger = createLogger(config.logLevel)): Promise<Exporter> {
    const inventory = new Inventory();
    const health = new Health(inventory);
    const { limits } = config;
    const cache = new ParseCache(limits.parseCacheEntries, { maxCertificates: limits.maxCertificatesPerLocation, maxLabelValueLength: limits.maxLabelValueLength });
    const decoder = new DecodePool({ timeoutMs: limits.parseTimeout * 1000 });
    const ctx = new SourceContext(inventory, cache, health, log, { shard: resolveShard(config.shard), limits, decoder });
    return new Exporter(config, log, inventory, health, await createSources(config, ctx), decoder);
  }

  private constructor(config: Config, log: Logger, inventory: Inventory, health: Health, sources: Source[], decoder: DecodePool) {
    this.config = config;
    this.log = log;
    this.inventory = inventory;
    this.health = health;
    this.sources = sources;
    this.#decoder = decoder;
  }

  /** One scan of every source, for `check`. */
  async scanOnce(): Promise<void> {
    await Promise.all(this.sources.map((source) => source.scanOnce()));
  }

  /** Starts listening at once (so /healthz answers during the first scans), then starts the sources. */
  async serve(): Promise<string> {
    const server = buildServer({ inventory: this.inventory, health: this.health, log: this.log, http: this.config.http, maxLabelValueLength: this.config.limits.maxLabelValueLength });
    this.#server = server;
    const address = await server.listen({ host: this.config.listen.address, port: this.config.listen.port });
    this.log.info({ address, version: VERSION, sources: this.sources.map((s) => s.name) }, "listening");
    for (const source of this.sources) {
      source.start().catch((err: unknown) => this.log.error({ source: source.name, err }, "source failed to start"));
    }
    return address;
  }

  get port(): number {
    const address = this.#server?.server.address();
    return typeof address === "object" && address ? address.port : this.config.listen.port;
  }

  /**
   * Stops the sources and the server together. Idle connections close at once and requests in flight
   * get most of http.shutdownTimeout to finish; then every connection left is cut, so a stalled or
   * slow client cannot hold the exit.
   */
  async close(): Promise<void> {
    const server = this.#server;
    const cutOff = setTimeout(() => server?.server.closeAllConnections(), this.config.http.shutdownTimeout * SHUTDOWN_GRACE_SHARE * 1000);
    try {
      // The decode pool goes first: a source waiting on a decode then stops at once.
      await Promise.all([this.#decoder.close(), ...this.sources.map((source) => source.stop()), server?.close()]);
    } finally {
      clearTimeout(cutOff);
    }
  }
}
