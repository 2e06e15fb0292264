import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from "fastify";
import type { Health } from "./health.js";
import type { Inventory } from "./inventory.js";
import type { Logger } from "./log.js";
import { MetricsRenderer, OPENMETRICS_CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE, negotiateFormat } from "./metrics.js";
import { renderStatusPage } from "./status-page.js";
import { VERSION } from "./version.js";

export interface ServerDeps {
  inventory: Inventory;
  health: Health;
  log: Logger;
}

/** The HTTP face of the exporter: /metrics, /healthz, /readyz and the status page at /. */
export function buildServer({ inventory, health, log }: ServerDeps): FastifyInstance {
  const app = Fastify({ loggerInstance: log.child({ component: "http" }) as FastifyBaseLogger, logController: new LogController({ disableRequestLogging: true }) });
  const renderer = new MetricsRenderer(inventory, health);

  app.get("/metrics", async (request, reply) => {
    const format = negotiateFormat(request.headers.accept);
    return reply.type(format === "openmetrics" ? OPENMETRICS_CONTENT_TYPE : PROMETHEUS_CONTENT_TYPE).send(renderer.stream(format));
  });

  app.get("/healthz", async (_request, reply) => reply.type("text/plain").send("ok\n"));

  app.get("/readyz", async (_request, reply) => {
    const pending = health.pendingSources();
    if (pending.length === 0) return reply.type("text/plain").send("ready\n");
    return reply.code(503).type("text/plain").send(`waiting for the first scan of: ${pending.join(", ")}\n`);
  });

  app.get("/", async (_request, reply) => reply.type("text/html; charset=utf-8").send(renderStatusPage(inventory, VERSION)));

  return app;
}
