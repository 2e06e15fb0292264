import { createHash } from "node:crypto";
import type { KubeConfig } from "@kubernetes/client-node";
import picomatch from "picomatch";
import {
  ANNOTATION_CM_CERTIFICATE,
  ANNOTATION_CM_ISSUER,
  ANNOTATION_CM_ISSUER_KIND,
  ANNOTATION_CRITICAL_DAYS,
  ANNOTATION_WARNING_DAYS,
} from "../annotations.js";
import type { CertRecord } from "../certs/record.js";
import { truncateLabelValue } from "../certs/truncate.js";
import type { KubernetesConfig, SecretRule, SecretsConfig } from "../config.js";
import { CertReadError, toReadError } from "../errors.js";
import type { CertManagerLink, LocationUpdate, Thresholds } from "../inventory.js";
import { loadKubeConfig } from "../kube/client.js";
import { missingPermission, type KubeApiError } from "../kube/errors.js";
import { ListWatch, listWatchPacing, objectKey, type ListWatchHandler, type ListWatchReporter } from "../kube/list-watch.js";
import { NamespaceFilter } from "./namespaces.js";
import type { Source, SourceContext } from "./source.js";
import { TimeSlice } from "./time-slice.js";

/** What is read of a Secret: list items (client-node models) and watch objects (raw JSON) both fit. */
export interface SecretObject {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string; annotations?: Record<string, string> | null };
  type?: string;
  data?: Record<string, string> | null;
}

const DIGEST_ANNOTATIONS = [ANNOTATION_WARNING_DAYS, ANNOTATION_CRITICAL_DAYS, ANNOTATION_CM_CERTIFICATE, ANNOTATION_CM_ISSUER, ANNOTATION_CM_ISSUER_KIND];

interface CompiledRule {
  rule: SecretRule;
  index: number;
  matchKey: (key: string) => boolean;
}

/** One list-and-watch: a namespace (or the cluster) and a Secret type (or every type). */
interface StreamSpec {
  namespace: string | undefined;
  type: string | undefined;
}

/** The source's memory of one Secret that has certificate locations: never its data. */
interface SecretState {
  /** Hash of everything that decides its locations: type, relevant keys and values, annotations. */
  digest: string;
  /** Location keys (data keys, or `<dataKey>/clusters/<name>` for a kubeconfig) published for it. */
  keys: string[];
}

export interface SecretsSourceOptions {
  secrets: SecretsConfig;
  kubernetes: KubernetesConfig;
  /** A ready client configuration (tests); default loadKubeConfig(kubernetes). */
  kubeConfig?: KubeConfig;
}

function decodeBase64(value: string): Buffer {
  return Buffer.from(value, "base64");
}

/** A non-negative number of days from an annotation, or undefined when the value is not one. */
function parseDays(value: string): number | undefined {
  if (!/^\s*\d+(\.\d+)?\s*$/.test(value)) return undefined;
  const n = Number(value);
  return Number.isFinite(n) ? n : undefined;
}

/**
 * Kubernetes Secrets. Locations: `{source: "secret", namespace, name: <Secret>, key: <data key>}`
 * (a kubeconfig key gives `<data key>/clusters/<name>` and `<data key>/users/<name>`); a namespace
 * (or the cluster scope) that cannot be listed is one error location `{namespace, name: "", key: ""}`
 * with reason `forbidden`.
 *
 * One list-and-watch per namespace when the includes are all literal names (a namespaced Role is
 * enough), else one cluster-wide with the namespaces filtered here; and one per Secret type when every
 * rule names a type (`fieldSelector=type=…`), so that other Secrets (Helm releases, tokens) are never
 * sent. Only certificate records are kept, plus a digest per Secret so that an unchanged Secret is
 * neither parsed nor published again.
 */
export class SecretsSource implements Source {
  readonly name = "secret";
  readonly #ctx: SourceContext;
  readonly #config: SecretsConfig;
  readonly #kube: KubernetesConfig;
  readonly #kc: KubeConfig;
  readonly #rules: CompiledRule[];
  readonly #namespaces: NamespaceFilter;
  readonly #streams: SecretStream[];
  /** Error locations of scopes that cannot be read, by location id → stream ids refused there. */
  /** Invalid annotation values already logged, `ns/name\0annotation\0value`. */
  readonly #loggedAnnotations = new Set<string>();
  readonly #failing = new Set<string>();
  #started = false;

  constructor(options: SecretsSourceOptions, ctx: SourceContext) {
    this.#ctx = ctx;
    this.#config = options.secrets;
    this.#kube = options.kubernetes;
    this.#kc = options.kubeConfig ?? loadKubeConfig({ kubeconfig: options.kubernetes.kubeconfig, context: options.kubernetes.context });
    this.#rules = options.secrets.rules.map((rule, index) => ({ rule, index, matchKey: picomatch(rule.keys, { dot: true }) }));
    this.#namespaces = new NamespaceFilter(options.secrets.namespaces, ctx.shard);
    this.#streams = this.#streamSpecs().map((spec) => new SecretStream(spec, this));
    ctx.health.register(this.name);
  }

  /** The list-and-watch scopes, for tests and logs. */
  get scopes(): StreamSpec[] {
    return this.#streams.map((s) => s.spec);
  }

  #streamSpecs(): StreamSpec[] {
    const namespaces = this.#namespaces.scopes();
    const types = this.#rules.every((r) => r.rule.type !== undefined) ? [...new Set(this.#rules.map((r) => r.rule.type))] : [undefined];
    return namespaces.flatMap((namespace) => types.map((type) => ({ namespace, type })));
  }

  namespaceAllowed(ns: string): boolean {
    return this.#namespaces.allows(ns);
  }

  async start(): Promise<void> {
    const started = performance.now();
    await Promise.all(this.#streams.map((s) => s.listWatch.start()));
    this.#started = true;
    this.#ctx.health.scanSucceeded(this.name, (performance.now() - started) / 1000);
    if (this.#failing.size > 0) this.#ctx.health.sourceUp.set({ source: this.name }, 0);
  }

  async scanOnce(): Promise<void> {
    const started = performance.now();
    try {
      await Promise.all(this.#streams.map((s) => s.listWatch.listOnce()));
      this.#ctx.health.scanSucceeded(this.name, (performance.now() - started) / 1000);
    } catch (err) {
      this.#ctx.health.scanFailed(this.name, (performance.now() - started) / 1000);
      throw err;
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.#streams.map((s) => s.listWatch.stop()));
  }

  // ---------------------------------------------------------------- used by the streams

  get ctx(): SourceContext {
    return this.#ctx;
  }

  get kubeConfig(): KubeConfig {
    return this.#kc;
  }

  get kubernetes(): KubernetesConfig {
    return this.#kube;
  }

  get labelSelector(): string | undefined {
    return this.#config.labelSelector;
  }

  reporter(streamId: string): ListWatchReporter {
    const health = this.#ctx.health;
    const source = this.name;
    return {
      relisted: (reason) => health.relists.inc({ source, reason }),
      watchRestarted: (reason) => health.watchRestarts.inc({ source, reason }),
      listSucceeded: (seconds) => {
        if (this.#started && this.#failing.size === 0) health.scanSucceeded(source, seconds);
      },
      failed: () => {
        this.#failing.add(streamId);
        health.scanFailed(source);
      },
      recovered: () => {
        this.#failing.delete(streamId);
        if (this.#failing.size === 0) health.sourceUp.set({ source }, 1);
      },
    };
  }

  /** A refusal of a stream's scope, on the namespace's error location (`name` "": no Secret has it). */
  setForbidden(refusal: string, namespace: string | undefined, message: string | undefined): void {
    this.#ctx.setRefusal({ source: "secret", namespace: namespace ?? "", name: "", key: "" }, refusal, message);
  }

  /** Which data keys of a Secret are read, with the rule that reads each; sorted by key. */
  plan(secret: SecretObject): { key: string; rule: CompiledRule }[] {
    const data = secret.data;
    if (!data) return [];
    const type = secret.type ?? "";
    const rules = this.#rules.filter((r) => r.rule.type === undefined || r.rule.type === type);
    if (rules.length === 0) return [];
    const out: { key: string; rule: CompiledRule }[] = [];
    for (const key of Object.keys(data).sort()) {
      const value = data[key];
      if (typeof value !== "string" || value === "") continue;
      const rule = rules.find((r) => r.matchKey(key));
      if (rule) out.push({ key, rule });
    }
    return out;
  }

  /** Digest of what decides a Secret's locations, so unchanged Secrets are skipped. */
  digest(secret: SecretObject, plan: { key: string; rule: CompiledRule }[]): string {
    const hash = createHash("sha1");
    hash.update(secret.type ?? "");
    const annotations = secret.metadata?.annotations ?? {};
    for (const a of DIGEST_ANNOTATIONS) hash.update(`\0${a}=${annotations[a] ?? "\u0001"}`);
    for (const { key, rule } of plan) {
      hash.update(`\0${key}\0${rule.index}\0`).update(secret.data?.[key] ?? "");
      if (rule.rule.passphraseKey) hash.update(`\0p\0`).update(secret.data?.[rule.rule.passphraseKey] ?? "\u0001");
    }
    return hash.digest("base64");
  }

  /** Thresholds and the cert-manager link from a Secret's annotations. */
  extra(secret: SecretObject): Omit<LocationUpdate, "certificates" | "error"> {
    const annotations = secret.metadata?.annotations ?? {};
    const extra: { thresholds?: Thresholds; certManager?: CertManagerLink } = {};
    const thresholds: Thresholds = {};
    for (const [annotation, field] of [
      [ANNOTATION_WARNING_DAYS, "warningDays"],
      [ANNOTATION_CRITICAL_DAYS, "criticalDays"],
    ] as const) {
      const raw = annotations[annotation];
      if (raw === undefined) continue;
      const days = parseDays(raw);
      if (days !== undefined) {
        thresholds[field] = days;
        continue;
      }
      const ns = secret.metadata?.namespace ?? "";
      const name = secret.metadata?.name ?? "";
      const logKey = `${ns}/${name}\0${annotation}\0${raw}`;
      if (!this.#loggedAnnotations.has(logKey)) {
        this.#loggedAnnotations.add(logKey);
        this.#ctx.log.warn({ namespace: ns, name, annotation, value: raw.slice(0, 100) }, "ignoring an annotation that is not a number of days");
      }
    }
    if (thresholds.warningDays !== undefined || thresholds.criticalDays !== undefined) extra.thresholds = thresholds;
    const certificateName = annotations[ANNOTATION_CM_CERTIFICATE];
    if (certificateName) {
      // Annotation values may be 256 KiB; these become label values, cut like every other.
      const cut = (value: string) => truncateLabelValue(value, this.#ctx.cache.limits.maxLabelValueLength);
      extra.certManager = {
        certificateName: cut(certificateName),
        issuerName: cut(annotations[ANNOTATION_CM_ISSUER] ?? ""),
        issuerKind: cut(annotations[ANNOTATION_CM_ISSUER_KIND] ?? ""),
      };
    }
    return extra;
  }

  forgetAnnotations(namespace: string, name: string): void {
    if (this.#loggedAnnotations.size === 0) return;
    const prefix = `${namespace}/${name}\0`;
    for (const k of this.#loggedAnnotations) if (k.startsWith(prefix)) this.#loggedAnnotations.delete(k);
  }

  /**
   * Certificates of one data key, as one or more (location key, result) pairs. PEM, DER and PKCS#7
   * are parsed inline; PKCS#12 and kubeconfig YAML in the decode pool, off the event loop.
   */
  async read(secret: SecretObject, key: string, rule: SecretRule): Promise<{ key: string; result: readonly CertRecord[] | CertReadError }[]> {
    const bytes = decodeBase64(secret.data![key]!);
    const cache = this.#ctx.cache;
    const parse = (b: Uint8Array, format: "auto" | "pem" | "der"): readonly CertRecord[] | CertReadError => {
      try {
        return cache.parse(b, format);
      } catch (err) {
        return toReadError(err, "corrupt_certificate");
      }
    };
    switch (rule.format) {
      case "auto":
      case "pem":
      case "der":
        return [{ key, result: parse(bytes, rule.format) }];
      case "kubeconfig": {
        let entries;
        try {
          entries = await this.#ctx.decodeKubeconfig(bytes, null);
        } catch (err) {
          return [{ key, result: toReadError(err, "bad_yaml") }];
        }
        return entries.map((entry) => ({
          key: `${key}/${entry.key}`,
          result: entry.kind === "data" ? parse(entry.bytes, "auto") : entry.kind === "error" ? entry.error : new CertReadError("file_reference_not_allowed", `${entry.key} refers to a file`),
        }));
      }
      case "pkcs12":
        return [{ key, result: await this.#readPkcs12(secret, bytes, rule) }];
    }
  }

  async #readPkcs12(secret: SecretObject, bytes: Uint8Array, rule: SecretRule): Promise<readonly CertRecord[] | CertReadError> {
    const passphrases: string[] = [];
    const fromKey = rule.passphraseKey ? secret.data?.[rule.passphraseKey] : undefined;
    if (fromKey !== undefined) {
      const text = decodeBase64(fromKey).toString("utf8");
      passphrases.push(text);
      // `kubectl create secret --from-file` keeps the file's final newline; a passphrase never has one.
      const trimmed = text.replace(/\r?\n$/, "");
      if (trimmed !== text) passphrases.push(trimmed);
    } else if (rule.passphrase !== undefined) {
      passphrases.push(rule.passphrase);
    } else if (rule.passphraseKey) {
      return new CertReadError("wrong_passphrase", `no passphrase: the Secret has no key "${rule.passphraseKey}"`);
    } else {
      passphrases.push("");
    }
    try {
      const records: CertRecord[] = [];
      for (const der of await this.#ctx.decodePkcs12(bytes, passphrases)) records.push(...this.#ctx.cache.parse(der, "der"));
      return records;
    } catch (err) {
      return toReadError(err, "corrupt_certificate");
    }
  }
}

/** One list-and-watch scope and the Secrets it holds. */
class SecretStream implements ListWatchHandler<SecretObject> {
  readonly spec: StreamSpec;
  readonly id: string;
  readonly listWatch: ListWatch<SecretObject>;
  readonly #source: SecretsSource;
  readonly #objects = new Map<string, SecretState>();

  constructor(spec: StreamSpec, source: SecretsSource) {
    this.spec = spec;
    this.#source = source;
    const fieldSelector = spec.type === undefined ? undefined : `type=${spec.type}`;
    const labelSelector = source.labelSelector;
    this.id = `secrets namespace=${spec.namespace ?? "*"}${fieldSelector ? ` fieldSelector=${fieldSelector}` : ""}`;
    const kube = source.kubernetes;
    const ns = spec.namespace;
    const collectionPath = ns === undefined ? "/api/v1/secrets" : `/api/v1/namespaces/${encodeURIComponent(ns)}/secrets`;
    this.listWatch = new ListWatch<SecretObject>({
      description: this.id,
      kubeConfig: source.kubeConfig,
      path: collectionPath,
      labelSelector,
      fieldSelector,
      ...listWatchPacing(kube),
      handler: this,
      reporter: source.reporter(this.id),
      log: source.ctx.log,
    });
  }

  // ---------------------------------------------------------------- ListWatchHandler

  async listPage(items: readonly SecretObject[]): Promise<void> {
    const slice = new TimeSlice();
    for (const secret of items) {
      await this.#apply(objectKey(secret), secret);
      await slice.yieldIfDue();
    }
  }

  listCompleted(seen: ReadonlySet<string>): void {
    for (const key of [...this.#objects.keys()]) if (!seen.has(key)) this.#drop(key);
  }

  async watchEvent(type: "ADDED" | "MODIFIED" | "DELETED", secret: SecretObject): Promise<void> {
    const key = objectKey(secret);
    if (type === "DELETED") this.#drop(key);
    else await this.#apply(key, secret);
  }

  forbidden(verb: "list" | "watch", error: KubeApiError): void {
    const ns = this.spec.namespace;
    const message = missingPermission(verb, "secrets", ns, "sources.secrets.namespaces.include", error);
    if (verb === "list") {
      // Nothing here can be read: what was read before is no longer current.
      for (const key of [...this.#objects.keys()]) this.#drop(key);
    }
    this.#source.setForbidden(`${this.id} ${verb}`, ns, message);
  }

  allowed(verb: "list" | "watch"): void {
    this.#source.setForbidden(`${this.id} ${verb}`, this.spec.namespace, undefined);
  }

  // ---------------------------------------------------------------- objects

  async #apply(key: string, secret: SecretObject): Promise<void> {
    const source = this.#source;
    const namespace = secret.metadata?.namespace ?? "";
    const name = secret.metadata?.name ?? "";
    if (!source.namespaceAllowed(namespace)) return this.#drop(key);
    const plan = source.plan(secret);
    if (plan.length === 0) return this.#drop(key);
    const digest = source.digest(secret, plan);
    const old = this.#objects.get(key);
    if (old?.digest === digest) return;
    const extra = source.extra(secret);
    const found: { key: string; result: readonly CertRecord[] | CertReadError }[] = [];
    for (const { key: dataKey, rule } of plan) found.push(...(await source.read(secret, dataKey, rule.rule)));
    // Published only once every key is read, so a slow decode never leaves a Secret half updated.
    const keys: string[] = [];
    for (const { key: locationKey, result } of found) {
      keys.push(locationKey);
      source.ctx.publish({ source: "secret", namespace, name, key: locationKey }, result, extra);
    }
    if (old) {
      const now = new Set(keys);
      for (const k of old.keys) if (!now.has(k)) source.ctx.remove({ source: "secret", namespace, name, key: k });
    }
    this.#objects.set(key, { digest, keys });
  }

  #drop(key: string): void {
    const old = this.#objects.get(key);
    if (!old) return;
    this.#objects.delete(key);
    const slash = key.indexOf("/");
    const namespace = key.slice(0, slash);
    const name = key.slice(slash + 1);
    for (const k of old.keys) this.#source.ctx.remove({ source: "secret", namespace, name, key: k });
    this.#source.forgetAnnotations(namespace, name);
  }
}

