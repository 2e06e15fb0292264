/**
 * /probe?target=host:port&module=NAME: one TLS probe of the target Prometheus names, in the manner
 * of blackbox_exporter, answered with the same certificate and endpoint families the endpoint source
 * exports for its own targets, for that target alone. The module (`modules:` in the configuration,
 * read at every request, so a reload applies to the next one) says how to probe and which targets it
 * accepts. Probes run through the endpoint source's own path (probeEndpoint: transport, TLS, parsing
 * through the shared cache) and are rendered by MetricsRenderer over an inventory of one location.
 *
 *   400  no or malformed target, unknown module, or no module named and none called `default`
 *   403  the target is outside the module's allow-list (src/probe/allow-list.ts)
 *   503  too many probes at once and the line is full, the deadline passed while waiting, or shutdown
 *   200  everything else, including a probe that failed: cert_endpoint_probe_success 0 and its reason
 */
import { lookup as dnsLookup } from "node:dns/promises";
import { isIP } from "node:net";
import type { FastifyReply, FastifyRequest } from "fastify";
import type { ParseCache } from "./certs/cache.js";
import type { Config, ProbeModule } from "./config.js";
import { CertReadError, toReadError } from "./errors.js";
import type { Health } from "./health.js";
import { Inventory } from "./inventory.js";
import { MetricsRenderer, PROMETHEUS_CONTENT_TYPE } from "./metrics.js";
import type { EndpointProbe } from "./model.js";
import { AllowList, NotAllowedError, type Lookup } from "./probe/allow-list.js";
import { ScrapeGate, ScrapeRefusedError } from "./scrape-gate.js";
import { SecureContexts, endpointLocation, failedProbe, needsSecureContext, probeEndpoint, type EndpointOutcome, type ProbeTarget } from "./sources/endpoints.js";
import { locationUpdate } from "./sources/source.js";

/** Prometheus tells every target how long it will wait for the answer. */
const SCRAPE_TIMEOUT_HEADER = "x-prometheus-scrape-timeout-seconds";
/**
 * Taken off the scraper's timeout, so that a probe which runs to its deadline is still answered
 * (with its failure) before Prometheus gives up on the scrape and records nothing but `up` 0.
 */
const SCRAPE_TIMEOUT_MARGIN_SECONDS = 0.5;
/** Retry-After of a refused probe: a probe holds its slot for at most its timeout, usually far less. */
const RETRY_AFTER_SECONDS = 5;
/** `[v6]:port`, or `host:port` where host is a DNS name or an IPv4 address; the longest DNS name is 253 bytes. */
const TARGET = /^(?:\[([0-9a-fA-F:.]{2,45})\]|([A-Za-z0-9_.-]{1,253})):(\d{1,5})$/;
const DNS_NAME = /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*\.?$/;
const MAX_TARGET_LENGTH = 261;

/** The system resolver, every address, in its own order: what a plain connect would pick from. */
const systemLookup: Lookup = async (host, signal) => {
  const answer = dnsLookup(host, { all: true, order: "verbatim" });
  // getaddrinfo cannot be cancelled; the probe stops waiting for it at its deadline.
  const aborted = new Promise<never>((_resolve, reject) => {
    const fail = () => reject(Object.assign(new Error(`no DNS answer for ${host} before the probe's deadline`), { code: "EAI_AGAIN" }));
    if (signal.aborted) fail();
    else signal.addEventListener("abort", fail, { once: true });
  });
  aborted.catch(() => undefined);
  return (await Promise.race([answer, aborted])).map(({ address }) => address);
};

export interface ProbeEndpointDeps {
  /** The shared parse cache: a certificate seen by a source and by /probe is parsed once. */
  cache: ParseCache;
  /** The configuration in force, asked at every request: modules, probe defaults, metrics, limits. */
  config: () => Config;
  health: Health;
  /** http.maxConcurrentProbes, http.maxQueuedProbes and http.scrapeTimeout, read once at start. */
  http: Pick<Config["http"], "maxConcurrentProbes" | "maxQueuedProbes" | "scrapeTimeout">;
  /** Resolves names for the address-block check; the system resolver unless a test gives another. */
  lookup?: Lookup;
}

/** A request /probe will not serve, and the status that says why. */
class Refusal extends Error {
  readonly status: 400 | 403;

  constructor(status: 400 | 403, message: string) {
    super(message);
    this.status = status;
  }
}

/** A value from the query string, quoted and cut for an error message. */
const quoted = (value: string): string => JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);

/** The one value of a query parameter; a parameter given twice is refused. */
function single(query: Record<string, unknown>, name: string): string | undefined {
  const value = query[name];
  if (value === undefined) return undefined;
  if (typeof value !== "string") throw new Refusal(400, `${name} given more than once`);
  return value;
}

/** `host:port` as /probe takes it: the host lowercased, IPv6 in brackets, a DNS name or an IP address, a port from 1 to 65535. */
export function parseProbeTarget(value: string): { host: string; port: number; address: string } {
  const match = value.length <= MAX_TARGET_LENGTH ? TARGET.exec(value) : null;
  const port = Number(match?.[3]);
  const v6 = match?.[1]?.toLowerCase();
  const name = match?.[2]?.toLowerCase();
  const valid = match && port >= 1 && port <= 65535 && (v6 !== undefined ? isIP(v6) === 6 : name !== undefined && (isIP(name) === 4 || DNS_NAME.test(name)));
  if (!valid) throw new Refusal(400, `target must be host:port, [ipv6]:port or ipv4:port, got ${quoted(value)}`);
  const host = (v6 ?? name) as string;
  return { host, port, address: v6 !== undefined ? `[${host}]:${port}` : `${host}:${port}` };
}

/**
 * Seconds a probe may take: the module's timeout, never more than http.scrapeTimeout, and never more
 * than the scraper's own timeout less a margin (half of it when it is under a second).
 */
export function probeDeadlineSeconds(moduleTimeout: number, scrapeTimeout: number, scraperHeader: string | string[] | undefined): number {
  const limit = Math.min(moduleTimeout, scrapeTimeout);
  const scraper = typeof scraperHeader === "string" ? Number(scraperHeader) : Number.NaN;
  if (!(scraper > 0)) return limit;
  return Math.min(limit, Math.max(scraper - SCRAPE_TIMEOUT_MARGIN_SECONDS, scraper / 2));
}

/** The probe target of a module and a validated target; `dial` is the address the allow-list checked, when it resolved one. */
function probeTarget(module: ProbeModule, address: string, dial: string | undefined): ProbeTarget {
  const target: ProbeTarget = { namespace: "", address };
  if (dial) target.connectTo = isIP(dial) === 6 ? `[${dial}]` : dial;
  if (module.serverName) target.serverName = module.serverName;
  if (module.caFile) target.caFile = module.caFile;
  if (module.certFile) target.certFile = module.certFile;
  if (module.keyFile) target.keyFile = module.keyFile;
  if (module.protocol !== "tls") target.protocol = module.protocol;
  if (module.proxyUrl) target.proxyUrl = module.proxyUrl;
  return target;
}

/** A probe that ended before its handshake began (no address, unreadable CA), as the endpoint source reports one. */
function outcomeOf(error: CertReadError, durationSeconds = 0): EndpointOutcome {
  const probe: EndpointProbe = { ...failedProbe(error), durationSeconds };
  return { found: error, probe };
}

/**
 * The /probe handler. Probes are bounded like renders: at most http.maxConcurrentProbes at once, a
 * line of at most http.maxQueuedProbes behind them, 503 beyond. Waiting and probing share one
 * deadline; a client that goes away leaves the line or aborts its probe at once.
 */
export class ProbeEndpoint {
  readonly #deps: ProbeEndpointDeps;
  readonly #gate: ScrapeGate;
  readonly #trust = new SecureContexts();
  readonly #lookup: Lookup;
  /** Allow-lists by module, built once per configuration: a reload brings new module objects. */
  readonly #allowLists = new WeakMap<ProbeModule, AllowList>();

  constructor(deps: ProbeEndpointDeps) {
    this.#deps = deps;
    this.#lookup = deps.lookup ?? systemLookup;
    this.#gate = new ScrapeGate({ maxRunning: deps.http.maxConcurrentProbes, maxWaiting: deps.http.maxQueuedProbes, words: { requests: "probes", running: "probing" } });
  }

  /** Refuses every probe waiting and every later one, for shutdown; probes running go on. */
  close(): void {
    this.#gate.close();
  }

  async handle(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const config = this.#deps.config();
    let module: ProbeModule;
    let target: { host: string; port: number; address: string };
    try {
      ({ module, target } = this.#request(config, (request.query ?? {}) as Record<string, unknown>));
    } catch (err) {
      if (err instanceof Refusal) return reply.code(err.status).type("text/plain").send(`${err.message}\n`);
      throw err;
    }
    const allow = this.#allowList(module);
    try {
      // Refused before it waits for a slot: what the names alone decide costs no probe.
      allow.screen(target.host);
    } catch (err) {
      if (err instanceof NotAllowedError) return reply.code(403).type("text/plain").send(`${err.message}\n`);
      throw err;
    }
    const deadlineSeconds = probeDeadlineSeconds(module.timeout ?? config.probe.timeout, this.#deps.http.scrapeTimeout, request.headers[SCRAPE_TIMEOUT_HEADER]);
    const started = performance.now();
    // `gone` aborts the probe (its client left); `waiting` also ends at the deadline, for the line.
    const left = new AbortController();
    reply.raw.once("close", () => left.abort());
    const gone = left.signal;
    const waiting = AbortSignal.any([gone, AbortSignal.timeout(Math.round(deadlineSeconds * 1000))]);
    let release: () => void;
    try {
      release = await this.#gate.acquire(waiting);
    } catch (err) {
      if (gone.aborted) return reply;
      const why = err instanceof ScrapeRefusedError ? err.message : `no probe slot within the ${deadlineSeconds} s deadline`;
      return reply.code(503).header("retry-after", String(RETRY_AFTER_SECONDS)).type("text/plain").send(`${why}\n`);
    }
    let probed: ProbeTarget;
    let outcome: EndpointOutcome;
    try {
      const remainingMs = () => Math.max(1, Math.round(deadlineSeconds * 1000 - (performance.now() - started)));
      let dial: string | undefined;
      let unresolved: CertReadError | undefined;
      try {
        dial = await allow.admit(target.host, this.#lookup, AbortSignal.any([gone, AbortSignal.timeout(remainingMs())]));
      } catch (err) {
        if (err instanceof NotAllowedError) return reply.code(403).type("text/plain").send(`${err.message}\n`);
        // The name did not resolve, so nothing can be checked or dialled: a failed probe, as a plain connect's would be.
        if (typeof (err as NodeJS.ErrnoException | undefined)?.code !== "string") throw err;
        unresolved = new CertReadError("dns_error", (err as Error).message);
      }
      probed = probeTarget(module, target.address, dial);
      outcome = unresolved ? outcomeOf(unresolved, (performance.now() - started) / 1000) : await this.#probe(probed, module, config, remainingMs(), gone);
    } finally {
      release();
    }
    if (gone.aborted) return reply;
    return reply.type(PROMETHEUS_CONTENT_TYPE).send(await this.#render(probed, outcome, config));
  }

  /** The module and target a request names; a Refusal when it names none or a bad one. */
  #request(config: Config, query: Record<string, unknown>): { module: ProbeModule; target: { host: string; port: number; address: string } } {
    const rawTarget = single(query, "target");
    const rawModule = single(query, "module");
    if (!rawTarget) throw new Refusal(400, "target is required: /probe?target=host:port&module=NAME");
    const target = parseProbeTarget(rawTarget);
    const name = rawModule || "default";
    const module = Object.hasOwn(config.modules, name) ? config.modules[name] : undefined;
    if (!module) {
      throw new Refusal(400, rawModule ? `unknown module ${quoted(rawModule)}` : "module is required: no module is named default");
    }
    return { module, target };
  }

  #allowList(module: ProbeModule): AllowList {
    let list = this.#allowLists.get(module);
    if (!list) {
      list = new AllowList(module.allow);
      this.#allowLists.set(module, list);
    }
    return list;
  }

  async #probe(target: ProbeTarget, module: ProbeModule, config: Config, timeoutMs: number, signal: AbortSignal): Promise<EndpointOutcome> {
    let secureContext;
    try {
      // Read at every probe, so a renewed CA or client certificate is used at once; built once per content.
      secureContext = needsSecureContext(target) ? this.#trust.load(target, config.limits.maxFileSize) : undefined;
    } catch (err) {
      return outcomeOf(toReadError(err));
    }
    const connectTimeoutMs = (module.connectTimeout ?? config.probe.connectTimeout) * 1000;
    return probeEndpoint(target, this.#deps.cache, { secureContext, timeoutMs, connectTimeoutMs, signal });
  }

  /** The certificate and endpoint families of the one location probed, as /metrics would show it. */
  async #render(target: ProbeTarget, outcome: EndpointOutcome, config: Config): Promise<Buffer> {
    const inventory = new Inventory();
    inventory.replace(endpointLocation(target), locationUpdate(outcome.found, config.limits, { probe: outcome.probe }));
    const renderer = new MetricsRenderer(inventory, this.#deps.health, { maxLabelValueLength: config.limits.maxLabelValueLength, selection: () => config.metrics });
    return Buffer.concat(await renderer.renderCertificates());
  }
}
