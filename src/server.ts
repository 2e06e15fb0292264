import type { ServerResponse } from "node:http";
import type { ServerOptions as HttpsServerOptions } from "node:https";
import type { Server as TlsServer } from "node:tls";
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply } from "fastify";
import { BasicAuth } from "./basic-auth.js";
import type { Config } from "./config.js";
import type { Health } from "./health.js";
import type { Inventory } from "./inventory.js";
import type { Logger } from "./log.js";
import { MetricsRenderer, OPENMETRICS_CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE, acceptsGzip, negotiateFormat, type ExpositionFormat } from "./metrics.js";
import { TokenBucket } from "./rate-limit.js";
import { disabledNodeDeadlines, enforceRequestDeadlines } from "./request-deadline.js";
import type { ProbeEndpoint, ProbeEndpointDeps } from "./probe-endpoint.js";
import type { SeriesSelection } from "./series-selection.js";
import { ScrapeGate, ScrapeRefusedError } from "./scrape-gate.js";
import { ServingCertificate } from "./serving-certificate.js";
import { renderStatusPage } from "./status-page.js";
import { VERSION } from "./version.js";
import type { WebConfig } from "./web-config.js";

export type HttpLimits = Config["http"];

export interface ServerDeps {
  inventory: Inventory;
  health: Health;
  log: Logger;
  http: HttpLimits;
  /** limits.maxLabelValueLength; no limit when absent. */
  maxLabelValueLength?: number;
  /** The per-certificate series to send, read at every scrape; the default selection when absent. */
  selection?: () => SeriesSelection;
  /** --web.config.file: TLS, basic auth, extra headers, rate limit. Without it: plain HTTP, open to all. */
  web?: WebConfig;
  /** /probe: the parse cache and the configuration it reads its modules from (and a resolver, in tests). Without it, no /probe route. */
  probes?: Pick<ProbeEndpointDeps, "cache" | "config" | "lookup">;
  /** Settles once every source has finished its first scan: then the gzip pieces are rendered ahead of the first scrape (MetricsRenderer.warm). */
  firstScans?: Promise<unknown>;
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
export const REQUEST_TIMEOUT_MS = 10_000;
/** Keeps a scraper's connection open between scrapes up to a one-minute interval. */
const KEEP_ALIVE_TIMEOUT_MS = 65_000;
/** A connection with no traffic at all is closed this long after the longest scrape deadline could pass. */
const IDLE_SOCKET_MARGIN_MS = 5_000;
/** What the kubelet probes: open without credentials and never rate-limited, as a probe can send neither. */
const OPEN_PATHS = new Set(["/healthz", "/readyz"]);
const BASIC_AUTH_CHALLENGE = 'Basic realm="cert-expiry-exporter", charset="UTF-8"';
/** The status page has an inline <style> and nothing else: no scripts, no external assets, no frames. */
const STATUS_PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/** A route given a schema fails when it is added, naming why. */
function noSchemas(): never {
  throw new Error("the exporter's routes take no schemas: their compilers are not loaded (NO_SCHEMA_COMPILERS)");
}

/**
 * No route declares a schema, so Fastify's default schema compilers (ajv and fast-json-stringify,
 * about as much code as Fastify itself) would be loaded at every start for nothing.
 */
const NO_SCHEMA_COMPILERS = { compilersFactory: { buildValidator: () => noSchemas, buildSerializer: () => noSchemas } };

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

/** Sets the headers of the encoding a scraper's Accept-Encoding calls for; true when that is gzip. */
function negotiateGzip(acceptEncoding: string | undefined, reply: FastifyReply): boolean {
  reply.header("vary", "accept-encoding");
  if (!acceptsGzip(acceptEncoding)) return false;
  reply.header("content-encoding", "gzip");
  return true;
}

function unavailable(reply: FastifyReply, why: string): FastifyReply {
  return reply.code(503).header("retry-after", String(RETRY_AFTER_SECONDS)).type("text/plain").send(`${why}\n`);
}

/**
 * The HTTP face of the exporter: /metrics, /healthz, /readyz and the status page at /. Every wait has
 * a deadline and every response a bound: renders go through a ScrapeGate, each /metrics response is
 * cut off at its deadline, and connections are limited in number and in how long they may idle. With
 * a web config it serves HTTPS from a certificate it reloads when renewed, and asks for credentials
 * everywhere but the probes.
 */
export function buildServer({ inventory, health, log, http, maxLabelValueLength, selection, web, probes, firstScans }: ServerDeps): FastifyInstance {
  const serving = web?.tls && new ServingCertificate(web.tls, log.child({ component: "tls" }));
  // Request deadlines are ours (enforceRequestDeadlines below), so Node's interval does not wake an idle exporter.
  // Fastify hands `http` to a plain server only; an HTTPS server takes the same options with its TLS ones.
  const transport: { https?: HttpsServerOptions } = serving ? { https: { ...serving.serverOptions(), ...disabledNodeDeadlines, handshakeTimeout: REQUEST_TIMEOUT_MS } } : {};
  const app = Fastify({
    loggerInstance: log.child({ component: "http" }) as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: BODY_LIMIT_BYTES,
    requestTimeout: disabledNodeDeadlines.requestTimeout,
    http: disabledNodeDeadlines,
    ...transport,
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    connectionTimeout: http.scrapeTimeout * 1000 + IDLE_SOCKET_MARGIN_MS,
    // close() drops idle keep-alive connections at once; Exporter.close cuts the rest at its deadline.
    forceCloseConnections: "idle",
    schemaController: NO_SCHEMA_COMPILERS,
  });
  app.server.maxConnections = http.maxConnections;
  enforceRequestDeadlines(app.server, { requestMs: REQUEST_TIMEOUT_MS, nextRequestMs: KEEP_ALIVE_TIMEOUT_MS + REQUEST_TIMEOUT_MS });
  const renderer = new MetricsRenderer(inventory, health, { maxLabelValueLength, selection });
  const gate = new ScrapeGate({ maxRunning: http.maxConcurrentScrapes, maxWaiting: http.maxQueuedScrapes });
  const closing = new AbortController();
  app.addHook("preClose", (done) => {
    closing.abort();
    gate.close();
    done();
  });
  // Not through the gate: it must never make a scrape wait or be refused. A scrape arriving meanwhile
  // shares its pieces (the renderer keeps one set), so the two do not render the same piece twice.
  void firstScans?.then(() =>
    renderer.warm(closing.signal).catch((err: unknown) => log.warn({ err }, "rendering /metrics ahead of the first scrape failed; the first scrape renders it")),
  );
  if (serving) {
    serving.attach(app.server as unknown as TlsServer);
    app.addHook("onClose", (_instance, done) => {
      serving.close();
      done();
    });
  }
  const auth = web?.users.size ? new BasicAuth(web.users) : undefined;
  if (auth && !serving) log.warn("basic_auth_users without tls_server_config: passwords cross the network in clear text");
  const bucket = web?.rateLimit && new TokenBucket(web.rateLimit);
  if (auth || bucket) {
    app.addHook("onRequest", async (request, reply) => {
      if (OPEN_PATHS.has(request.routeOptions.url ?? "")) return;
      if (bucket && !bucket.take()) return reply.code(429).type("text/plain").send("too many requests\n");
      if (auth && !(await auth.verify(request.headers.authorization))) {
        return reply.code(401).header("www-authenticate", BASIC_AUTH_CHALLENGE).type("text/plain").send("unauthorized\n");
      }
    });
    if (auth) app.addHook("onClose", () => auth.close());
  }

  app.addHook("onSend", (_request, reply, payload, done) => {
    reply.header("x-content-type-options", "nosniff");
    if (String(reply.getHeader("content-type")).startsWith("text/html")) reply.header("content-security-policy", STATUS_PAGE_CSP);
    // The web config's headers go last: what the operator set wins over the defaults above.
    for (const [name, value] of Object.entries(web?.headers ?? {})) reply.header(name, value);
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
    const body = renderer.stream(format, negotiateGzip(request.headers["accept-encoding"], reply) ? "gzip" : "identity");
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

  if (probes) {
    // Behind the same hooks as /metrics (auth, rate limit). The prober loads with the first /probe request.
    let endpoint: Promise<ProbeEndpoint> | undefined;
    const probeEndpoint = () => (endpoint ??= import("./probe-endpoint.js").then(({ ProbeEndpoint }) => new ProbeEndpoint({ ...probes, health, http })));
    app.get("/probe", { exposeHeadRoute: false }, async (request, reply) => (await probeEndpoint()).handle(request, reply));
    app.addHook("preClose", (done) => {
      void endpoint?.then((loaded) => loaded.close());
      done();
    });
  }

  // The headers alone: rendering is exactly what a HEAD must not cost.
  app.head("/metrics", async (request, reply) => {
    negotiateGzip(request.headers["accept-encoding"], reply);
    return reply.type(contentType(negotiateFormat(request.headers.accept))).send();
  });

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
