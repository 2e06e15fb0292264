import type { FastifyPluginAsync } from "fastify";
import { Gauge } from "./prom.js";
import type { Exporter } from "./app.js";
import type { Config } from "./config.js";

/** What asked for a reload, for the log. */
export type ReloadTrigger = "SIGHUP" | "http";

export type ReloadResult = { ok: true; restartRequired: string[] } | { ok: false; error: string };

/**
 * Reloads the configuration file into a running exporter (SIGHUP, POST /-/reload). The file is
 * read and validated exactly as at start; a file that fails is logged and leaves the running
 * configuration as it is. Reloads run one after another, and the two gauges Prometheus has for its
 * own reloads say how the last one went.
 */
export class ConfigReloader {
  readonly #exporter: Exporter;
  readonly #load: () => Promise<Config>;
  readonly #successful: Gauge;
  readonly #successTime: Gauge;
  #queue: Promise<unknown> = Promise.resolve();

  /** `load` reads and validates the configuration, file and overrides, as at start. */
  constructor(exporter: Exporter, load: () => Promise<Config>) {
    this.#exporter = exporter;
    this.#load = load;
    const registers = [exporter.health.prometheus, exporter.health.openMetrics];
    this.#successful = new Gauge({
      name: "cert_expiry_exporter_config_last_reload_successful",
      help: "1 when the last configuration reload succeeded (or none was tried since start), 0 when it failed.",
      registers,
    });
    this.#successTime = new Gauge({
      name: "cert_expiry_exporter_config_last_reload_success_timestamp_seconds",
      help: "Unix time of the last successful configuration reload, or of the start.",
      registers,
    });
    this.#succeeded();
  }

  reload(trigger: ReloadTrigger): Promise<ReloadResult> {
    const run = this.#queue.then(() => this.#reload(trigger));
    this.#queue = run;
    return run;
  }

  async #reload(trigger: ReloadTrigger): Promise<ReloadResult> {
    const log = this.#exporter.log;
    try {
      const { updated, restartRequired } = await this.#exporter.reconfigure(await this.#load());
      this.#succeeded();
      log.info({ trigger, updated }, "configuration reloaded");
      if (restartRequired.length) log.warn({ settings: restartRequired }, "these settings changed but take effect only after a restart");
      return { ok: true, restartRequired };
    } catch (err) {
      this.#successful.set(0);
      const error = err instanceof Error ? err.message : String(err);
      log.error({ trigger, err: error }, "configuration reload failed; the running configuration is kept");
      return { ok: false, error };
    }
  }

  #succeeded(): void {
    this.#successful.set(1);
    this.#successTime.set(Date.now() / 1000);
  }
}

/**
 * POST /-/reload, as Prometheus has it: 200 once the configuration is applied, 500 with the reason
 * when it is not. Registered only when --web.enable-lifecycle asks for it.
 */
export function reloadRoute(reloader: ConfigReloader): FastifyPluginAsync {
  return async (app) => {
    // The body, if any, is ignored whatever its type: `curl -d ''` sends an empty form.
    app.removeAllContentTypeParsers();
    app.addContentTypeParser("*", { parseAs: "buffer" }, (_request, _body, done) => done(null));
    app.post("/-/reload", async (_request, reply) => {
      const result = await reloader.reload("http");
      if (!result.ok) return reply.code(500).type("text/plain").send(`configuration reload failed: ${result.error}\n`);
      const pending = result.restartRequired.length ? `; a restart is needed for: ${result.restartRequired.join(", ")}` : "";
      return reply.type("text/plain").send(`configuration reloaded${pending}\n`);
    });
  };
}
