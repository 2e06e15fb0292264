import type { ServerResponse } from "node:http";
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply } from "fastify";
import type { Config } from "./config.js";
import type { Health } from "./health.js";
import type { Inventory } from "./inventory.js";
import type { Logger } from "./log.js";
import { MetricsRenderer, OPENMETRICS_CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE, negotiateFormat, type ExpositionFormat } from "./metrics.js";
import { ScrapeGate, ScrapeRefusedError } from "./scrape-gate.js";
import { renderStatusPage } from "./status-page.js";
import { VERSION } from "./version.js";

export type HttpLimits = Config["http"];

export interface ServerDeps {
  inventory: Inventory;
  health: Health;
  log: Logger;
  http: HttpLimits;
  /** limits.maxLabelValueLength; no limit when absent. */
  maxLabelValueLength?: number;
}

/** Prometheus tells every target how long it will wait for the answer. */
const SCRAPE_TIMEOUT_HEADER = "x-prometheus-scrape-timeout-seconds";
/** Added to the scraper's timeout, so the exporter never gives up on a scrape before its scraper does. */
const SCRAPE_TIMEOUT_MARGIN_SECONDS = 0.5;
/** Retry-After of a refused scrape: about the time a render of a large inventory holds its slot. */
const RETRY_AFTER_SECONDS = 5;
/** Nothing here takes a request body. */
const BODY_LIMIT_BYTES = 1024;
/** A request (headers alone: none has a body) must arrive within this. */
const REQUEST_TIMEOUT_MS = 10_000;
/** How often Node checks that deadline; its default of 30 s would let a silent connection sit 40 s. */
const CONNECTIONS_CHECKING_INTERVAL_MS = 2_000;
/** Keeps a scraper's connection open between scrapes up to a one-minute interval. */
const KEEP_ALIVE_TIMEOUT_MS = 65_000;
/** A connection with no traffic at all is closed this long after the longest scrape deadline could pass. */
const IDLE_SOCKET_MARGIN_MS = 5_000;
/** The status page has an inline <style> and nothing else: no scripts, no external assets, no frames. */
const STATUS_PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/** Seconds a /metrics response may take: the scraper's own timeout plus a margin, never more than `limit`. */
export function scrapeDeadlineSeconds(scraperTimeout: string | string[] | undefined, limit: number): number {
  const seconds = typeof scraperTimeout === "string" ? Number(scraperTimeout) : Number.NaN;
  return seconds > 0 ? Math.min(seconds + SCRAPE_TIMEOUT_MARGIN_SECONDS, limit) : limit;
}

/** The reason a scrape's signal aborts when its deadline passes, rather than because its response closed. */
class ScrapeDeadlineError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ScrapeDeadlineError";
  }
}

/** Aborts when the response closes (sent, or its client left) or when its deadline passes, whichever is first. */
function responseLifetime(res: ServerResponse, deadlineSeconds: number): AbortSignal {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new ScrapeDeadlineError(`scrape deadline of ${deadlineSeconds} s passed`)), deadlineSeconds * 1000);
  res.once("close", () => {
    clearTimeout(timer);
    controller.abort();
  });
  return controller.signal;
}

const contentType = (format: ExpositionFormat): string => (format === "openmetrics" ? OPENMETRICS_CONTENT_TYPE : PROMETHEUS_CONTENT_TYPE);

function unavailable(reply: FastifyReply, why: string): FastifyReply {
  return reply.code(503).header("retry-after", String(RETRY_AFTER_SECONDS)).type("text/plain").send(`${why}\n`);
}

/**
 * The HTTP face of the exporter: /metrics, /healthz, /readyz and the status page at /. Every wait has
 * a deadline and every response a bound: renders go through a ScrapeGate, each /metrics response is
 * cut off at its deadline, and connections are limited in number and in how long they may idle.
 */
export function buildServer({ inventory, health, log, http, maxLabelValueLength }: ServerDeps): FastifyInstance {
  const app = Fastify({
    loggerInstance: log.child({ component: "http" }) as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: BODY_LIMIT_BYTES,
    requestTimeout: REQUEST_TIMEOUT_MS,
    http: { headersTimeout: REQUEST_TIMEOUT_MS, connectionsCheckingInterval: CONNECTIONS_CHECKING_INTERVAL_MS },
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    connectionTimeout: http.scrapeTimeout * 1000 + IDLE_SOCKET_MARGIN_MS,
    // close() drops idle keep-alive connections at once; Exporter.close cuts the rest at its deadline.
    forceCloseConnections: "idle",
  });
  app.server.maxConnections = http.maxConnections;
  const renderer = new MetricsRenderer(inventory, health, maxLabelValueLength);
  const gate = new ScrapeGate({ maxRunning: http.maxConcurrentScrapes, maxWaiting: http.maxQueuedScrapes });
  app.addHook("preClose", (done) => {
    gate.close();
    done();
  });

  app.addHook("onSend", (_request, reply, payload, done) => {
    reply.header("x-content-type-options", "nosniff");
    if (String(reply.getHeader("content-type")).startsWith("text/html")) reply.header("content-security-policy", STATUS_PAGE_CSP);
    done(null, payload);
  });

  app.get("/metrics", { exposeHeadRoute: false }, async (request, reply) => {
    const deadlineSeconds = scrapeDeadlineSeconds(request.headers[SCRAPE_TIMEOUT_HEADER], http.scrapeTimeout);
    const lifetime = responseLifetime(reply.raw, deadlineSeconds);
    let release: () => void;
    try {
      release = await gate.acquire(lifetime);
    } catch (err) {
      if (err instanceof ScrapeRefusedError) return unavailable(reply, err.message);
      if (lifetime.reason instanceof ScrapeDeadlineError) return unavailable(reply, lifetime.reason.message);
      return reply; // the client left while waiting: nobody to answer
    }
    const format = negotiateFormat(request.headers.accept);
    const body = renderer.stream(format);
    // The slot is free once the render has stopped, not merely once the response has.
    body.once("close", release);
    lifetime.addEventListener("abort", () => {
      if (!reply.raw.writableFinished) {
        if (lifetime.reason instanceof ScrapeDeadlineError) request.log.info({ deadlineSeconds }, "scrape cut off at its deadline");
        reply.raw.destroy();
      }
      body.destroy();
    }, { once: true });
    return reply.type(contentType(format)).send(body);
  });

  // The headers alone: rendering is exactly what a HEAD must not cost.
  app.head("/metrics", async (request, reply) => reply.type(contentType(negotiateFormat(request.headers.accept))).send());

  app.get("/healthz", async (_request, reply) => reply.type("text/plain").send("ok\n"));

  app.get("/readyz", async (_request, reply) => {
    const pending = health.pendingSources();
    if (pending.length === 0) return reply.type("text/plain").send("ready\n");
    return reply.code(503).type("text/plain").send(`waiting for the first scan of: ${pending.join(", ")}\n`);
  });

  app.get("/", async (request, reply) => {
    const page = renderStatusPage(inventory, { version: VERSION, query: request.query as Record<string, unknown>, rows: http.statusPageRows });
    return reply.code(page.status).type("text/html; charset=utf-8").send(page.body);
  });

  return app;
}
