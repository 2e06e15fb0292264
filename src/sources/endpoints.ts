import { createHash } from "node:crypto";
import { isIP } from "node:net";
import type { SecureContext } from "node:tls";
import pLimit, { type LimitFunction } from "p-limit";
import type { ParseCache } from "../certs/cache.js";
import type { CertRecord } from "../certs/record.js";
import type { EndpointTarget } from "../config.js";
import { CertReadError, toReadError } from "../errors.js";
import type { SourceHealth } from "../health-state.js";
import { locationId, type EndpointProbe, type Location } from "../model.js";
import { probeTls, tlsContext } from "../probe/tls.js";
import { transportFor, type TransportSettings } from "../probe/transport.js";
import { readFileBounded } from "../read-bounded.js";
import type { Source, SourceContext } from "./source.js";

/** One endpoint to probe, from the configuration or from discovery; its protocol and proxy are its transport. */
export interface ProbeTarget extends TransportSettings {
  /** The location's namespace: "" for static targets, the discovered object's namespace otherwise. */
  namespace: string;
  /** `host:port` (`[v6]:port`) the endpoint is known by: the location's name. */
  address: string;
  /** Where to connect when that is not `address`, e.g. an Ingress's load balancer: `host` or `host:port`. */
  connectTo?: string;
  /** SNI and the name checked against the leaf; defaults to the host of `address`. */
  serverName?: string;
  /** PEM file of CAs trusted beside the system roots. */
  caFile?: string;
  /** PEM CAs given inline (e.g. a discovered caBundle), trusted beside the system roots. */
  caPem?: readonly string[];
  /** Trust caPem and caFile only, not the system roots: as the API server trusts a webhook's caBundle. */
  caOnly?: boolean;
  /** The location's key; default the server name when it differs from the host. */
  key?: string;
  /** Client certificate and key (PEM files) for endpoints that demand mTLS. */
  certFile?: string;
  keyFile?: string;
  /** Overall deadline of this target's probe, seconds; defaults to `probe.timeout`. */
  timeout?: number;
}

/**
 * Where targets come from. Static targets are one provider; Kubernetes discovery (Ingresses,
 * annotated Services, the API server, kubelets) plugs in as others. A provider always hands over its
 * complete current list; the source works out what was added and what went.
 */
export interface TargetProvider {
  readonly name: string;
  /** The `source` label it reports its own health under, when it has one (Kubernetes discovery). */
  readonly healthSource?: string;
  /** Begins following changes; resolves once `onChange` has had the first complete list. */
  start(onChange: (targets: readonly ProbeTarget[]) => void): Promise<void>;
  /** The complete current list, once, without following changes (for `check`). */
  list(): Promise<readonly ProbeTarget[]>;
  stop(): Promise<void>;
}

/** The targets of `sources.endpoints`; `set` replaces them (a configuration reload). */
export class StaticTargets implements TargetProvider {
  readonly name = "static";
  #targets: readonly ProbeTarget[];
  #onChange: ((targets: readonly ProbeTarget[]) => void) | undefined;

  constructor(targets: readonly EndpointTarget[]) {
    this.#targets = targets.map(fromConfig);
  }

  async start(onChange: (targets: readonly ProbeTarget[]) => void): Promise<void> {
    this.#onChange = onChange;
    onChange(this.#targets);
  }

  async list(): Promise<readonly ProbeTarget[]> {
    return this.#targets;
  }

  async stop(): Promise<void> {
    this.#onChange = undefined;
  }

  set(targets: readonly EndpointTarget[]): void {
    this.#targets = targets.map(fromConfig);
    this.#onChange?.(this.#targets);
  }
}

function fromConfig(target: EndpointTarget): ProbeTarget {
  const out: ProbeTarget = { namespace: "", address: target.address };
  if (target.serverName) out.serverName = target.serverName;
  if (target.caFile) out.caFile = target.caFile;
  if (target.certFile) out.certFile = target.certFile;
  if (target.keyFile) out.keyFile = target.keyFile;
  if (target.timeout) out.timeout = target.timeout;
  if (target.proxyUrl) out.proxyUrl = target.proxyUrl;
  if (target.protocol && target.protocol !== "tls") out.protocol = target.protocol;
  return out;
}

/** `host:port` or `[v6]:port` into its parts; the port is optional when `defaultPort` is given. */
export function splitHostPort(address: string, defaultPort?: number): { host: string; port: number } {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)|([0-9a-fA-F:]+:[0-9a-fA-F:.]*))(?::(\d{1,5}))?$/.exec(address);
  const host = match?.[1] ?? match?.[2] ?? match?.[3];
  const port = match?.[4] !== undefined ? Number(match[4]) : defaultPort;
  if (!host || port === undefined || port < 1 || port > 65535) throw new Error(`not a host:port address: ${address}`);
  return { host: host.toLowerCase(), port };
}

/** The location of a target: name `host:port` (IPv6 bracketed), key the server name when it differs from the host. */
export function endpointLocation(target: ProbeTarget): Location {
  const { host, port } = splitHostPort(target.address);
  const name = isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
  const serverName = target.serverName?.toLowerCase();
  if (target.key !== undefined) return { source: "endpoint", namespace: target.namespace, name, key: target.key };
  return { source: "endpoint", namespace: target.namespace, name, key: serverName && serverName !== host ? serverName : "" };
}

export interface EndpointSourceOptions {
  intervalSeconds: number;
  /** Fraction of the interval by which each cycle's start is moved at random, 0 to 1. */
  jitter: number;
  concurrency: number;
  /** Overall deadline of one probe, seconds. */
  timeout: number;
  connectTimeout: number;
  /** CA, client certificate and key files larger than this are `too_large`. */
  maxFileSize: number;
}

interface TargetState {
  readonly id: string;
  readonly location: Location;
  target: ProbeTarget;
  inFlight: Promise<void> | undefined;
  controller: AbortController | undefined;
}

const MAX_CONTEXTS = 64;

/**
 * Probes TLS endpoints and publishes every certificate they present. Targets come from providers
 * (static configuration first, then discovery). Every cycle probes each target once through a
 * shared concurrency limit; cycles start every interval (± jitter) counted from the previous
 * start, so a slow endpoint holds one slot for at most its own timeout and never pushes the others'
 * schedule. A target still being probed when a cycle starts is not probed twice. A target that
 * appears between cycles is probed at once; one that goes loses its series at once.
 */
export class EndpointSource implements Source {
  readonly name = "endpoint";
  readonly #ctx: SourceContext;
  readonly #health: SourceHealth;
  readonly #options: EndpointSourceOptions;
  readonly #providers: TargetProvider[];
  readonly #static: StaticTargets;
  readonly #limit: LimitFunction;
  readonly #lists = new Map<TargetProvider, readonly ProbeTarget[]>();
  readonly #targets = new Map<string, TargetState>();
  readonly #trust = new SecureContexts();
  /** Trust material as read in the current cycle, by the target's files: read once per cycle, not per probe. */
  readonly #cycleContexts = new Map<string, Promise<SecureContext | undefined>>();
  #timer: NodeJS.Timeout | undefined;
  #running = false;
  #cycle: Promise<void> | undefined;

  constructor(targets: readonly EndpointTarget[], options: EndpointSourceOptions, ctx: SourceContext, providers: readonly TargetProvider[] = []) {
    this.#ctx = ctx;
    this.#options = options;
    this.#static = new StaticTargets(targets);
    this.#providers = [this.#static, ...providers];
    this.#limit = pLimit(Math.max(1, options.concurrency));
    this.#health = ctx.health.source(this.name);
  }

  healthSources(): string[] {
    return [this.name, ...this.#providers.flatMap((provider) => provider.healthSource ?? [])];
  }

  /** Replaces the static targets, as a configuration reload does. */
  setStaticTargets(targets: readonly EndpointTarget[]): void {
    this.#static.set(targets);
  }

  /** Locations currently probed. */
  locations(): Location[] {
    return [...this.#targets.values()].map((state) => ({ ...state.location }));
  }

  async start(): Promise<void> {
    this.#running = true;
    const cycleStart = performance.now();
    try {
      await Promise.all(this.#providers.map((provider) => provider.start((targets) => this.#onProviderChange(provider, targets))));
    } catch (err) {
      this.#health.failed();
      this.#ctx.log.error({ source: this.name, err }, "endpoint discovery failed to start");
    }
    await this.#runCycle();
    this.#scheduleFrom(cycleStart);
  }

  async scanOnce(): Promise<void> {
    await this.#health.scan(async () => {
      for (const provider of this.#providers) this.#lists.set(provider, await provider.list());
      this.#reconcile();
      await this.#probeAll();
    });
  }

  async stop(): Promise<void> {
    this.#running = false;
    clearTimeout(this.#timer);
    await Promise.all(this.#providers.map((provider) => provider.stop().catch(() => undefined)));
    for (const state of this.#targets.values()) state.controller?.abort();
    await this.#cycle?.catch(() => undefined);
    await Promise.all([...this.#targets.values()].map((state) => state.inFlight));
  }

  #onProviderChange(provider: TargetProvider, targets: readonly ProbeTarget[]): void {
    this.#lists.set(provider, targets);
    const added = this.#reconcile();
    // Between cycles, a new target is probed at once rather than at the next cycle.
    if (this.#running && this.#cycle === undefined) for (const state of added) void this.#probe(state);
  }

  /** Makes the target set match the providers' lists; returns the targets that are new. */
  #reconcile(): TargetState[] {
    const wanted = new Map<string, { location: Location; target: ProbeTarget }>();
    for (const provider of this.#providers) {
      for (const target of this.#lists.get(provider) ?? []) {
        let location: Location;
        try {
          location = endpointLocation(target);
        } catch (err) {
          this.#ctx.log.warn({ source: this.name, provider: provider.name, address: target.address, err: (err as Error).message }, "ignoring endpoint target");
          continue;
        }
        // Endpoints are sharded by their host:port, the `name` label.
        if (!this.#ctx.shard.owns(location.name)) continue;
        const id = locationId(location);
        if (!wanted.has(id)) wanted.set(id, { location, target });
      }
    }
    for (const [id, state] of this.#targets) {
      if (wanted.has(id)) continue;
      state.controller?.abort();
      this.#targets.delete(id);
      this.#ctx.remove(state.location);
    }
    const added: TargetState[] = [];
    for (const [id, { location, target }] of wanted) {
      const state = this.#targets.get(id);
      if (state) {
        state.target = target;
        continue;
      }
      const fresh: TargetState = { id, location, target, inFlight: undefined, controller: undefined };
      this.#targets.set(id, fresh);
      added.push(fresh);
    }
    return added;
  }

  async #runCycle(): Promise<void> {
    await this.#health.scan(() => this.#probeAll());
  }

  /** Probes every target once, sharing the cycle's trust material. */
  async #probeAll(): Promise<void> {
    this.#cycleContexts.clear();
    const cycle = Promise.all([...this.#targets.values()].map((state) => this.#probe(state))).then(() => undefined);
    this.#cycle = cycle;
    try {
      await cycle;
    } finally {
      this.#cycle = undefined;
    }
  }

  #scheduleFrom(cycleStart: number): void {
    if (!this.#running) return;
    const intervalMs = this.#options.intervalSeconds * 1000;
    const delay = intervalMs * (1 + this.#options.jitter * (Math.random() * 2 - 1));
    const wait = Math.max(0, cycleStart + delay - performance.now());
    this.#timer = setTimeout(() => {
      const next = performance.now();
      this.#scheduleFrom(next);
      void this.#runCycle();
    }, wait);
  }

  /** Probes one target through the concurrency limit; a probe already under way is shared. */
  #probe(state: TargetState): Promise<void> {
    if (state.inFlight) return state.inFlight;
    const controller = new AbortController();
    state.controller = controller;
    const run = this.#limit(() => (controller.signal.aborted ? undefined : this.#probeNow(state, controller.signal)))
      .catch((err: unknown) => this.#ctx.log.error({ ...state.location, sourceName: this.name, err }, "endpoint probe crashed"))
      .finally(() => {
        if (state.inFlight === run) state.inFlight = undefined;
        if (state.controller === controller) state.controller = undefined;
      });
    state.inFlight = run;
    return run;
  }

  async #probeNow(state: TargetState, signal: AbortSignal): Promise<void> {
    const { target, location } = state;
    let secureContext: SecureContext | undefined;
    try {
      secureContext = await this.#secureContext(target);
    } catch (err) {
      const error = toReadError(err);
      this.#publish(state, signal, error, failedProbe(error));
      return;
    }
    const timeoutMs = (target.timeout ?? this.#options.timeout) * 1000;
    const outcome = await probeEndpoint(target, this.#ctx.cache, { secureContext, timeoutMs, connectTimeoutMs: this.#options.connectTimeout * 1000, signal });
    if (outcome.parseError) this.#ctx.log.warn({ ...location, sourceName: this.name, reason: outcome.parseError.reason }, "a presented certificate does not parse");
    this.#publish(state, signal, outcome.found, outcome.probe);
  }

  /** Publishes unless the target went away (or was replaced) while it was probed. */
  #publish(state: TargetState, signal: AbortSignal, result: readonly CertRecord[] | CertReadError, probe: EndpointProbe): void {
    if (signal.aborted || this.#targets.get(state.id) !== state) return;
    this.#ctx.publish(state.location, result, { probe });
  }

  /** The trust anchors and client certificate of a target; undefined for the default (system roots only). */
  #secureContext(target: ProbeTarget): Promise<SecureContext | undefined> {
    if (!needsSecureContext(target)) return Promise.resolve(undefined);
    const files = JSON.stringify([target.caFile, target.certFile, target.keyFile, target.caPem, target.caOnly]);
    let context = this.#cycleContexts.get(files);
    if (!context) {
      context = this.#loadSecureContext(target);
      this.#cycleContexts.set(files, context);
    }
    return context;
  }

  /** Reads a target's files and returns the context for their contents, built once per distinct content. */
  async #loadSecureContext(target: ProbeTarget): Promise<SecureContext> {
    return this.#trust.load(target, this.#options.maxFileSize);
  }
}

/** The trust settings of a target: what its secure context is built from. */
export type TrustSettings = Pick<ProbeTarget, "caFile" | "caPem" | "caOnly" | "certFile" | "keyFile">;

/** True when a target needs a secure context of its own: it names CAs or a client certificate. */
export function needsSecureContext(target: TrustSettings): boolean {
  return Boolean(target.caFile || target.caPem?.length || target.certFile || target.keyFile);
}

/**
 * Secure contexts by the content of the files they are built from: building one (the system roots
 * plus a CA) costs milliseconds, so targets sharing a CA share a context, and a renewed file gets a
 * new one. At most MAX_CONTEXTS are kept.
 */
export class SecureContexts {
  readonly #contexts = new Map<string, SecureContext>();

  /** Reads the files (each up to `maxFileSize`) now; throws a CertReadError when one cannot be read. */
  load(target: TrustSettings, maxFileSize: number): SecureContext {
    const read = (path: string) => readFileBounded(path, maxFileSize);
    const ca = [...(target.caPem ?? [])];
    if (target.caFile) ca.push(read(target.caFile).toString("utf8"));
    const cert = target.certFile ? read(target.certFile) : undefined;
    const key = target.keyFile ? read(target.keyFile) : undefined;
    const hash = createHash("sha256");
    for (const part of [...ca, "\u0000", cert ?? "", "\u0000", key ?? "", "\u0000", target.caOnly ? "only" : ""]) hash.update(part);
    const cacheKey = hash.digest("base64");
    let context = this.#contexts.get(cacheKey);
    if (!context) {
      context = tlsContext({ ca, systemRoots: !target.caOnly, ...(cert ? { cert } : {}), ...(key ? { key } : {}) });
      if (this.#contexts.size >= MAX_CONTEXTS) this.#contexts.delete(this.#contexts.keys().next().value as string);
      this.#contexts.set(cacheKey, context);
    }
    return context;
  }
}

/** What one probe of a target found: its certificates or why there are none, and the probe's facts. */
export interface EndpointOutcome {
  /** What the location holds: the presented certificates that parse, or the read error. */
  found: CertRecord[] | CertReadError;
  probe: EndpointProbe;
  /** The first presented certificate that did not parse, when one did not (the others are kept). */
  parseError?: CertReadError;
}

export interface EndpointProbeOptions {
  /** The target's CAs and client certificate; the system roots alone when absent. */
  secureContext?: SecureContext | undefined;
  /** The overall deadline of the probe. */
  timeoutMs: number;
  /** Time allowed for DNS and TCP connect; never more than `timeoutMs`. */
  connectTimeoutMs: number;
  signal?: AbortSignal;
}

/**
 * Probes one target and parses what it presented, through the shared parse cache: the one path of
 * the endpoint source and of /probe. It connects to `connectTo` when set (else the target's own
 * host), through the target's transport (proxy, STARTTLS), and checks the server name (default the
 * host of `address`). Never throws.
 */
export async function probeEndpoint(target: ProbeTarget, cache: ParseCache, options: EndpointProbeOptions): Promise<EndpointOutcome> {
  const { host: nameHost, port: namePort } = splitHostPort(target.address);
  const { host, port } = target.connectTo ? splitHostPort(target.connectTo, namePort) : { host: nameHost, port: namePort };
  const result = await probeTls({
    host,
    port,
    ...transportFor(target, host, port),
    serverName: target.serverName ?? nameHost,
    ...(options.secureContext ? { secureContext: options.secureContext } : {}),
    connectTimeoutMs: Math.min(options.connectTimeoutMs, options.timeoutMs),
    timeoutMs: options.timeoutMs,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  const records: CertRecord[] = [];
  let parseError: CertReadError | undefined;
  for (const der of result.certificates) {
    try {
      records.push(...cache.parse(der, "der"));
    } catch (err) {
      parseError ??= toReadError(err, "corrupt_certificate");
    }
  }
  let found: CertRecord[] | CertReadError;
  if (records.length > 0) found = records;
  else if (result.error) found = new CertReadError(result.error.reason, result.error.message);
  else found = parseError ?? new CertReadError("tls_error", "no certificate was presented");
  return { found, probe: result.probe, ...(parseError ? { parseError } : {}) };
}

/** The facts of a probe that could not start (its CA or client certificate did not load, its host name did not resolve). */
export function failedProbe(error: CertReadError): EndpointProbe {
  return {
    success: false,
    chainVerified: false,
    verifyError: "",
    hostnameMatch: false,
    tlsVersion: "",
    cipher: "",
    durationSeconds: 0,
    reason: error.reason,
    message: error.message,
  };
}
