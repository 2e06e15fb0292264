/**
 * A test double of the Kubernetes API server that speaks the real wire protocol over HTTPS, so real
 * clients (kubectl, @kubernetes/client-node) work against it: discovery, LIST with limit/continue and
 * selectors, WATCH with bookmarks and 410 Expired, create/get/update/patch/delete, Table output, plus
 * in-process control methods and fault injection for tests.
 *
 *   const api = await FakeApiServer.start();
 *   api.putSecret("team-a", "web-tls", { "tls.crt": pem, "tls.key": key }, { type: "kubernetes.io/tls" });
 *   const kubeconfig = api.kubeconfigPath();
 *   ...
 *   await api.close();
 */
import { randomBytes, randomUUID, webcrypto } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import type { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeCert, privateKeyPem } from "../../scripts/certgen.js";
import { decodeK8sProtobuf } from "./protobuf.js";
import { jsonPatch, mergePatch, PatchError, strategicMergePatch } from "./patch.js";
import { ALL_RESOURCES, apiVersionOf, type Cause, type K8sObject, type ResourceType } from "./resources.js";
import { matchFields, matchLabels, parseFieldSelector, parseLabelSelector, SelectorError, type FieldRequirement, type LabelRequirement } from "./selectors.js";

export * from "./resources.js";

export interface ApiServerOptions {
  /** Bearer token clients must send; random by default. */
  token?: string;
  /** Resource types served; default ALL_RESOURCES (namespaces, secrets, configmaps, services, nodes, ingresses). */
  resources?: ResourceType[];
  /** Namespaces that exist at start; default default, kube-system, kube-public, kube-node-lease. */
  namespaces?: string[];
  /**
   * How many resourceVersions of history are kept. A watch from, or a continue token for, a
   * resourceVersion older than that answers 410 Expired. Default 1000.
   */
  historyWindow?: number;
  /** Continue tokens more than this many resourceVersions behind the current one expire (410). Default: historyWindow. */
  continueMaxAge?: number;
  /** Interval of BOOKMARK events on watches that ask for them (allowWatchBookmarks). Default 5000 ms. */
  bookmarkIntervalMs?: number;
  /** Server-side end of a watch without timeoutSeconds. Default 1800 s (the real minimum request timeout). */
  maxWatchSeconds?: number;
  /** Request log entries kept (oldest dropped). Default 10000. */
  logLimit?: number;
  /** Largest request body accepted (413 beyond). Default 8 MiB. */
  maxBodyBytes?: number;
  /** User named in 403 messages. */
  user?: string;
  /** Port to listen on (127.0.0.1); default 0 (random). */
  port?: number;
}

export type Verb = "get" | "list" | "watch" | "create" | "update" | "patch" | "delete" | "deletecollection" | "discovery";

/** One request as the double saw it. */
export interface RequestRecord {
  time: number;
  method: string;
  /** Path without the query string. */
  path: string;
  query: Record<string, string>;
  verb: Verb;
  resource?: string;
  group?: string;
  namespace?: string;
  name?: string;
  accept?: string;
  contentType?: string;
  userAgent?: string;
  /** HTTP status sent (0 while a watch stream is still open or when the socket was reset). */
  status: number;
  /** Response body bytes written so far. */
  bytes: number;
  /** Objects returned by a list/get, or events sent on a watch. */
  items: number;
}

/** Selects requests: every given property must match. */
export interface RequestMatch {
  method?: string;
  verb?: Verb | Verb[];
  /** Exact path, or a RegExp tested against the path. */
  path?: string | RegExp;
  resource?: string;
  /** A namespace; null matches only requests without one (cluster scope). */
  namespace?: string | null;
  name?: string;
  /** Each query parameter given must be present with that value (true: present with any value). */
  query?: Record<string, string | true>;
}

export type RequestFilter = RequestMatch | ((r: RequestRecord) => boolean);

export interface ForbidRule {
  /** Resource (plural) to forbid; default every resource. */
  resource?: string;
  /** Namespace to forbid; null forbids cluster-scope requests (e.g. /api/v1/secrets); undefined forbids all. */
  namespace?: string | null;
  /** Verbs to forbid; default every verb. */
  verbs?: Verb[];
}

export interface FailOptions {
  /** How many matching requests fail. Default 1. */
  count?: number;
  /** Only requests matching this fail; default any request except discovery. */
  match?: RequestFilter;
  /** Retry-After (and details.retryAfterSeconds) for 429 and 503. Default 1. */
  retryAfterSeconds?: number;
  message?: string;
}

export interface ResetOptions {
  count?: number;
  /** Only list requests matching this are reset; default any list. */
  match?: RequestFilter;
  /** Body bytes sent before the socket is destroyed; default half of the page. */
  afterBytes?: number;
}

export interface WatchEvent {
  type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";
  object: Record<string, unknown>;
}

interface HistoryEvent {
  rv: number;
  type: "ADDED" | "MODIFIED" | "DELETED";
  rt: ResourceType;
  key: string;
  object: K8sObject;
  prev?: K8sObject;
}

type Output = { as: "object" } | { as: "table"; include: "None" | "Metadata" | "Object" } | { as: "metadata" };

interface Watcher {
  rt: ResourceType;
  namespace?: string;
  labels: LabelRequirement[];
  fields: FieldRequirement[];
  res: ServerResponse;
  record: RequestRecord;
  /** Deliver only events with a resourceVersion above this. */
  fromRv: number;
  silent: boolean;
  output: Output;
  sentColumns: boolean;
  timers: NodeJS.Timeout[];
}

interface Fault {
  status: number;
  remaining: number;
  match?: RequestFilter;
  retryAfterSeconds: number;
  message?: string;
}

interface Reset {
  remaining: number;
  match?: RequestFilter;
  afterBytes?: number;
}

class HttpError extends Error {
  constructor(
    readonly code: number,
    readonly body: Record<string, unknown>,
    readonly headers: Record<string, string> = {},
  ) {
    super(String(body.message));
  }
}

const REASONS: Record<number, string> = {
  400: "BadRequest",
  401: "Unauthorized",
  403: "Forbidden",
  404: "NotFound",
  405: "MethodNotAllowed",
  406: "NotAcceptable",
  409: "Conflict",
  410: "Expired",
  413: "RequestEntityTooLarge",
  415: "UnsupportedMediaType",
  422: "Invalid",
  429: "TooManyRequests",
  500: "InternalError",
  503: "ServiceUnavailable",
  504: "Timeout",
};

/** A metav1.Status failure object, as the real server sends it. */
export function statusObject(code: number, message: string, reason = REASONS[code] ?? "Unknown", details?: Record<string, unknown>, metadata: Record<string, unknown> = {}): Record<string, unknown> {
  const s: Record<string, unknown> = { kind: "Status", apiVersion: "v1", metadata, status: "Failure", message, reason };
  if (details) s.details = details;
  s.code = code;
  return s;
}

function fail(code: number, message: string, reason?: string, details?: Record<string, unknown>, headers?: Record<string, string>, metadata?: Record<string, unknown>): never {
  throw new HttpError(code, statusObject(code, message, reason, details, metadata), headers);
}

function rfc3339(ms = Date.now()): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

function clone<T>(v: T): T {
  return structuredClone(v);
}

function encodeContinue(rv: number, start: string, epoch = 0): string {
  return Buffer.from(JSON.stringify(epoch ? { v: "meta.k8s.io/v1", rv, start, e: epoch } : { v: "meta.k8s.io/v1", rv, start })).toString("base64");
}

function decodeContinue(token: string): { rv: number; start: string; epoch: number } {
  try {
    const parsed = JSON.parse(Buffer.from(token, "base64").toString("utf8")) as { v?: string; rv?: number; start?: string; e?: number };
    if (parsed.v !== "meta.k8s.io/v1" || typeof parsed.rv !== "number" || typeof parsed.start !== "string") throw new Error("bad");
    return { rv: parsed.rv, start: parsed.start, epoch: typeof parsed.e === "number" ? parsed.e : 0 };
  } catch {
    return fail(400, `continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)`, "BadRequest");
  }
}

const CONTINUE_EXPIRED =
  "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";

function matches(filter: RequestFilter | undefined, r: RequestRecord): boolean {
  if (!filter) return true;
  if (typeof filter === "function") return filter(r);
  if (filter.method && filter.method.toUpperCase() !== r.method) return false;
  if (filter.verb && !(Array.isArray(filter.verb) ? filter.verb : [filter.verb]).includes(r.verb)) return false;
  if (filter.path !== undefined && (typeof filter.path === "string" ? filter.path !== r.path : !filter.path.test(r.path))) return false;
  if (filter.resource !== undefined && filter.resource !== r.resource) return false;
  if (filter.namespace !== undefined && (filter.namespace ?? undefined) !== r.namespace) return false;
  if (filter.name !== undefined && filter.name !== r.name) return false;
  for (const [k, v] of Object.entries(filter.query ?? {})) {
    if (!(k in r.query) || (v !== true && r.query[k] !== v)) return false;
  }
  return true;
}

/** Picks the response shape from the Accept header (first supported entry wins). */
function negotiate(accept: string | undefined, query: Record<string, string>): Output {
  if (!accept) return { as: "object" };
  for (const entry of accept.split(",")) {
    const [type = "", ...params] = entry.split(";").map((s) => s.trim());
    const p = Object.fromEntries(params.map((x) => x.split("=").map((s) => s.trim()) as [string, string]));
    if (type !== "application/json" && type !== "*/*" && type !== "application/*") continue;
    if (!p.as) return { as: "object" };
    if (p.g !== "meta.k8s.io" || (p.v !== "v1" && p.v !== "v1beta1")) continue;
    if (p.as === "Table") {
      const inc = query.includeObject;
      return { as: "table", include: inc === "None" || inc === "Object" ? inc : "Metadata" };
    }
    if (p.as === "PartialObjectMetadata" || p.as === "PartialObjectMetadataList") return { as: "metadata" };
  }
  return fail(406, `only the following media types are accepted: application/json, application/json;as=Table;v=v1;g=meta.k8s.io`, "NotAcceptable");
}

const NAME_COLUMN = { name: "Name", type: "string", format: "name", description: "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names", priority: 0 };

export class FakeApiServer {
  readonly token: string;
  readonly caPem: string;
  readonly host = "127.0.0.1";
  port = 0;

  readonly #opts: Required<Omit<ApiServerOptions, "token" | "resources" | "namespaces" | "port">>;
  readonly #types: ResourceType[];
  readonly #tokens: Set<string>;
  readonly #store = new Map<ResourceType, Map<string, K8sObject>>();
  #rv = 0;
  #history: HistoryEvent[] = [];
  /** Oldest resourceVersion a watch may start from (events after it are all retained). */
  #compactedRv = 0;
  /** Continue tokens below this resourceVersion are expired. */
  /** Bumped by expireContinueTokens(): tokens of an older epoch expire, later ones stay valid. */
  #continueEpoch = 0;
  readonly #watchers = new Set<Watcher>();
  readonly #sockets = new Set<Socket>();
  #log: RequestRecord[] = [];
  #forbidden: ForbidRule[] = [];
  #faults: Fault[] = [];
  #resets: Reset[] = [];
  #silenceNext = 0;
  #server: Server;
  #listening = false;
  #tmpDir: string | undefined;
  readonly #serverOptions: { cert: string; key: string };

  private constructor(opts: ApiServerOptions, tls: { cert: string; key: string; ca: string }) {
    this.token = opts.token ?? randomBytes(24).toString("hex");
    this.#tokens = new Set([this.token]);
    this.caPem = tls.ca;
    this.#serverOptions = { cert: tls.cert, key: tls.key };
    this.#types = opts.resources ?? ALL_RESOURCES;
    const historyWindow = opts.historyWindow ?? 1000;
    this.#opts = {
      historyWindow,
      continueMaxAge: opts.continueMaxAge ?? historyWindow,
      bookmarkIntervalMs: opts.bookmarkIntervalMs ?? 5000,
      maxWatchSeconds: opts.maxWatchSeconds ?? 1800,
      logLimit: opts.logLimit ?? 10_000,
      maxBodyBytes: opts.maxBodyBytes ?? 8 * 1024 * 1024,
      user: opts.user ?? "system:serviceaccount:monitoring:cert-expiry-exporter",
    };
    for (const t of this.#types) this.#store.set(t, new Map());
    const namespaces = this.#types.some((t) => t.kind === "Namespace") ? (opts.namespaces ?? ["default", "kube-system", "kube-public", "kube-node-lease"]) : [];
    for (const ns of namespaces) {
      this.put({ apiVersion: "v1", kind: "Namespace", metadata: { name: ns } });
    }
    this.#server = this.#createServer();
  }

  /** Generates a CA and a serving certificate for 127.0.0.1/localhost, and starts listening. */
  static async start(opts: ApiServerOptions = {}): Promise<FakeApiServer> {
    const ca = await makeCert({ cn: "fake-kube-apiserver-ca", ca: true, notAfterDays: 30 });
    const keys = (await webcrypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"])) as CryptoKeyPair;
    const leaf = await makeCert({ cn: "kube-apiserver", issuer: ca, keys, sans: ["localhost", "kubernetes", "IP:127.0.0.1"], notAfterDays: 30 });
    const server = new FakeApiServer(opts, { cert: leaf.pem, key: await privateKeyPem(leaf), ca: ca.pem });
    await server.#listen(opts.port ?? 0);
    return server;
  }

  get url(): string {
    return `https://${this.host}:${this.port}`;
  }

  /** The current (latest) resourceVersion. */
  get resourceVersion(): string {
    return String(this.#rv);
  }

  get listening(): boolean {
    return this.#listening;
  }

  /** Accepts another bearer token too. */
  addToken(token: string): void {
    this.#tokens.add(token);
  }

  /** Stops accepting a bearer token (401 from then on), as after a service-account token rotation. */
  removeToken(token: string): void {
    this.#tokens.delete(token);
  }

  // ---------------------------------------------------------------- kubeconfig

  /** Kubeconfig YAML with certificate-authority-data and the bearer token. */
  kubeconfig(opts: { namespace?: string; token?: string; server?: string } = {}): string {
    return [
      "apiVersion: v1",
      "kind: Config",
      "clusters:",
      "- name: fake",
      "  cluster:",
      `    server: ${opts.server ?? this.url}`,
      `    certificate-authority-data: ${Buffer.from(this.caPem).toString("base64")}`,
      "users:",
      "- name: fake",
      "  user:",
      `    token: ${JSON.stringify(opts.token ?? this.token)}`,
      "contexts:",
      "- name: fake",
      "  context:",
      "    cluster: fake",
      "    user: fake",
      `    namespace: ${opts.namespace ?? "default"}`,
      "current-context: fake",
      "",
    ].join("\n");
  }

  /** Writes the kubeconfig to `dir/kubeconfig` and returns the path. */
  async writeKubeconfig(dir: string, opts: { namespace?: string; token?: string } = {}): Promise<string> {
    const path = join(dir, "kubeconfig");
    await writeFile(path, this.kubeconfig(opts), { mode: 0o600 });
    return path;
  }

  /** A kubeconfig file in a temporary directory removed on close(). */
  kubeconfigPath(opts: { namespace?: string; token?: string } = {}): string {
    this.#tmpDir ??= mkdtempSync(join(tmpdir(), "fake-apiserver-"));
    const path = join(this.#tmpDir, `kubeconfig-${opts.namespace ?? "default"}-${opts.token === undefined ? "ok" : randomBytes(4).toString("hex")}`);
    writeFileSync(path, this.kubeconfig(opts), { mode: 0o600 });
    return path;
  }

  // ---------------------------------------------------------------- lifecycle

  #createServer(): Server {
    const server = createServer({ ...this.#serverOptions, minVersion: "TLSv1.2" }, (req, res) => this.#handle(req, res));
    server.on("connection", (s: Socket) => {
      this.#sockets.add(s);
      s.on("close", () => this.#sockets.delete(s));
    });
    server.on("tlsClientError", () => undefined);
    server.keepAliveTimeout = 5000;
    server.requestTimeout = 0;
    return server;
  }

  async #listen(port: number): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.#server.once("error", onError);
      this.#server.listen(port, this.host, () => {
        this.#server.off("error", onError);
        resolve();
      });
    });
    const addr = this.#server.address();
    if (addr && typeof addr === "object") this.port = addr.port;
    this.#listening = true;
  }

  /** Server down: stops listening and drops every connection (open watches end abruptly). */
  async stop(): Promise<void> {
    if (!this.#listening) return;
    this.#listening = false;
    for (const w of [...this.#watchers]) this.#endWatch(w, false);
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const s of this.#sockets) s.destroy();
    this.#sockets.clear();
    await closed;
  }

  /** Server up again on the same port, with the same state. */
  async restart(): Promise<void> {
    if (this.#listening) return;
    this.#server = this.#createServer();
    await this.#listen(this.port);
  }

  async close(): Promise<void> {
    await this.stop();
    if (this.#tmpDir) rmSync(this.#tmpDir, { recursive: true, force: true });
    this.#tmpDir = undefined;
  }

  // ---------------------------------------------------------------- direct control (no HTTP)

  /** The resource type for a plural resource name ("secrets") or a kind ("Secret"). */
  type(resourceOrKind: string): ResourceType {
    const t = this.#types.find((x) => x.resource === resourceOrKind || x.kind === resourceOrKind);
    if (!t) throw new Error(`the double does not serve ${resourceOrKind}`);
    return t;
  }

  /**
   * Creates or replaces an object without HTTP: assigns uid, creationTimestamp and a new
   * resourceVersion, and notifies watchers. The kind decides the type; the namespace is created if
   * missing. Applies defaulting (e.g. Secret stringData) but no validation, so oversized Secrets can be
   * planted. Returns a copy of the stored object.
   */
  put(obj: K8sObject): K8sObject {
    if (!obj.kind) throw new Error("put() needs kind");
    const rt = this.type(obj.kind);
    const o = clone(obj);
    if (rt.namespaced) {
      o.metadata.namespace ??= "default";
      if (!this.#namespaceExists(o.metadata.namespace)) this.put({ apiVersion: "v1", kind: "Namespace", metadata: { name: o.metadata.namespace } });
    } else delete o.metadata.namespace;
    const old = this.#store.get(rt)!.get(this.#key(rt, o.metadata.namespace, o.metadata.name!));
    return this.#untyped(this.#write(rt, o, old));
  }

  /** Convenience: a Secret from raw values (strings or Buffers; base64-encoded here). */
  putSecret(namespace: string, name: string, data: Record<string, string | Buffer>, opts: { type?: string; labels?: Record<string, string>; annotations?: Record<string, string> } = {}): K8sObject {
    const encoded = Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString("base64")]));
    const metadata: K8sObject["metadata"] = { name, namespace };
    if (opts.labels) metadata.labels = opts.labels;
    if (opts.annotations) metadata.annotations = opts.annotations;
    return this.put({ apiVersion: "v1", kind: "Secret", metadata, type: opts.type ?? "Opaque", data: encoded });
  }

  /** Deletes an object without HTTP (watchers see DELETED). Returns whether it existed. */
  remove(resourceOrKind: string, namespace: string | undefined, name: string): boolean {
    const rt = this.type(resourceOrKind);
    const key = this.#key(rt, namespace, name);
    if (!this.#store.get(rt)!.has(key)) return false;
    this.#delete(rt, key);
    return true;
  }

  /** A copy of one stored object (with kind and apiVersion), or undefined. */
  get(resourceOrKind: string, namespace: string | undefined, name: string): K8sObject | undefined {
    const rt = this.type(resourceOrKind);
    const o = this.#store.get(rt)!.get(this.#key(rt, namespace, name));
    return o && this.#typed(rt, o);
  }

  /** Copies of the stored objects of a type, sorted by namespace/name, optionally in one namespace. */
  list(resourceOrKind: string, namespace?: string): K8sObject[] {
    const rt = this.type(resourceOrKind);
    const store = this.#store.get(rt)!;
    return [...store.keys()]
      .sort()
      .map((k) => store.get(k)!)
      .filter((o) => namespace === undefined || o.metadata.namespace === namespace)
      .map((o) => this.#typed(rt, o));
  }

  /** Drops all history: watches and continue tokens from before now answer 410 Expired. */
  compact(): void {
    this.#history = [];
    this.#compactedRv = this.#rv;
  }

  /** Makes every continue token issued so far expire (410 Expired), as etcd compaction would. */
  expireContinueTokens(): void {
    this.#continueEpoch++;
  }

  // ---------------------------------------------------------------- request log

  requests(filter?: RequestFilter): RequestRecord[] {
    return this.#log.filter((r) => matches(filter, r));
  }

  countRequests(filter?: RequestFilter): number {
    return this.requests(filter).length;
  }

  clearRequests(): void {
    this.#log = [];
  }

  /** Number of watch streams currently open. */
  get openWatches(): number {
    return this.#watchers.size;
  }

  // ---------------------------------------------------------------- faults

  /** 403 Forbidden (with the real Status body) for requests the rule covers. */
  forbid(rule: ForbidRule = {}): void {
    this.#forbidden.push(rule);
  }

  /** The next `count` matching requests answer `status` (429 adds Retry-After). */
  failNext(status: number, opts: FailOptions = {}): void {
    this.#faults.push({ status, remaining: opts.count ?? 1, match: opts.match, retryAfterSeconds: opts.retryAfterSeconds ?? 1, message: opts.message });
  }

  /** 429 TooManyRequests with Retry-After on the next `count` matching requests. */
  tooManyRequests(count = 1, retryAfterSeconds = 1, match?: RequestFilter): void {
    this.failNext(429, { count, retryAfterSeconds, match });
  }

  /** 500 InternalError on the next `count` matching requests. */
  internalError(count = 1, match?: RequestFilter): void {
    this.failNext(500, { count, match });
  }

  /** The next `count` matching LIST responses send part of their body, then the socket is destroyed. */
  resetNextList(opts: ResetOptions = {}): void {
    this.#resets.push({ remaining: opts.count ?? 1, match: opts.match, afterBytes: opts.afterBytes });
  }

  /**
   * Silent watches: stay open, send nothing (no events, no bookmarks, no timeout end).
   * `open` (default true) silences the watches open now; `next` silences that many new ones.
   */
  silenceWatches(opts: { open?: boolean; next?: number } = {}): void {
    if (opts.open ?? true) {
      for (const w of this.#watchers) this.#silence(w);
    }
    this.#silenceNext += opts.next ?? 0;
  }

  /** Ends every open watch stream cleanly, as the real server does on its request timeout. */
  closeWatches(): void {
    for (const w of [...this.#watchers]) this.#endWatch(w, true);
  }

  /** Removes every forbid rule, pending failure, pending reset and pending silence. */
  clearFaults(): void {
    this.#forbidden = [];
    this.#faults = [];
    this.#resets = [];
    this.#silenceNext = 0;
  }

  // ---------------------------------------------------------------- storage internals

  /** True when the namespace exists, or when the double does not serve namespaces at all. */
  #namespaceExists(name: string): boolean {
    const nsType = this.#types.find((t) => t.kind === "Namespace" && t.group === "");
    return !nsType || this.#store.get(nsType)!.has(name);
  }

  #key(rt: ResourceType, namespace: string | undefined, name: string): string {
    return rt.namespaced ? `${namespace ?? ""}/${name}` : name;
  }

  /** Stores `o` (already prepared), bumping the resourceVersion and notifying watchers. */
  #write(rt: ResourceType, o: K8sObject, old: K8sObject | undefined): K8sObject {
    const rv = ++this.#rv;
    delete o.apiVersion;
    delete o.kind;
    rt.prepare?.(o, old);
    const m = o.metadata;
    m.uid = old?.metadata.uid ?? m.uid ?? randomUUID();
    m.creationTimestamp = old?.metadata.creationTimestamp ?? m.creationTimestamp ?? rfc3339();
    m.resourceVersion = String(rv);
    if (m.generation !== undefined || old?.metadata.generation !== undefined) m.generation = old ? (old.metadata.generation ?? 1) + 1 : 1;
    const key = this.#key(rt, m.namespace, m.name!);
    this.#store.get(rt)!.set(key, o);
    this.#record({ rv, type: old ? "MODIFIED" : "ADDED", rt, key, object: o, prev: old });
    return o;
  }

  #delete(rt: ResourceType, key: string): K8sObject {
    const store = this.#store.get(rt)!;
    const old = store.get(key)!;
    // Namespace deletion cascades at once (the real one goes through Terminating first).
    if (rt.kind === "Namespace" && rt.group === "") {
      for (const t of this.#types) {
        if (!t.namespaced) continue;
        for (const [k, o] of [...this.#store.get(t)!]) if (o.metadata.namespace === old.metadata.name) this.#delete(t, k);
      }
    }
    const rv = ++this.#rv;
    store.delete(key);
    const gone = clone(old);
    gone.metadata.resourceVersion = String(rv);
    this.#record({ rv, type: "DELETED", rt, key, object: gone, prev: old });
    return gone;
  }

  #record(ev: HistoryEvent): void {
    this.#history.push(ev);
    while (this.#history.length > this.#opts.historyWindow) this.#compactedRv = this.#history.shift()!.rv;
    for (const w of this.#watchers) if (w.rt === ev.rt) this.#deliver(w, ev);
  }

  /** The objects of a type as they were at resourceVersion `rv`, rebuilt from history. */
  #snapshot(rt: ResourceType, rv: number): Map<string, K8sObject> {
    const state = new Map(this.#store.get(rt)!);
    for (let i = this.#history.length - 1; i >= 0; i--) {
      const ev = this.#history[i]!;
      if (ev.rv <= rv) break;
      if (ev.rt !== rt) continue;
      if (ev.type === "ADDED") state.delete(ev.key);
      else state.set(ev.key, ev.prev!);
    }
    return state;
  }

  #typed(rt: ResourceType, o: K8sObject): K8sObject {
    const { metadata, ...rest } = clone(o);
    return { kind: rt.kind, apiVersion: apiVersionOf(rt), metadata, ...rest };
  }

  #untyped(o: K8sObject): K8sObject {
    return clone(o);
  }

  #fieldsOf(rt: ResourceType, o: K8sObject): Record<string, string> {
    const f: Record<string, string> = { "metadata.name": o.metadata.name ?? "", ...(rt.fields?.(o) ?? {}) };
    if (rt.namespaced) f["metadata.namespace"] = o.metadata.namespace ?? "";
    return f;
  }

  #selectors(rt: ResourceType, query: Record<string, string>): { labels: LabelRequirement[]; fields: FieldRequirement[] } {
    try {
      const labels = parseLabelSelector(query.labelSelector);
      const fields = parseFieldSelector(query.fieldSelector);
      const allowed = new Set(Object.keys(this.#fieldsOf(rt, { metadata: {} })));
      for (const f of fields) if (!allowed.has(f.field)) fail(400, `field label not supported: ${f.field}`, "BadRequest");
      return { labels, fields };
    } catch (err) {
      if (err instanceof SelectorError) fail(400, err.message, "BadRequest");
      throw err;
    }
  }

  #selected(rt: ResourceType, o: K8sObject, sel: { labels: LabelRequirement[]; fields: FieldRequirement[] }): boolean {
    return matchLabels(sel.labels, o.metadata.labels) && matchFields(sel.fields, this.#fieldsOf(rt, o));
  }

  // ---------------------------------------------------------------- HTTP

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const u = new URL(req.url ?? "/", "https://localhost");
    const query = Object.fromEntries(u.searchParams);
    const rec: RequestRecord = {
      time: Date.now(),
      method: req.method ?? "GET",
      path: u.pathname,
      query,
      verb: "discovery",
      accept: req.headers.accept,
      contentType: req.headers["content-type"],
      userAgent: req.headers["user-agent"],
      status: 0,
      bytes: 0,
      items: 0,
    };
    this.#log.push(rec);
    if (this.#log.length > this.#opts.logLimit) this.#log.splice(0, this.#log.length - this.#opts.logLimit);
    res.setHeader("Audit-Id", randomUUID());
    res.setHeader("Cache-Control", "no-cache, private");
    this.#route(req, res, rec).catch((err: unknown) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      if (err instanceof HttpError) this.#send(res, rec, err.code, err.body, err.headers);
      else this.#send(res, rec, 500, statusObject(500, `Internal error occurred: ${String(err)}`, "InternalError"));
    });
  }

  #send(res: ServerResponse, rec: RequestRecord, code: number, body: unknown, headers: Record<string, string> = {}): void {
    const text = JSON.stringify(body);
    rec.status = code;
    rec.bytes = Buffer.byteLength(text);
    res.writeHead(code, { "Content-Type": "application/json", "Content-Length": rec.bytes, ...headers });
    res.end(text);
  }

  async #readBody(req: IncomingMessage): Promise<Buffer> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > this.#opts.maxBodyBytes) fail(413, "Request entity too large: limit is 3145728", "RequestEntityTooLarge");
      chunks.push(chunk);
    }
    return Buffer.concat(chunks);
  }

  async #readJson(req: IncomingMessage): Promise<unknown> {
    const ct = (req.headers["content-type"] ?? "application/json").split(";")[0]!.trim();
    const body = await this.#readBody(req);
    if (ct === "application/vnd.kubernetes.protobuf") {
      try {
        return decodeK8sProtobuf(body);
      } catch (err) {
        fail(415, `the body of the request was in an unknown format - accepted media types include: application/json (${(err as Error).message})`, "UnsupportedMediaType");
      }
    }
    if (!ct.includes("json") && ct !== "*/*") fail(415, `the body of the request was in an unknown format - accepted media types include: application/json, application/vnd.kubernetes.protobuf`, "UnsupportedMediaType");
    try {
      return JSON.parse(body.toString("utf8"));
    } catch (err) {
      return fail(400, `couldn't get version/kind; json parse error: ${(err as Error).message}`, "BadRequest");
    }
  }

  async #route(req: IncomingMessage, res: ServerResponse, rec: RequestRecord): Promise<void> {
    const auth = req.headers.authorization ?? "";
    const m = auth.match(/^Bearer\s+(\S+)$/i);
    if (!m || !this.#tokens.has(m[1]!)) fail(401, "Unauthorized", "Unauthorized");

    const parts = rec.path.split("/").filter(Boolean).map(decodeURIComponent);
    let group: string | undefined;
    let version: string | undefined;
    let rest: string[] = [];
    if (parts[0] === "api" && parts.length >= 2) [group, version, rest] = ["", parts[1]!, parts.slice(2)];
    else if (parts[0] === "apis" && parts.length >= 3) [group, version, rest] = [parts[1]!, parts[2]!, parts.slice(3)];

    if (group === undefined || version === undefined || rest.length === 0) {
      this.#injectFaults(rec);
      return this.#discovery(req, res, rec, parts);
    }

    // Resource request: /…/{resource}[/{name}] or /…/namespaces/{ns}/{resource}[/{name}]
    let namespace: string | undefined;
    let resource: string;
    let name: string | undefined;
    let sub: string[];
    const typesHere = this.#types.filter((t) => t.group === group && t.version === version);
    if (rest[0] === "namespaces" && rest.length >= 3) {
      [namespace, resource, name, ...sub] = [rest[1]!, rest[2]!, rest[3], ...rest.slice(4)];
    } else {
      [resource, name, ...sub] = [rest[0]!, rest[1], ...rest.slice(2)];
    }
    const rt = typesHere.find((t) => t.resource === resource);
    if (!rt || sub.length > 0 || (rt.namespaced === false && namespace !== undefined)) fail(404, "the server could not find the requested resource", "NotFound", {});
    const method = req.method ?? "GET";
    const watch = rec.query.watch === "true" || rec.query.watch === "1";
    const verb: Verb | undefined =
      name === undefined
        ? ({ GET: watch ? "watch" : "list", POST: "create", DELETE: "deletecollection" } as Record<string, Verb>)[method]
        : ({ GET: "get", PUT: "update", PATCH: "patch", DELETE: "delete" } as Record<string, Verb>)[method];
    Object.assign(rec, { verb: verb ?? "discovery", resource, group, namespace, name });
    if (!verb) fail(405, `the server does not allow this method on the requested resource`, "MethodNotAllowed");

    this.#checkForbidden(rt, verb, namespace, name);
    this.#injectFaults(rec);

    switch (verb) {
      case "list":
        return this.#list(req, res, rec, rt, namespace);
      case "watch":
        return this.#watch(req, res, rec, rt, namespace);
      case "get":
        return this.#get(req, res, rec, rt, namespace, name!);
      case "create":
        return this.#create(req, res, rec, rt, namespace);
      case "update":
        return this.#update(req, res, rec, rt, namespace, name!);
      case "patch":
        return this.#patch(req, res, rec, rt, namespace, name!);
      case "delete":
        return this.#deleteOne(req, res, rec, rt, namespace, name!);
      case "deletecollection":
        return this.#deleteCollection(req, res, rec, rt, namespace);
    }
  }

  #checkForbidden(rt: ResourceType, verb: Verb, namespace: string | undefined, name: string | undefined): void {
    const hit = this.#forbidden.some(
      (r) => (r.resource === undefined || r.resource === rt.resource) && (r.namespace === undefined || (r.namespace ?? undefined) === namespace) && (!r.verbs || r.verbs.includes(verb)),
    );
    if (!hit) return;
    const what = name ? `${rt.resource} "${name}"` : rt.resource;
    const scope = namespace ? `in the namespace "${namespace}"` : "at the cluster scope";
    const details: Record<string, unknown> = {};
    if (name) details.name = name;
    if (rt.group) details.group = rt.group;
    details.kind = rt.resource;
    fail(403, `${what} is forbidden: User "${this.#opts.user}" cannot ${verb} resource "${rt.resource}" in API group "${rt.group}" ${scope}`, "Forbidden", details);
  }

  #injectFaults(rec: RequestRecord): void {
    const f = this.#faults.find((x) => x.remaining > 0 && (x.match ? matches(x.match, rec) : rec.verb !== "discovery"));
    if (!f) return;
    f.remaining--;
    this.#faults = this.#faults.filter((x) => x.remaining > 0);
    if (f.status === 429 || f.status === 503) {
      fail(
        f.status,
        f.message ?? (f.status === 429 ? "Too many requests, please try again later." : "The server is currently unable to handle the request"),
        undefined,
        { retryAfterSeconds: f.retryAfterSeconds },
        { "Retry-After": String(f.retryAfterSeconds) },
      );
    }
    fail(f.status, f.message ?? (f.status === 500 ? "Internal error occurred: injected failure" : `injected failure ${f.status}`));
  }

  #discovery(_req: IncomingMessage, res: ServerResponse, rec: RequestRecord, parts: string[]): void {
    const path = "/" + parts.join("/");
    const groups = [...new Set(this.#types.filter((t) => t.group).map((t) => t.group))];
    const versionsOf = (g: string) => [...new Set(this.#types.filter((t) => t.group === g).map((t) => t.version))];
    const apiGroup = (g: string) => {
      const versions = versionsOf(g).map((v) => ({ groupVersion: `${g}/${v}`, version: v }));
      return { name: g, versions, preferredVersion: versions[0] };
    };
    if (rec.method !== "GET") fail(405, "the server does not allow this method on the requested resource", "MethodNotAllowed");
    if (path === "/version") {
      return this.#send(res, rec, 200, {
        major: "1",
        minor: "32",
        gitVersion: "v1.32.0-fake",
        gitCommit: "0000000000000000000000000000000000000000",
        gitTreeState: "clean",
        buildDate: "2025-01-01T00:00:00Z",
        goVersion: "go1.23.4",
        compiler: "gc",
        platform: "linux/amd64",
      });
    }
    if (path === "/healthz" || path === "/readyz" || path === "/livez") {
      rec.status = 200;
      res.writeHead(200, { "Content-Type": "text/plain; charset=utf-8" });
      res.end("ok");
      return;
    }
    if (path === "/openapi/v3" || path.startsWith("/openapi/v3/")) return this.#openapiV3(res, rec, path);
    if (path === "/api") {
      return this.#send(res, rec, 200, { kind: "APIVersions", versions: ["v1"], serverAddressByClientCIDRs: [{ clientCIDR: "0.0.0.0/0", serverAddress: `${this.host}:${this.port}` }] });
    }
    if (path === "/apis") return this.#send(res, rec, 200, { kind: "APIGroupList", apiVersion: "v1", groups: groups.map(apiGroup) });
    if (parts[0] === "apis" && parts.length === 2 && groups.includes(parts[1]!)) {
      return this.#send(res, rec, 200, { kind: "APIGroup", apiVersion: "v1", ...apiGroup(parts[1]!) });
    }
    const gv = parts[0] === "api" && parts.length === 2 ? { g: "", v: parts[1]! } : parts[0] === "apis" && parts.length === 3 ? { g: parts[1]!, v: parts[2]! } : undefined;
    const types = gv ? this.#types.filter((t) => t.group === gv.g && t.version === gv.v) : [];
    if (gv && types.length) {
      return this.#send(res, rec, 200, {
        kind: "APIResourceList",
        apiVersion: "v1",
        groupVersion: gv.g ? `${gv.g}/${gv.v}` : gv.v,
        resources: types.map((t) => {
          const r: Record<string, unknown> = {
            name: t.resource,
            singularName: t.singular,
            namespaced: t.namespaced,
            kind: t.kind,
            verbs: ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
          };
          if (t.shortNames) r.shortNames = t.shortNames;
          if (t.categories) r.categories = t.categories;
          r.storageVersionHash = Buffer.from(`${t.group}/${t.version}/${t.kind}`).toString("base64").slice(0, 11);
          return r;
        }),
      });
    }
    fail(404, "the server could not find the requested resource", "NotFound", {});
  }

  /**
   * A minimal OpenAPI v3: the root index and, per group/version, one PATCH operation per kind that
   * declares the fieldValidation parameter. That is what kubectl (apply, create -f, replace) reads to
   * learn that the server validates fields itself; without it kubectl insists on downloading schemas.
   * No schemas are served (`/openapi/v2` stays 404).
   */
  #openapiV3(res: ServerResponse, rec: RequestRecord, path: string): void {
    const gvs = [...new Set(this.#types.map((t) => (t.group ? `apis/${t.group}/${t.version}` : `api/${t.version}`)))];
    if (path === "/openapi/v3") {
      return this.#send(res, rec, 200, { paths: Object.fromEntries(gvs.map((gv) => [gv, { serverRelativeURL: `/openapi/v3/${gv}?hash=${Buffer.from(gv).toString("hex").slice(0, 16)}` }])) });
    }
    const gv = path.slice("/openapi/v3/".length);
    if (!gvs.includes(gv)) fail(404, "the server could not find the requested resource", "NotFound", {});
    const paths: Record<string, unknown> = {};
    for (const t of this.#types) {
      if ((t.group ? `apis/${t.group}/${t.version}` : `api/${t.version}`) !== gv) continue;
      const item = t.namespaced ? `/${gv}/namespaces/{namespace}/${t.resource}/{name}` : `/${gv}/${t.resource}/{name}`;
      const gvk = { group: t.group, version: t.version, kind: t.kind };
      const param = (name: string) => ({ name, in: "query", schema: { type: "string", uniqueItems: true } });
      paths[item] = {
        patch: {
          operationId: `patch${t.kind}`,
          parameters: [param("dryRun"), param("fieldManager"), param("fieldValidation")],
          responses: { "200": { description: "OK" } },
          "x-kubernetes-action": "patch",
          "x-kubernetes-group-version-kind": gvk,
        },
      };
    }
    this.#send(res, rec, 200, { openapi: "3.0.0", info: { title: "Kubernetes", version: "v1.32.0-fake" }, paths, components: { schemas: {} } });
  }

  // ---------------------------------------------------------------- verbs

  #render(rt: ResourceType, objs: K8sObject[], output: Output, list: { resourceVersion: string; continue?: string; remainingItemCount?: number } | undefined, withColumns = true): Record<string, unknown> {
    if (output.as === "table") {
      const now = Date.now();
      const table: Record<string, unknown> = { kind: "Table", apiVersion: "meta.k8s.io/v1", metadata: list ?? { resourceVersion: objs[0]?.metadata.resourceVersion ?? this.resourceVersion } };
      table.columnDefinitions = withColumns ? [NAME_COLUMN, ...rt.columns] : [];
      table.rows = objs.map((o) => {
        const row: Record<string, unknown> = { cells: [o.metadata.name, ...rt.row(o, now)] };
        if (output.include === "Metadata") row.object = { kind: "PartialObjectMetadata", apiVersion: "meta.k8s.io/v1", metadata: clone(o.metadata) };
        else if (output.include === "Object") row.object = this.#typed(rt, o);
        return row;
      });
      return table;
    }
    if (output.as === "metadata") {
      if (!list) return { kind: "PartialObjectMetadata", apiVersion: "meta.k8s.io/v1", metadata: clone(objs[0]!.metadata) };
      return { kind: "PartialObjectMetadataList", apiVersion: "meta.k8s.io/v1", metadata: list, items: objs.map((o) => ({ metadata: clone(o.metadata) })) };
    }
    if (!list) return this.#typed(rt, objs[0]!);
    // Items of a real JSON list carry no kind/apiVersion.
    return { kind: `${rt.kind}List`, apiVersion: apiVersionOf(rt), metadata: list, items: objs };
  }

  #list(req: IncomingMessage, res: ServerResponse, rec: RequestRecord, rt: ResourceType, namespace: string | undefined): void {
    const q = rec.query;
    const output = negotiate(req.headers.accept, q);
    const sel = this.#selectors(rt, q);
    const limit = q.limit ? Number(q.limit) : 0;
    if (!Number.isInteger(limit) || limit < 0) fail(400, `invalid limit: ${q.limit}`, "BadRequest");

    let atRv = this.#rv;
    let start = "";
    let inconsistent = false;
    if (q.continue) {
      if (q.resourceVersion) fail(400, "specifying resource version is not allowed when using continue", "BadRequest");
      const tok = decodeContinue(q.continue);
      start = tok.start;
      if (tok.rv === -1) inconsistent = true;
      else if (tok.rv < this.#compactedRv || tok.epoch < this.#continueEpoch || tok.rv < this.#rv - this.#opts.continueMaxAge) {
        fail(410, CONTINUE_EXPIRED, "Expired", undefined, {}, { continue: encodeContinue(-1, start) });
      } else atRv = tok.rv;
    } else if (q.resourceVersion && q.resourceVersion !== "0") {
      const want = Number(q.resourceVersion);
      if (!Number.isInteger(want) || want < 0) fail(400, `invalid resource version: ${q.resourceVersion}`, "BadRequest");
      if (want > this.#rv) {
        fail(504, `Too large resource version: ${want}, current: ${this.#rv}`, "Timeout", { causes: [{ reason: "ResourceVersionTooLarge", message: "Too large resource version" }], retryAfterSeconds: 1 });
      }
      if (q.resourceVersionMatch === "Exact") {
        if (want < this.#compactedRv) fail(410, `too old resource version: ${want} (${this.#compactedRv})`, "Expired");
        atRv = want;
      }
    }
    const state = atRv === this.#rv ? this.#store.get(rt)! : this.#snapshot(rt, atRv);
    const prefix = rt.namespaced && namespace !== undefined ? `${namespace}/` : "";
    const keys = [...state.keys()].filter((k) => k.startsWith(prefix) && k >= start).sort();
    const items: K8sObject[] = [];
    let next: string | undefined;
    let remaining: number | undefined;
    for (let i = 0; i < keys.length; i++) {
      const o = state.get(keys[i]!)!;
      if (!this.#selected(rt, o, sel)) continue;
      items.push(o);
      if (limit > 0 && items.length === limit) {
        if (i + 1 < keys.length) {
          next = encodeContinue(inconsistent ? -1 : atRv, `${keys[i]!}\u0000`, this.#continueEpoch);
          if (!sel.labels.length && !sel.fields.length) remaining = keys.length - i - 1;
        }
        break;
      }
    }
    const meta: { resourceVersion: string; continue?: string; remainingItemCount?: number } = { resourceVersion: String(inconsistent ? this.#rv : atRv) };
    if (next) meta.continue = next;
    if (remaining !== undefined) meta.remainingItemCount = remaining;
    rec.items = items.length;
    const body = this.#render(rt, items, output, meta);

    const reset = this.#resets.find((r) => r.remaining > 0 && matches(r.match, rec));
    if (reset) {
      reset.remaining--;
      this.#resets = this.#resets.filter((r) => r.remaining > 0);
      const text = Buffer.from(JSON.stringify(body));
      const cut = Math.min(text.length - 1, reset.afterBytes ?? Math.floor(text.length / 2));
      rec.status = 0;
      rec.bytes = cut;
      res.writeHead(200, { "Content-Type": "application/json" });
      res.write(text.subarray(0, cut), () => setTimeout(() => res.socket?.destroy(), 20).unref());
      return;
    }
    this.#send(res, rec, 200, body);
  }

  #get(req: IncomingMessage, res: ServerResponse, rec: RequestRecord, rt: ResourceType, namespace: string | undefined, name: string): void {
    const output = negotiate(req.headers.accept, rec.query);
    const o = this.#store.get(rt)!.get(this.#key(rt, namespace, name));
    if (!o) this.#notFound(rt, name);
    rec.items = 1;
    this.#send(res, rec, 200, this.#render(rt, [o], output, undefined));
  }

  #notFound(rt: ResourceType, name: string): never {
    const details: Record<string, unknown> = { name };
    if (rt.group) details.group = rt.group;
    details.kind = rt.resource;
    return fail(404, `${rt.resource}${rt.group ? "." + rt.group : ""} "${name}" not found`, "NotFound", details);
  }

  #checkNamespace(rt: ResourceType, namespace: string | undefined): void {
    if (!rt.namespaced || namespace === undefined) return;
    if (!this.#namespaceExists(namespace)) fail(404, `namespaces "${namespace}" not found`, "NotFound", { name: namespace, kind: "namespaces" });
  }

  #validate(rt: ResourceType, o: K8sObject): void {
    const causes: Cause[] = [];
    const name = o.metadata.name ?? "";
    if (!name) causes.push({ reason: "FieldValueRequired", field: "metadata.name", message: "Required value: name or generateName is required" });
    else if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name) || name.length > 253) {
      causes.push({ reason: "FieldValueInvalid", field: "metadata.name", message: `Invalid value: "${name}": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character` });
    }
    causes.push(...(rt.validate?.(o) ?? []));
    if (!causes.length) return;
    const msg = causes.map((c) => `${c.field}: ${c.message}`).join(", ");
    const details: Record<string, unknown> = { name };
    if (rt.group) details.group = rt.group;
    details.kind = rt.kind;
    details.causes = causes.map((c) => ({ reason: c.reason, message: c.message, field: c.field }));
    fail(422, `${rt.kind} "${name}" is invalid: ${causes.length > 1 ? `[${msg}]` : msg}`, "Invalid", details);
  }

  #bodyObject(raw: unknown, rt: ResourceType, namespace: string | undefined): K8sObject {
    if (!raw || typeof raw !== "object" || Array.isArray(raw)) fail(400, "Object 'Kind' is missing in request body", "BadRequest");
    const o = raw as K8sObject;
    if (o.kind !== undefined && o.kind !== rt.kind) fail(400, `the API version in the data (${String(o.apiVersion)}) does not match the expected API version (${apiVersionOf(rt)})`, "BadRequest");
    o.metadata = o.metadata && typeof o.metadata === "object" ? o.metadata : {};
    if (rt.namespaced) {
      if (o.metadata.namespace && namespace !== undefined && o.metadata.namespace !== namespace) {
        fail(400, "the namespace of the provided object does not match the namespace sent on the request", "BadRequest");
      }
      o.metadata.namespace = namespace;
    } else delete o.metadata.namespace;
    return o;
  }

  /** Runs prepare+validate on a copy and returns it (for API writes and dry runs). */
  #prepared(rt: ResourceType, o: K8sObject, old: K8sObject | undefined): K8sObject {
    const c = clone(o);
    rt.prepare?.(c, old);
    this.#validate(rt, c);
    return c;
  }

  async #create(req: IncomingMessage, res: ServerResponse, rec: RequestRecord, rt: ResourceType, namespace: string | undefined): Promise<void> {
    if (rt.namespaced && namespace === undefined) fail(404, "the server could not find the requested resource", "NotFound", {});
    const o = this.#bodyObject(await this.#readJson(req), rt, namespace);
    this.#checkNamespace(rt, namespace);
    if (!o.metadata.name && o.metadata.generateName) o.metadata.name = o.metadata.generateName + randomBytes(3).toString("hex").slice(0, 5);
    delete o.metadata.resourceVersion;
    delete o.metadata.uid;
    delete o.metadata.creationTimestamp;
    const prepared = this.#prepared(rt, o, undefined);
    const key = this.#key(rt, namespace, o.metadata.name!);
    if (this.#store.get(rt)!.has(key)) {
      const details: Record<string, unknown> = { name: o.metadata.name };
      if (rt.group) details.group = rt.group;
      details.kind = rt.resource;
      fail(409, `${rt.resource}${rt.group ? "." + rt.group : ""} "${o.metadata.name}" already exists`, "AlreadyExists", details);
    }
    if (rec.query.dryRun === "All") {
      prepared.metadata.uid = randomUUID();
      prepared.metadata.creationTimestamp = rfc3339();
      return this.#send(res, rec, 201, this.#typed(rt, prepared));
    }
    const stored = this.#write(rt, o, undefined);
    rec.items = 1;
    this.#send(res, rec, 201, this.#typed(rt, stored));
  }

  #conflict(rt: ResourceType, name: string): never {
    const details: Record<string, unknown> = { name };
    if (rt.group) details.group = rt.group;
    details.kind = rt.resource;
    return fail(409, `Operation cannot be fulfilled on ${rt.resource}${rt.group ? "." + rt.group : ""} "${name}": the object has been modified; please apply your changes to the latest version and try again`, "Conflict", details);
  }

  /** Shared end of update and patch: identity fields kept, optimistic concurrency, write. */
  #replace(res: ServerResponse, rec: RequestRecord, rt: ResourceType, old: K8sObject, o: K8sObject, name: string): void {
    if (o.metadata.name !== undefined && o.metadata.name !== name) fail(400, `the name of the object (${o.metadata.name}) does not match the name on the URL (${name})`, "BadRequest");
    o.metadata.name = name;
    if (o.metadata.resourceVersion && o.metadata.resourceVersion !== old.metadata.resourceVersion) this.#conflict(rt, name);
    o.metadata.uid = old.metadata.uid;
    o.metadata.creationTimestamp = old.metadata.creationTimestamp;
    const prepared = this.#prepared(rt, o, old);
    if (rec.query.dryRun === "All") return this.#send(res, rec, 200, this.#typed(rt, prepared));
    const stored = this.#write(rt, o, old);
    rec.items = 1;
    this.#send(res, rec, 200, this.#typed(rt, stored));
  }

  async #update(req: IncomingMessage, res: ServerResponse, rec: RequestRecord, rt: ResourceType, namespace: string | undefined, name: string): Promise<void> {
    const o = this.#bodyObject(await this.#readJson(req), rt, namespace);
    const old = this.#store.get(rt)!.get(this.#key(rt, namespace, name));
    if (!old) this.#notFound(rt, name);
    this.#replace(res, rec, rt, old, o, name);
  }

  async #patch(req: IncomingMessage, res: ServerResponse, rec: RequestRecord, rt: ResourceType, namespace: string | undefined, name: string): Promise<void> {
    const ct = (req.headers["content-type"] ?? "").split(";")[0]!.trim();
    const kinds = ["application/merge-patch+json", "application/strategic-merge-patch+json", "application/json-patch+json"];
    if (!kinds.includes(ct)) {
      await this.#readBody(req);
      fail(415, `the body of the request was in an unknown format - accepted media types include: ${kinds.join(", ")}`, "UnsupportedMediaType");
    }
    const patch = await this.#readJson(req);
    const old = this.#store.get(rt)!.get(this.#key(rt, namespace, name));
    if (!old) this.#notFound(rt, name);
    let patched: unknown;
    try {
      const current = this.#typed(rt, old);
      patched =
        ct === "application/json-patch+json" ? jsonPatch(current, patch) : ct === "application/merge-patch+json" ? mergePatch(current, patch) : strategicMergePatch(current, patch);
    } catch (err) {
      if (err instanceof PatchError) fail(422, err.message, "Invalid");
      throw err;
    }
    const o = this.#bodyObject(patched, rt, namespace);
    this.#replace(res, rec, rt, old, o, name);
  }

  async #deleteOne(req: IncomingMessage, res: ServerResponse, rec: RequestRecord, rt: ResourceType, namespace: string | undefined, name: string): Promise<void> {
    const body = await this.#readBody(req);
    const key = this.#key(rt, namespace, name);
    const old = this.#store.get(rt)!.get(key);
    if (!old) this.#notFound(rt, name);
    if (body.length) {
      let opts: { preconditions?: { uid?: string; resourceVersion?: string } } = {};
      try {
        opts = JSON.parse(body.toString("utf8")) as typeof opts;
      } catch {
        fail(400, "couldn't decode DeleteOptions", "BadRequest");
      }
      const pre = opts.preconditions;
      if (pre?.uid && pre.uid !== old.metadata.uid) {
        fail(409, `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${String(old.metadata.uid)}`, "Conflict", { name, kind: rt.resource });
      }
      if (pre?.resourceVersion && pre.resourceVersion !== old.metadata.resourceVersion) {
        fail(409, `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${String(old.metadata.resourceVersion)}`, "Conflict", { name, kind: rt.resource });
      }
    }
    if (rec.query.dryRun === "All") return this.#send(res, rec, 200, this.#typed(rt, old));
    const gone = this.#delete(rt, key);
    rec.items = 1;
    this.#send(res, rec, 200, this.#typed(rt, gone));
  }

  async #deleteCollection(req: IncomingMessage, res: ServerResponse, rec: RequestRecord, rt: ResourceType, namespace: string | undefined): Promise<void> {
    await this.#readBody(req);
    const sel = this.#selectors(rt, rec.query);
    const prefix = rt.namespaced && namespace !== undefined ? `${namespace}/` : "";
    const store = this.#store.get(rt)!;
    const gone: K8sObject[] = [];
    for (const key of [...store.keys()].sort()) {
      if (key.startsWith(prefix) && this.#selected(rt, store.get(key)!, sel)) gone.push(rec.query.dryRun === "All" ? store.get(key)! : this.#delete(rt, key));
    }
    rec.items = gone.length;
    this.#send(res, rec, 200, { kind: `${rt.kind}List`, apiVersion: apiVersionOf(rt), metadata: { resourceVersion: this.resourceVersion }, items: gone });
  }

  // ---------------------------------------------------------------- watch

  #watch(req: IncomingMessage, res: ServerResponse, rec: RequestRecord, rt: ResourceType, namespace: string | undefined): void {
    const q = rec.query;
    const output = negotiate(req.headers.accept, q);
    const sel = this.#selectors(rt, q);
    const rvParam = q.resourceVersion ?? "";
    const initial = rvParam === "" || rvParam === "0" || q.sendInitialEvents === "true";
    let fromRv = this.#rv;
    if (!initial) {
      fromRv = Number(rvParam);
      if (!Number.isInteger(fromRv) || fromRv < 0) fail(400, `invalid resource version: ${rvParam}`, "BadRequest");
    }
    const w: Watcher = { rt, namespace, labels: sel.labels, fields: sel.fields, res, record: rec, fromRv, silent: false, output, sentColumns: false, timers: [] };
    rec.status = 200;
    res.writeHead(200, { "Content-Type": "application/json" });
    res.flushHeaders();
    res.on("close", () => this.#endWatch(w, false));

    if (!initial && fromRv < this.#compactedRv) {
      this.#writeEvent(w, { type: "ERROR", object: statusObject(410, `too old resource version: ${fromRv} (${this.#compactedRv})`, "Expired") });
      rec.items++;
      res.end();
      return;
    }
    if (this.#silenceNext > 0) {
      this.#silenceNext--;
      w.silent = true;
    }
    this.#watchers.add(w);
    if (initial) {
      const store = this.#store.get(rt)!;
      for (const key of [...store.keys()].sort()) {
        const o = store.get(key)!;
        if ((namespace === undefined || o.metadata.namespace === namespace) && this.#selected(rt, o, sel)) this.#send1(w, "ADDED", o);
      }
      if (q.sendInitialEvents === "true") {
        this.#bookmark(w, { "k8s.io/initial-events-end": "true" });
      }
    } else {
      for (const ev of this.#history) if (ev.rt === rt && ev.rv > fromRv) this.#deliver(w, ev);
    }
    if (w.silent) return;
    if (q.allowWatchBookmarks === "true" || q.allowWatchBookmarks === "1") {
      w.timers.push(setInterval(() => this.#bookmark(w), this.#opts.bookmarkIntervalMs).unref());
    }
    const seconds = q.timeoutSeconds ? Number(q.timeoutSeconds) : this.#opts.maxWatchSeconds;
    if (seconds > 0) w.timers.push(setTimeout(() => this.#endWatch(w, true), seconds * 1000).unref());
  }

  #bookmark(w: Watcher, annotations?: Record<string, string>): void {
    const metadata: Record<string, unknown> = { resourceVersion: this.resourceVersion, creationTimestamp: null };
    if (annotations) metadata.annotations = annotations;
    this.#writeEvent(w, { type: "BOOKMARK", object: { kind: w.rt.kind, apiVersion: apiVersionOf(w.rt), metadata } });
  }

  #deliver(w: Watcher, ev: HistoryEvent): void {
    if (ev.rv <= w.fromRv) return;
    const ns = ev.object.metadata.namespace;
    if (w.namespace !== undefined && ns !== w.namespace) return;
    const sel = { labels: w.labels, fields: w.fields };
    const now = this.#selected(w.rt, ev.object, sel);
    const before = ev.prev !== undefined && ev.type !== "DELETED" ? this.#selected(w.rt, ev.prev, sel) : false;
    if (ev.type === "DELETED") {
      if (now) this.#send1(w, "DELETED", ev.object);
    } else if (ev.type === "ADDED") {
      if (now) this.#send1(w, "ADDED", ev.object);
    } else if (now && before) this.#send1(w, "MODIFIED", ev.object);
    else if (now) this.#send1(w, "ADDED", ev.object);
    else if (before) this.#send1(w, "DELETED", ev.object);
  }

  #send1(w: Watcher, type: "ADDED" | "MODIFIED" | "DELETED", o: K8sObject): void {
    const object = this.#render(w.rt, [o], w.output, w.output.as === "table" ? { resourceVersion: o.metadata.resourceVersion ?? "" } : undefined, !w.sentColumns);
    if (w.output.as === "table") w.sentColumns = true;
    this.#writeEvent(w, { type, object });
  }

  #writeEvent(w: Watcher, ev: WatchEvent): void {
    if (w.silent || w.res.writableEnded || w.res.destroyed) return;
    const line = JSON.stringify(ev) + "\n";
    w.record.bytes += Buffer.byteLength(line);
    if (ev.type !== "BOOKMARK") w.record.items++;
    w.res.write(line);
    // A client that stopped reading is dropped rather than buffered without bound.
    if (w.res.writableLength > 32 * 1024 * 1024) this.#endWatch(w, false);
  }

  #silence(w: Watcher): void {
    w.silent = true;
    for (const t of w.timers) clearTimeout(t);
    w.timers = [];
  }

  #endWatch(w: Watcher, graceful: boolean): void {
    for (const t of w.timers) clearTimeout(t);
    w.timers = [];
    if (!this.#watchers.delete(w)) return;
    if (graceful) w.res.end();
    else w.res.destroy();
  }
}

