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
import { openJks } from "../certs/jks.js";
import type { CertRecord } from "../certs/record.js";
import { truncateLabelValue } from "../certs/truncate.js";
import type { KubernetesConfig, SecretRule, SecretsConfig } from "../config.js";
import { CertReadError, toReadError } from "../errors.js";
import type { CertManagerLink, Thresholds } from "../model.js";
import { loadKubeConfig } from "../kube/client.js";
import { byteField, KubeCertificateSource, parseFound, type CertificateKind, type Found } from "./kube-certificates.js";
import { resourcePath, type KubeObject } from "./kube-collection.js";
import { resolveKubeconfigEntries } from "./kubeconfig.js";
import { NamespaceFilter } from "./namespaces.js";
import { ObjectWarnings } from "./object-warnings.js";
import type { LocationExtra, SourceContext } from "./source.js";

/** What is read of a Secret. */
export interface SecretObject extends KubeObject {
  type?: string;
  data?: Record<string, string> | null;
}

const DIGEST_ANNOTATIONS = [ANNOTATION_WARNING_DAYS, ANNOTATION_CRITICAL_DAYS, ANNOTATION_CM_CERTIFICATE, ANNOTATION_CM_ISSUER, ANNOTATION_CM_ISSUER_KIND];

interface CompiledRule {
  rule: SecretRule;
  index: number;
  matchKey: (key: string) => boolean;
}

export interface SecretsSourceOptions {
  secrets: SecretsConfig;
  kubernetes: KubernetesConfig;
  /** A ready client configuration (tests); default loadKubeConfig(kubernetes). */
  kubeConfig?: KubeConfig;
}

/** A non-negative number of days from an annotation, or undefined when the value is not one. */
function parseDays(value: string): number | undefined {
  if (!/^\s*\d+(\.\d+)?\s*$/.test(value)) return undefined;
  const n = Number(value);
  return Number.isFinite(n) ? n : undefined;
}

/** Which data keys of a Secret are read, with the rule that reads each; sorted by key. */
export function secretPlan(secret: SecretObject, rules: readonly CompiledRule[]): { key: string; rule: CompiledRule }[] {
  const data = secret.data;
  if (!data) return [];
  const type = secret.type ?? "";
  const applicable = rules.filter((r) => r.rule.type === undefined || r.rule.type === type);
  if (applicable.length === 0) return [];
  const out: { key: string; rule: CompiledRule }[] = [];
  for (const key of Object.keys(data).sort()) {
    const value = data[key];
    if (typeof value !== "string" || value === "") continue;
    const rule = applicable.find((r) => r.matchKey(key));
    if (rule) out.push({ key, rule });
  }
  return out;
}

/** Digest of what decides a Secret's locations, so unchanged Secrets are skipped. */
function secretDigest(secret: SecretObject, plan: readonly { key: string; rule: CompiledRule }[]): string {
  const hash = createHash("sha1");
  hash.update(secret.type ?? "");
  const annotations = secret.metadata?.annotations ?? {};
  for (const a of DIGEST_ANNOTATIONS) hash.update(`\0${a}=${annotations[a] ?? "\u0001"}`);
  for (const { key, rule } of plan) {
    hash.update(`\0${key}\0${rule.index}\0`).update(secret.data?.[key] ?? "");
    if (rule.rule.passphraseKey) hash.update(`\0p\0`).update(secret.data?.[rule.rule.passphraseKey] ?? "\u0001");
    // A presented certificate's result depends on its key and CA keys too.
    const presented = presentedAs(rule.rule, key);
    for (const beside of [presented?.privateKey, presented?.ca]) if (beside) hash.update(`\0b\0`).update(secret.data?.[beside] ?? "\u0001");
  }
  return hash.digest("base64");
}

/**
 * Kubernetes Secrets as a kind of the collection engine. Locations: `{source: "secret", namespace,
 * name: <Secret>, key: <data key>}` (a kubeconfig key gives `<data key>/clusters/<name>` and
 * `<data key>/users/<name>`); a namespace (or the cluster scope) that cannot be listed is one error
 * location `{namespace, name: "", key: ""}` with reason `forbidden`.
 *
 * One list-and-watch per namespace when the includes are all literal names (a namespaced Role is
 * enough), else one cluster-wide with the namespaces filtered here; and one per Secret type when every
 * rule names a type (`fieldSelector=type=…`), so that other Secrets (Helm releases, tokens) are never
 * sent. Only certificate records are kept, plus a digest per Secret so that an unchanged Secret is
 * neither parsed nor published again.
 */
export function secretKind(config: SecretsConfig, ctx: SourceContext): CertificateKind<SecretObject> {
  const rules: CompiledRule[] = config.rules.map((rule, index) => ({ rule, index, matchKey: picomatch(rule.keys, { dot: true }) }));
  const warnings = new ObjectWarnings(ctx.log, "secret");
  const types = rules.every((r) => r.rule.type !== undefined) ? [...new Set(rules.map((r) => `type=${r.rule.type}`))] : [undefined];
  return {
    name: "secret",
    source: "secret",
    resource: { resource: "secrets", group: "", path: resourcePath("", "v1", "secrets", true) },
    namespaces: new NamespaceFilter(config.namespaces, ctx.shard),
    includeKey: "sources.secrets.namespaces.include",
    ...(config.labelSelector ? { labelSelector: config.labelSelector } : {}),
    fieldSelectors: types,
    digest(secret) {
      const plan = secretPlan(secret, rules);
      return plan.length === 0 ? undefined : secretDigest(secret, plan);
    },
    async read(secret) {
      const found: Found[] = [];
      for (const { key, rule } of secretPlan(secret, rules)) found.push(...(await readKey(secret, key, rule.rule, ctx)));
      return found;
    },
    extra: (secret) => secretExtra(secret, ctx, warnings),
    forget: (namespace, name) => warnings.forget(namespace, name),
  };
}

/** Thresholds and the cert-manager link from a Secret's annotations. */
function secretExtra(secret: SecretObject, ctx: SourceContext, warnings: ObjectWarnings): LocationExtra {
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
    if (days !== undefined) thresholds[field] = days;
    else warnings.warn(secret.metadata?.namespace ?? "", secret.metadata?.name ?? "", "ignoring an annotation that is not a number of days", { annotation, value: raw.slice(0, 100) });
  }
  if (thresholds.warningDays !== undefined || thresholds.criticalDays !== undefined) extra.thresholds = thresholds;
  const certificateName = annotations[ANNOTATION_CM_CERTIFICATE];
  if (certificateName) {
    // Annotation values may be 256 KiB; these become label values, cut like every other.
    const cut = (value: string) => truncateLabelValue(value, ctx.cache.limits.maxLabelValueLength);
    extra.certManager = {
      certificateName: cut(certificateName),
      issuerName: cut(annotations[ANNOTATION_CM_ISSUER] ?? ""),
      issuerKind: cut(annotations[ANNOTATION_CM_ISSUER_KIND] ?? ""),
    };
  }
  return extra;
}

/** The rule's `presented` entry for a data key, when that key holds a presented certificate. */
function presentedAs(rule: SecretRule, key: string): SecretRule["presented"][number] | undefined {
  return rule.format === "auto" || rule.format === "pem" || rule.format === "der" ? rule.presented.find((p) => p.certificate === key) : undefined;
}

/**
 * A presented certificate with its checks: the private key's bytes are decoded for the comparison
 * and zeroed after it; a key or CA key that is not base64 counts as absent.
 */
function readPresented(secret: SecretObject, key: string, bytes: Uint8Array, format: "auto" | "pem" | "der", presented: SecretRule["presented"][number], ctx: SourceContext): Found {
  const field = (name: string | undefined) => {
    const value = name === undefined ? undefined : secret.data?.[name];
    if (value === undefined || value === "") return undefined;
    const decoded = byteField(value, "the data value");
    return decoded instanceof CertReadError ? undefined : decoded;
  };
  const privateKey = presented.privateKey === undefined ? undefined : (field(presented.privateKey) ?? null);
  try {
    const ca = field(presented.ca);
    const { records, checks } = ctx.checks.presented(bytes, format, { privateKey, ...(ca ? { ca: [ca] } : {}) });
    return { key, result: records, checks };
  } catch (err) {
    return { key, result: toReadError(err, "corrupt_certificate") };
  } finally {
    privateKey?.fill(0);
  }
}

/**
 * Certificates of one data key, as one or more (location key, result) pairs. PEM, DER and PKCS#7
 * are parsed inline; PKCS#12 and kubeconfig YAML in the decode pool, off the event loop.
 */
async function readKey(secret: SecretObject, key: string, rule: SecretRule, ctx: SourceContext): Promise<Found[]> {
  const bytes = byteField(secret.data![key]!, "the data value");
  if (bytes instanceof CertReadError) return [{ key, result: bytes }];
  switch (rule.format) {
    case "auto":
    case "pem":
    case "der": {
      const presented = ctx.checks.active ? presentedAs(rule, key) : undefined;
      return [presented ? readPresented(secret, key, bytes, rule.format, presented, ctx) : parseFound(ctx, key, bytes, rule.format)];
    }
    case "kubeconfig": {
      let entries;
      try {
        entries = await ctx.decodeKubeconfig(bytes, null);
      } catch (err) {
        return [{ key, result: toReadError(err, "bad_yaml") }];
      }
      return resolveKubeconfigEntries(entries, ctx).map((entry): Found => {
        const at = `${key}/${entry.key}`;
        if ("result" in entry) return { ...entry, key: at };
        return { key: at, result: new CertReadError("file_reference_not_allowed", `${entry.key} refers to a file`) };
      });
    }
    case "pkcs12":
      return [{ key, result: await readPkcs12(secret, bytes, rule, ctx) }];
    case "jks":
      return [{ key, result: readJksKey(secret, bytes, rule, ctx) }];
  }
}

/**
 * The passphrases to try for a pkcs12 or jks rule: the Secret's passphraseKey (as it is, and without
 * a final newline), else the configured passphrase; `none` when the rule names neither; an error when
 * the named key is missing and no passphrase is configured.
 */
function passphrasesFor(secret: SecretObject, rule: SecretRule, none: readonly string[] | undefined): readonly string[] | undefined | CertReadError {
  const passphrases: string[] = [];
  const fromKey = rule.passphraseKey ? secret.data?.[rule.passphraseKey] : undefined;
  if (fromKey !== undefined) {
    const decoded = byteField(fromKey, "the data value");
    if (decoded instanceof CertReadError) return decoded;
    const text = decoded.toString("utf8");
    passphrases.push(text);
    // `kubectl create secret --from-file` keeps the file's final newline; a passphrase never has one.
    const trimmed = text.replace(/\r?\n$/, "");
    if (trimmed !== text) passphrases.push(trimmed);
  } else if (rule.passphrase !== undefined) {
    passphrases.push(rule.passphrase);
  } else if (rule.passphraseKey) {
    return new CertReadError("wrong_passphrase", `no passphrase: the Secret has no key "${rule.passphraseKey}"`);
  } else {
    return none;
  }
  return passphrases;
}

/**
 * A JKS keystore's certificates, read inline: the reader is ours, bounded and linear in the bytes
 * (src/certs/jks.ts), and needs no decryption. The digest is checked when the rule gives a
 * passphrase; without one, the certificates are read unchecked.
 */
function readJksKey(secret: SecretObject, bytes: Uint8Array, rule: SecretRule, ctx: SourceContext): readonly CertRecord[] | CertReadError {
  const passphrases = passphrasesFor(secret, rule, undefined);
  if (passphrases instanceof CertReadError) return passphrases;
  try {
    const records: CertRecord[] = [];
    openJks(bytes, passphrases, ctx.cache.limits.maxCertificates).forEach((der, i) => {
      try {
        records.push(...ctx.cache.parse(der, "der"));
      } catch (err) {
        const error = toReadError(err, "corrupt_certificate");
        throw new CertReadError(error.reason, `JKS certificate ${i}: ${error.message}`);
      }
    });
    return records;
  } catch (err) {
    return toReadError(err, "corrupt_certificate");
  }
}

async function readPkcs12(secret: SecretObject, bytes: Uint8Array, rule: SecretRule, ctx: SourceContext): Promise<readonly CertRecord[] | CertReadError> {
  const passphrases = passphrasesFor(secret, rule, [""]) ?? [""];
  if (passphrases instanceof CertReadError) return passphrases;
  try {
    const records: CertRecord[] = [];
    for (const der of await ctx.decodePkcs12(bytes, passphrases)) records.push(...ctx.cache.parse(der, "der"));
    return records;
  } catch (err) {
    return toReadError(err, "corrupt_certificate");
  }
}

/** The Secrets source: one collection of the Secret kind. */
export class SecretsSource extends KubeCertificateSource {
  constructor(options: SecretsSourceOptions, ctx: SourceContext) {
    const kubeConfig = options.kubeConfig ?? loadKubeConfig({ kubeconfig: options.kubernetes.kubeconfig, context: options.kubernetes.context });
    super("secret", [secretKind(options.secrets, ctx)], kubeConfig, options.kubernetes, ctx);
  }
}
