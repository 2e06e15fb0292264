import { DEFAULT_FAMILIES } from "./series-selection.js";

/**
 * What the configuration is where nothing is said, and the bounds of what the command line sets,
 * without zod: the schema (src/config.ts) takes its defaults and those bounds from here, and a
 * command without a configuration file runs on these alone (src/config-overrides.ts), so that
 * `check --file` and a files-only `serve` start without loading zod (about 150 ms of CPU on Node 20).
 */

export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export const LOG_FORMATS = ["json", "logfmt"] as const;
/** A configured path or glob: long enough for any real path, short enough to bound matching. */
export const MAX_PATH_LENGTH = 4096;
/** Paths or globs in one group of files or kubeconfigs. */
export const MAX_PATHS_PER_GROUP = 1000;
/** A host name, as the listen address. */
export const MAX_HOST_LENGTH = 253;
export const MAX_CONTEXT_LENGTH = 1024;
export const MAX_PORT = 65535;

const KiB = 1024;
const MiB = 1024 * KiB;

const namespaceSelection = () => ({ include: [] as string[], exclude: [] as string[] });
const caBundleKind = () => ({ enabled: false, probe: false });
/** Every namespace, as each Kubernetes source and discovery kind reads by default. */
export const DEFAULT_NAMESPACE_SELECTION = namespaceSelection();
/** A kind of caBundle field neither read nor probed. */
export const DEFAULT_CA_BUNDLE_KIND = caBundleKind();

/** A Secret rule's presented certificates: the kubernetes.io/tls layout, which cert-manager and every Ingress controller use. */
const presented = () => [{ certificate: "tls.crt", privateKey: "tls.key", ca: "ca.crt" }];
/** What a Secret rule that names no `presented` gets. */
export const DEFAULT_PRESENTED = presented();

export const DEFAULT_CONFIG = {
  listen: { address: "0.0.0.0", port: 9798 },
  logLevel: "info" as (typeof LOG_LEVELS)[number],
  logFormat: "json" as (typeof LOG_FORMATS)[number],
  shard: { count: 1 },
  metrics: { certificateFamilies: [...DEFAULT_FAMILIES], infoLabels: [] as never[], leafOnly: false as boolean | "first", markSuperseded: true },
  checks: { privateKeys: true, chains: true, publicRoots: true, trustBundles: [] as string[] },
  intervals: { files: 60, kubeconfigs: 60, endpoints: 300 },
  limits: {
    maxFileSize: 4 * MiB,
    parseCacheEntries: 20000,
    maxCertificatesPerLocation: 1000,
    maxLabelValueLength: 1024,
    maxBytesPerLocation: MiB,
    pkcs12MaxIterations: 200_000,
    parseTimeout: 5,
    maxGlobEntries: 100_000,
  },
  http: {
    maxConcurrentScrapes: 2,
    maxQueuedScrapes: 16,
    scrapeTimeout: 60,
    maxConnections: 256,
    statusPageRows: 200,
    shutdownTimeout: 4,
    maxConcurrentProbes: 32,
    maxQueuedProbes: 128,
  },
  probe: { timeout: 10, connectTimeout: 5, concurrency: 32, jitter: 0.1 },
  sources: {
    files: [] as never[],
    kubeconfigs: [] as never[],
    endpoints: [] as never[],
    secrets: {
      enabled: false,
      namespaces: namespaceSelection(),
      rules: [{ type: "kubernetes.io/tls", keys: ["tls.crt", "ca.crt"], format: "auto" as const, presented: presented() }],
    },
    configMaps: { enabled: false, namespaces: namespaceSelection(), keys: ["*.crt", "*.pem"] },
    caBundles: { validatingWebhooks: caBundleKind(), mutatingWebhooks: caBundleKind(), apiServices: caBundleKind(), crdConversions: caBundleKind() },
    csrs: { enabled: false, signerNames: [] as string[] },
    discovery: {
      ingresses: { enabled: false, namespaces: namespaceSelection(), port: 443 },
      services: { enabled: false, namespaces: namespaceSelection() },
      apiServer: { enabled: false },
      kubelets: { enabled: false, port: 10250 },
    },
  },
  kubernetes: {
    pageSize: 500,
    // 8 MiB: at 32 MiB, a list of large ConfigMaps held the exporter at its 384 MiB memory limit
    // (docs/benchmarks.md); a page of 500 Secrets of a few KiB is far below either.
    maxPageBytes: 8 * MiB,
    resyncInterval: 1800,
    watchTimeout: 300,
    requestTimeout: 60,
    backoff: { initial: 1, max: 300 },
  },
  modules: {},
};
