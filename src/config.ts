import { z } from "zod";
import { DEFAULT_CA_BUNDLE_KIND, DEFAULT_CONFIG as D, DEFAULT_NAMESPACE_SELECTION, DEFAULT_PRESENTED, LOG_FORMATS, LOG_LEVELS, MAX_CONTEXT_LENGTH, MAX_HOST_LENGTH, MAX_PATH_LENGTH, MAX_PATHS_PER_GROUP, MAX_PORT } from "./config-defaults.js";
import { CertReadError, ConfigError } from "./errors.js";
import { HOST_GLOB, parseCidr } from "./probe/allow-list.js";
import { PROBE_PROTOCOLS } from "./probe/protocols.js";
import { parseProxyUrl } from "./probe/proxy.js";
import { readFileBounded } from "./read-bounded.js";
import { CERTIFICATE_FAMILY_NAMES, OPTIONAL_INFO_LABELS, REQUIRED_FAMILIES } from "./series-selection.js";
import { YamlError, loadYaml } from "./yaml.js";
import { mergeOverrides, type ConfigOverrides } from "./config-overrides.js";

/** Thrown for every configuration problem (src/errors.ts); re-exported for the callers that load the configuration anyway. */
export { ConfigError };
export type { ConfigOverrides };

/** The configuration file is read up to this size; a real one is a few KiB. */
export const MAX_CONFIG_FILE_BYTES = 256 * 1024;

const UNITS: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 };

/** Seconds as a user writes them: 30s, 5m, 1h. */
function formatSeconds(seconds: number): string {
  if (seconds < 1) return `${Math.round(seconds * 1000)}ms`;
  for (const [unit, size] of [["d", 86400], ["h", 3600], ["m", 60]] as const) if (seconds % size === 0) return `${seconds / size}${unit}`;
  return `${seconds}s`;
}

/**
 * "90s", "5m", "1h30m", "250ms" or a plain number of seconds, to seconds, within [min, max]. Every
 * duration has both bounds: 0 would busy-loop, and anything beyond Node's timer range (about 24.8
 * days) would wrap into a 1 ms timer.
 */
function duration(min: number, max: number) {
  return z.union([z.number(), z.string().max(64)]).transform((value, ctx) => {
    let seconds: number;
    if (typeof value === "number") {
      seconds = value;
    } else {
      const parts = [...value.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)];
      if (parts.length === 0 || parts.map((p) => p[0]).join("") !== value) {
        ctx.addIssue({ code: "custom", message: `expected a duration such as 30s, 5m or 1h, got "${value}"` });
        return z.NEVER;
      }
      seconds = parts.reduce((sum, p) => sum + Number(p[1]) * (UNITS[p[2] as string] as number), 0);
    }
    if (!Number.isFinite(seconds) || seconds < min || seconds > max) {
      ctx.addIssue({ code: "custom", message: `must be between ${formatSeconds(min)} and ${formatSeconds(max)}, got ${typeof value === "string" ? `"${value}"` : value}` });
      return z.NEVER;
    }
    return seconds;
  });
}

const SIZE_UNITS: Record<string, number> = { B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 };

/** "4MiB", "512KiB" or a plain number of bytes, to bytes, within [min, max]. */
function size(min: number, max: number) {
  return z.union([z.number().int(), z.string().max(64)]).transform((value, ctx) => {
    let bytes: number;
    if (typeof value === "number") {
      bytes = value;
    } else {
      const match = /^(\d+)(B|KiB|MiB|GiB)$/.exec(value);
      if (!match) {
        ctx.addIssue({ code: "custom", message: `expected a size such as 512KiB or 4MiB, got "${value}"` });
        return z.NEVER;
      }
      bytes = Number(match[1]) * (SIZE_UNITS[match[2] as string] as number);
    }
    if (!Number.isSafeInteger(bytes) || bytes < min || bytes > max) {
      ctx.addIssue({ code: "custom", message: `must be between ${min} and ${max} bytes, got ${value}` });
      return z.NEVER;
    }
    return bytes;
  });
}

/** A whole number within [min, max]. */
const count = (min: number, max: number) => z.number().int().min(min).max(max);

const KiB = 1024;
const MiB = 1024 * KiB;
const MINUTE = 60;
const HOUR = 3600;
const DAY = 86400;

/** A configured path or glob. */
const pathPattern = z.string().min(1).max(MAX_PATH_LENGTH);

const pathGroup = z.strictObject({
  /** Paths or globs; `~` is the home folder. */
  paths: z.array(pathPattern).min(1).max(MAX_PATHS_PER_GROUP),
  exclude: z.array(pathPattern).max(1000).default([]),
  /** Where each certificate file's private key is: `{dir}` and `{stem}` (the file name without its extension) are filled in. */
  privateKey: pathPattern.optional(),
  /** Check each file's chain; always done when `privateKey` is set (the file is then a presented certificate). */
  checkChain: z.boolean().optional(),
});

/**
 * Splits the work of one cluster across replicas (src/shard.ts): replica `index` of `count` reads
 * only the namespaces and endpoints whose stable hash falls to it. `index` may be left out when the
 * host name ends in a StatefulSet ordinal (`cert-expiry-exporter-2`).
 */
const shard = z
  .strictObject({
    count: z.number().int().min(1).max(1024).default(D.shard.count),
    index: z.number().int().min(0).optional(),
  })
  .refine((s) => s.index === undefined || s.index < s.count, { message: "must be below shard.count", path: ["index"] });

/** `http://[user:password@]host[:port]`: an HTTP CONNECT proxy the probe goes through. */
const proxyUrl = z
  .string()
  .max(2048)
  .superRefine((value, ctx) => {
    try {
      parseProxyUrl(value);
    } catch (err) {
      ctx.addIssue({ code: "custom", message: (err as Error).message });
    }
  });

const endpointTarget = z.strictObject({
  /** host:port, [v6]:port */
  address: z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[^:\s[\]]+):\d{1,5}$/, "expected host:port or [ipv6]:port"),
  serverName: z.string().min(1).max(253).optional(),
  caFile: pathPattern.optional(),
  certFile: pathPattern.optional(),
  keyFile: pathPattern.optional(),
  timeout: duration(0.1, 5 * MINUTE).optional(),
  proxyUrl: proxyUrl.optional(),
  /** `tls` (the default): TLS from the first byte; otherwise the STARTTLS upgrade of that protocol. */
  protocol: z.enum(PROBE_PROTOCOLS).optional(),
});

/** `10.0.0.0/8`, `fd00::/8` or one address: a block of addresses a /probe module may dial. */
const cidr = z
  .string()
  .max(64)
  .superRefine((value, ctx) => {
    try {
      parseCidr(value);
    } catch (err) {
      ctx.addIssue({ code: "custom", message: (err as Error).message });
    }
  });

/**
 * The targets a /probe module accepts (src/probe/allow-list.ts). Required, and never empty: a module
 * states what it may reach, host globs and address blocks (a target must pass each list given), or
 * `any: true`, so that /probe is never an open relay by omission.
 */
const probeAllow = z
  .strictObject({
    any: z.literal(true).optional(),
    hosts: z.array(z.string().regex(HOST_GLOB, "expected a host name glob such as *.example.com")).min(1).max(1000).optional(),
    cidrs: z.array(cidr).min(1).max(1000).optional(),
  })
  .refine((allow) => allow.any === undefined || (allow.hosts === undefined && allow.cidrs === undefined), { message: "any: true leaves nothing for hosts or cidrs to restrict; give either" })
  .refine((allow) => allow.any !== undefined || allow.hosts !== undefined || allow.cidrs !== undefined, { message: "state the targets the module may probe: hosts, cidrs, or any: true" });

/** How /probe probes the targets asked of it under one module name (README.md, "/probe"). */
const probeModule = z.strictObject({
  /** SNI and the name checked; default the target's host. */
  serverName: z.string().min(1).max(253).optional(),
  caFile: pathPattern.optional(),
  certFile: pathPattern.optional(),
  keyFile: pathPattern.optional(),
  /** Deadline of one probe; default `probe.timeout`; never more than the scraper's own timeout. */
  timeout: duration(0.1, 5 * MINUTE).optional(),
  /** Time allowed for DNS and TCP connect; default `probe.connectTimeout`. */
  connectTimeout: duration(0.1, 5 * MINUTE).optional(),
  protocol: z.enum(PROBE_PROTOCOLS).default("tls"),
  proxyUrl: proxyUrl.optional(),
  allow: probeAllow,
});

/** A module's name as /probe?module= gives it. */
const MODULE_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

const modules = z
  .record(z.string().regex(MODULE_NAME, "a module name is 1 to 64 letters, digits, '_', '.' or '-'"), probeModule)
  .refine((all) => Object.keys(all).length <= 1000, { message: "at most 1000 modules" });

/** How Kubernetes is reached, and how its list-and-watch loops behave; shared by every Kubernetes source. */
const kubernetes = z.strictObject({
  /** A kubeconfig file; default KUBECONFIG, then the in-cluster service account, then ~/.kube/config. */
  kubeconfig: pathPattern.optional(),
  /** A kubeconfig context other than the current one. */
  context: z.string().min(1).max(MAX_CONTEXT_LENGTH).optional(),
  /** Objects per LIST page. */
  pageSize: z.number().int().min(1).max(10_000).default(D.kubernetes.pageSize),
  /** A LIST page larger than this is asked for again with half as many objects: it is held and parsed at once. */
  maxPageBytes: size(MiB, 256 * MiB).default(D.kubernetes.maxPageBytes),
  /** Full relist that reconciles anything a watch missed. */
  resyncInterval: duration(0.5, DAY).default(D.kubernetes.resyncInterval),
  /** A watch without any event or bookmark for this long is restarted. */
  watchTimeout: duration(1, HOUR).default(D.kubernetes.watchTimeout),
  /** One LIST page request that takes longer is aborted and retried. */
  requestTimeout: duration(1, 10 * MINUTE).default(D.kubernetes.requestTimeout),
  /** Retry delays after a failed request: exponential from `initial` up to `max`, with jitter. */
  backoff: z
    .strictObject({
      initial: duration(0.01, MINUTE).default(D.kubernetes.backoff.initial),
      max: duration(0.1, HOUR).default(D.kubernetes.backoff.max),
    })
    .prefault({})
    .refine((b) => b.max >= b.initial, { message: "must not be below backoff.initial", path: ["max"] }),
});

/** Where a Secret's certificates are, and in what form. */
/** A data key name, as Kubernetes allows them. */
const dataKey = z.string().min(1).max(253);

/** A data key holding a certificate a workload presents, with the keys of its private key and CA certificates. */
const presentedKey = z.strictObject({
  certificate: dataKey,
  privateKey: dataKey.optional(),
  ca: dataKey.optional(),
});

const secretRule = z
  .strictObject({
    /** Secret type this rule applies to (e.g. kubernetes.io/tls, Opaque); absent: every type. */
    type: z.string().min(1).max(253).optional(),
    /** Data keys to read; globs (`*.crt`, `*.p12`). */
    keys: z.array(z.string().min(1).max(253)).min(1).max(100),
    /** auto (PEM, DER or PKCS#7), pem, der, pkcs12, jks, or kubeconfig. */
    format: z.enum(["auto", "pem", "der", "pkcs12", "jks", "kubeconfig"]).default("auto"),
    /** pkcs12, jks: the data key of the same Secret that holds the passphrase. */
    passphraseKey: z.string().min(1).max(253).optional(),
    /** pkcs12, jks: the passphrase itself (used when passphraseKey is absent or missing from the Secret). */
    passphrase: z.string().max(1024).optional(),
    /**
     * Keys whose certificate is presented by a workload (auto, pem and der formats): compared with
     * its private key and its chain checked up to the CA certificates beside it (src/checks.ts).
     */
    presented: z.array(presentedKey).max(100).default(DEFAULT_PRESENTED),
  })
  .refine((rule) => rule.format === "pkcs12" || rule.format === "jks" || (rule.passphraseKey === undefined && rule.passphrase === undefined), {
    message: "passphraseKey and passphrase apply only to formats pkcs12 and jks",
  });

/** Which namespaces a Kubernetes source reads (src/sources/namespaces.ts). */
const namespaceSelection = z
  .strictObject({
    /** Names or globs; empty: every namespace. Only literal names: one list-and-watch per namespace. */
    include: z.array(z.string().min(1).max(253)).max(10_000).default(DEFAULT_NAMESPACE_SELECTION.include),
    /** Names or globs, applied after include. */
    exclude: z.array(z.string().min(1).max(253)).max(10_000).default(DEFAULT_NAMESPACE_SELECTION.exclude),
  })
  .prefault({});

/** A label selector sent to the API server, e.g. `app.kubernetes.io/managed-by!=Helm`. */
const labelSelector = z.string().min(1).max(4096);

const secrets = z.strictObject({
  enabled: z.boolean().default(D.sources.secrets.enabled),
  namespaces: namespaceSelection,
  labelSelector: labelSelector.optional(),
  /** The first rule whose type and key glob match a data key decides how it is read. */
  rules: z.array(secretRule).min(1).max(100).default(D.sources.secrets.rules),
});

/** ConfigMaps: CA bundles (kube-root-ca.crt, trust-manager targets) and certificates kept as configuration. */
const configMaps = z.strictObject({
  enabled: z.boolean().default(D.sources.configMaps.enabled),
  namespaces: namespaceSelection,
  labelSelector: labelSelector.optional(),
  /** Keys of `data` and `binaryData` to read; globs. */
  keys: z.array(z.string().min(1).max(253)).min(1).max(100).default(D.sources.configMaps.keys),
});

/**
 * One kind whose objects carry `caBundle` fields. `enabled`: export the certificates of the bundles;
 * `probe`: probe the serving certificate behind each (src/sources/discovery/webhooks.ts). Either
 * needs list and watch on the kind.
 */
const caBundleKind = z
  .strictObject({
    enabled: z.boolean().default(DEFAULT_CA_BUNDLE_KIND.enabled),
    probe: z.boolean().default(DEFAULT_CA_BUNDLE_KIND.probe),
    labelSelector: labelSelector.optional(),
  })
  .prefault({});

/** The caBundle fields the API server trusts when it calls webhooks and aggregated APIs. */
const caBundles = z.strictObject({
  validatingWebhooks: caBundleKind,
  mutatingWebhooks: caBundleKind,
  apiServices: caBundleKind,
  crdConversions: caBundleKind,
});

/** CertificateSigningRequests: the certificates they were issued (`status.certificate`). */
const csrs = z.strictObject({
  enabled: z.boolean().default(D.sources.csrs.enabled),
  labelSelector: labelSelector.optional(),
  /** Signer names read (globs, e.g. `kubernetes.io/kubelet-serving`); empty: every signer. */
  signerNames: z.array(z.string().min(1).max(571)).max(100).default(D.sources.csrs.signerNames),
});

const port = z.number().int().min(1).max(MAX_PORT);

/**
 * TLS endpoints found in Kubernetes (src/sources/discovery/), probed like static endpoints. Every
 * kind is off by default.
 */
const discovery = z.strictObject({
  /** `spec.tls[].hosts` of Ingresses, probed at `host:port`, dialling the load-balancer address when the Ingress has one. */
  ingresses: z
    .strictObject({
      enabled: z.boolean().default(D.sources.discovery.ingresses.enabled),
      namespaces: namespaceSelection,
      labelSelector: labelSelector.optional(),
      /** The port probed on each host. */
      port: port.default(D.sources.discovery.ingresses.port),
      /** PEM file of CAs trusted beside the system roots (a private ingress CA). */
      caFile: pathPattern.optional(),
    })
    .prefault({}),
  /** Services annotated `cert-expiry-exporter.io/probe: "true"`, probed at `<service>.<namespace>.svc:<port>` through the cluster IP. */
  services: z
    .strictObject({
      enabled: z.boolean().default(D.sources.discovery.services.enabled),
      namespaces: namespaceSelection,
      labelSelector: labelSelector.optional(),
      caFile: pathPattern.optional(),
    })
    .prefault({}),
  /** The Kubernetes API server of the client configuration, verified with the kubeconfig's CA. */
  apiServer: z
    .strictObject({
      enabled: z.boolean().default(D.sources.discovery.apiServer.enabled),
    })
    .prefault({}),
  /** The kubelet of every Node, at its InternalIP. */
  kubelets: z
    .strictObject({
      enabled: z.boolean().default(D.sources.discovery.kubelets.enabled),
      port: port.default(D.sources.discovery.kubelets.port),
      labelSelector: labelSelector.optional(),
      /** PEM file of the kubelet serving CA; without it a self-signed kubelet certificate shows chain_verified 0. */
      caFile: pathPattern.optional(),
    })
    .prefault({}),
});

/** The per-certificate series sent to Prometheus: what every certificate costs its scraper (README.md, "Choosing the series"). */
const metrics = z.strictObject({
  /** Per-certificate families; the two dates cannot be left out. */
  certificateFamilies: z
    .array(z.enum(CERTIFICATE_FAMILY_NAMES))
    .max(CERTIFICATE_FAMILY_NAMES.length * 2)
    .default(D.metrics.certificateFamilies)
    .refine((families) => REQUIRED_FAMILIES.every((name) => families.includes(name)), {
      message: `must include ${REQUIRED_FAMILIES.join(" and ")}: every bundled alert and dashboard reads them`,
    }),
  /** cert_info labels added to the light ones: subject, issuer, sans. */
  infoLabels: z.array(z.enum(OPTIONAL_INFO_LABELS)).max(OPTIONAL_INFO_LABELS.length * 2).default(D.metrics.infoLabels),
  /** true: only certificates that are not CAs; "first": only index 0 of each location. Every per-certificate family, cert_superseded included. */
  leafOnly: z.union([z.boolean(), z.literal("first")], { error: `expected true, false or "first"` }).default(D.metrics.leafOnly),
  /** cert_superseded for a certificate a newer one replaces at its location; false sends none, and every certificate alerts. */
  markSuperseded: z.boolean().default(D.metrics.markSuperseded),
});

/** Checks beyond the dates (README.md, "Key and chain checks"). */
const checks = z.strictObject({
  /** Compare each presented certificate with its private key. */
  privateKeys: z.boolean().default(D.checks.privateKeys),
  /** Check each presented bundle's chain up to a trust anchor. */
  chains: z.boolean().default(D.checks.chains),
  /** The Mozilla root certificates bundled with Node.js are trust anchors. */
  publicRoots: z.boolean().default(D.checks.publicRoots),
  /** PEM files whose certificates are trust anchors too (a private root CA). */
  trustBundles: z.array(pathPattern).max(100).default(D.checks.trustBundles),
});

export const configSchema = z.strictObject({
  listen: z
    .strictObject({
      address: z.string().min(1).max(MAX_HOST_LENGTH).default(D.listen.address),
      port: z.number().int().min(0).max(MAX_PORT).default(D.listen.port),
    })
    .prefault({}),
  logLevel: z.enum(LOG_LEVELS).default(D.logLevel),
  logFormat: z.enum(LOG_FORMATS).default(D.logFormat),
  shard: shard.prefault({}),
  metrics: metrics.prefault({}),
  checks: checks.prefault({}),
  intervals: z
    .strictObject({
      files: duration(1, DAY).default(D.intervals.files),
      kubeconfigs: duration(1, DAY).default(D.intervals.kubeconfigs),
      endpoints: duration(1, DAY).default(D.intervals.endpoints),
    })
    .prefault({}),
  /** What one location, one file or one decode may cost: the blast radius of a hostile object. */
  limits: z
    .strictObject({
      /** Larger files are `too_large` and are not read. */
      maxFileSize: size(KiB, 64 * MiB).default(D.limits.maxFileSize),
      /** Bounded cache of parse results, keyed by content hash; 0 turns it off. */
      parseCacheEntries: count(0, 1_000_000).default(D.limits.parseCacheEntries),
      /** A location holding more certificates is `too_many_certificates`. */
      maxCertificatesPerLocation: count(1, 100_000).default(D.limits.maxCertificatesPerLocation),
      /** Label values longer than this many bytes are cut, with a marker and a hash suffix. */
      maxLabelValueLength: count(64, 65536).default(D.limits.maxLabelValueLength),
      /** Certificate facts (names, SANs, serials) one location may keep; more is `too_large`. */
      maxBytesPerLocation: size(KiB, 64 * MiB).default(D.limits.maxBytesPerLocation),
      /** Key-derivation iterations one PKCS#12 bundle may ask for, summed over its MAC and every encrypted part. */
      pkcs12MaxIterations: count(1, 10_000_000).default(D.limits.pkcs12MaxIterations),
      /** Time budget of one decode run off the event loop (PKCS#12, kubeconfig YAML); longer is `parse_timeout`. */
      parseTimeout: duration(0.1, MINUTE).default(D.limits.parseTimeout),
      /** Directory entries one glob may visit in one scan; more is `too_many_files` on the pattern. */
      maxGlobEntries: count(100, 10_000_000).default(D.limits.maxGlobEntries),
    })
    .prefault({}),
  /** The exporter's own HTTP server: how much concurrent and slow traffic it takes. */
  http: z
    .strictObject({
      /** /metrics renders at once; more scrapes wait in line, and beyond `maxQueuedScrapes` get 503. */
      maxConcurrentScrapes: count(1, 16).default(D.http.maxConcurrentScrapes),
      maxQueuedScrapes: count(0, 1024).default(D.http.maxQueuedScrapes),
      /** A /metrics response (waiting, rendering and sending to a slow reader) is cut off after this. */
      scrapeTimeout: duration(1, 10 * MINUTE).default(D.http.scrapeTimeout),
      /** Open connections; more are refused. */
      maxConnections: count(8, 65536).default(D.http.maxConnections),
      /** Rows of one status page; the rest is on further pages. */
      statusPageRows: count(10, 5000).default(D.http.statusPageRows),
      /** SIGTERM: time given to requests in flight and sources before the process exits regardless. */
      shutdownTimeout: duration(1, MINUTE).default(D.http.shutdownTimeout),
      /** /probe requests probing at once; more wait in line, and beyond `maxQueuedProbes` get 503. */
      maxConcurrentProbes: count(1, 1024).default(D.http.maxConcurrentProbes),
      maxQueuedProbes: count(0, 4096).default(D.http.maxQueuedProbes),
    })
    .prefault({}),
  probe: z
    .strictObject({
      timeout: duration(0.1, 5 * MINUTE).default(D.probe.timeout),
      connectTimeout: duration(0.1, 5 * MINUTE).default(D.probe.connectTimeout),
      concurrency: count(1, 1024).default(D.probe.concurrency),
      jitter: z.number().min(0).max(1).default(D.probe.jitter),
    })
    .prefault({}),
  sources: z
    .strictObject({
      files: z.array(pathGroup).max(1000).default(D.sources.files),
      kubeconfigs: z.array(pathGroup).max(1000).default(D.sources.kubeconfigs),
      endpoints: z.array(endpointTarget).max(100_000).default(D.sources.endpoints),
      secrets: secrets.prefault({}),
      configMaps: configMaps.prefault({}),
      caBundles: caBundles.prefault({}),
      csrs: csrs.prefault({}),
      discovery: discovery.prefault({}),
    })
    .prefault({}),
  kubernetes: kubernetes.prefault({}),
  /** /probe modules by name; `default` is the one used when a request names none. */
  modules: modules.default(D.modules),
});

export type Config = z.output<typeof configSchema>;
export type PathGroup = z.output<typeof pathGroup>;
export type EndpointTarget = z.output<typeof endpointTarget>;
export type ShardConfig = z.output<typeof shard>;
export type MetricsConfig = z.output<typeof metrics>;
export type ChecksConfig = z.output<typeof checks>;
export type KubernetesConfig = z.output<typeof kubernetes>;
export type SecretsConfig = z.output<typeof secrets>;
export type SecretRule = z.output<typeof secretRule>;
export type ConfigMapsConfig = z.output<typeof configMaps>;
export type CaBundlesConfig = z.output<typeof caBundles>;
export type CsrsConfig = z.output<typeof csrs>;
export type DiscoveryConfig = z.output<typeof discovery>;
export type ProbeModule = z.output<typeof probeModule>;

/** `sources.files[0].paths`: the path of an issue the way a user writes it in YAML. */
function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const part of path) out += typeof part === "number" ? `[${part}]` : `${out ? "." : ""}${String(part)}`;
  return out || "(top level)";
}

export function describeIssue(issue: z.core.$ZodIssue): string {
  if (issue.code === "unrecognized_keys") {
    return issue.keys.map((key) => `${formatPath([...issue.path, key])}: unknown key`).join("\n");
  }
  if (issue.code === "invalid_type") return `${formatPath(issue.path)}: expected ${issue.expected}`;
  return `${formatPath(issue.path)}: ${issue.message}`;
}

/** Validates a raw object against the schema; every problem is named by its path. */
export function validateConfig(raw: unknown): Config {
  const result = configSchema.safeParse(raw ?? {});
  if (!result.success) throw new ConfigError(result.error.issues.map(describeIssue).join("\n"));
  return result.data;
}

export function readConfigFile(path: string): unknown {
  let bytes: Buffer;
  try {
    bytes = readFileBounded(path, MAX_CONFIG_FILE_BYTES);
  } catch (err) {
    if (err instanceof CertReadError && err.reason === "too_large") throw new ConfigError(`config file ${path} is larger than ${MAX_CONFIG_FILE_BYTES} bytes`);
    throw new ConfigError(`cannot read config file ${(err as Error).message}`);
  }
  try {
    return loadYaml(bytes.toString("utf8"));
  } catch (err) {
    if (err instanceof YamlError) throw new ConfigError(`config file ${path} is not valid YAML: ${err.message}`);
    throw err;
  }
}

export function loadConfig(path: string | undefined, overrides: ConfigOverrides = {}): Config {
  return validateConfig(mergeOverrides(path ? readConfigFile(path) : {}, overrides));
}
