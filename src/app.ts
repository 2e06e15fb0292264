import type { FastifyInstance } from "fastify";
import { ParseCache } from "./certs/cache.js";
import type { Config } from "./config.js";
import { Health } from "./health.js";
import { Inventory } from "./inventory.js";
import { createLogger, type Logger } from "./log.js";
import { buildServer } from "./server.js";
import { resolveShard } from "./shard.js";
import { createSources } from "./sources/index.js";
import { SourceContext, type Source } from "./sources/source.js";
import { VERSION } from "./version.js";

/** Everything one exporter process holds: the inventory, its sources and their shared context. */
export class Exporter {
  readonly config: Config;
  readonly log: Logger;
  readonly inventory: Inventory;
  readonly health: Health;
  readonly sources: Source[];
  #server: FastifyInstance | undefined;

  /** Builds the exporter and the sources its configuration turns on. */
  static async create(config: Config, log: Logger = createLogger(config.logLevel)): Promise<Exporter> {
    const inventory = new Inventory();
    const health = new Health(inventory);
    const ctx = new SourceContext(inventory, new ParseCache(config.limits.parseCacheEntries), health, log, { shard: resolveShard(config.shard) });
    return new Exporter(config, log, inventory, health, await createSources(config, ctx));
  }

  private constructor(config: Config, log: Logger, inventory: Inventory, health: Health, sources: Source[]) {
    this.config = config;
    this.log = log;
    this.inventory = inventory;
    this.health = health;
    this.sources = sources;
  }

  /** One scan of every source, for `check`. */
  async scanOnce(): Promise<void> {
    await Promise.all(this.sources.map((source) => source.scanOnce()));
  }

  /** Starts listening at once (so /healthz answers during the first scans), then starts the sources. */
  async serve(): Promise<string> {
    const server = buildServer({ inventory: this.inventory, health: this.health, log: this.log });
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

  async close(): Promise<void> {
    await Promise.all(this.sources.map((source) => source.stop()));
    await this.#server?.close();
  }
}
