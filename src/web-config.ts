/**
 * `--web.config.file`: TLS, client certificates, basic auth, response headers and a rate limit for
 * the exporter's own endpoints, in the file format of the Prometheus exporter-toolkit
 * (docs/web-configuration.md there), so a file written for node_exporter works here unchanged.
 */
import { dirname, resolve } from "node:path";
import type { SecureVersion } from "node:tls";
import { z } from "zod";
import { ConfigError, describeIssue, readConfigFile, type Config } from "./config.js";
import { readServingMaterial } from "./serving-certificate.js";

/** The exporter-toolkit's client_auth_type values, as Go's crypto/tls defines them. */
export type ClientAuthType = "NoClientCert" | "RequestClientCert" | "RequireAnyClientCert" | "VerifyClientCertIfGiven" | "RequireAndVerifyClientCert";

/** Types that check a presented certificate against the client CA, and so need one. */
const VERIFYING: ReadonlySet<ClientAuthType> = new Set(["VerifyClientCertIfGiven", "RequireAndVerifyClientCert"]);

const TLS_VERSIONS: Record<string, SecureVersion> = { TLS10: "TLSv1", TLS11: "TLSv1.1", TLS12: "TLSv1.2", TLS13: "TLSv1.3" };
const VERSION_ORDER: readonly SecureVersion[] = ["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"];

/**
 * Go's names of the suites Go's tls.CipherSuites() offers up to TLS 1.2 (the exporter-toolkit accepts
 * no others), to OpenSSL's names. As in Go, cipher_suites do not restrict TLS 1.3.
 */
const TLS12_CIPHERS: Record<string, string> = {
  TLS_RSA_WITH_AES_128_CBC_SHA: "AES128-SHA",
  TLS_RSA_WITH_AES_256_CBC_SHA: "AES256-SHA",
  TLS_RSA_WITH_AES_128_GCM_SHA256: "AES128-GCM-SHA256",
  TLS_RSA_WITH_AES_256_GCM_SHA384: "AES256-GCM-SHA384",
  TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA: "ECDHE-ECDSA-AES128-SHA",
  TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA: "ECDHE-ECDSA-AES256-SHA",
  TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA: "ECDHE-RSA-AES128-SHA",
  TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA: "ECDHE-RSA-AES256-SHA",
  TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: "ECDHE-ECDSA-AES128-GCM-SHA256",
  TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: "ECDHE-ECDSA-AES256-GCM-SHA384",
  TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: "ECDHE-RSA-AES128-GCM-SHA256",
  TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384: "ECDHE-RSA-AES256-GCM-SHA384",
  TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256: "ECDHE-RSA-CHACHA20-POLY1305",
  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: "ECDHE-ECDSA-CHACHA20-POLY1305",
};
const TLS13_CIPHERS = ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"];

const CURVES: Record<string, string> = { CurveP256: "P-256", CurveP384: "P-384", CurveP521: "P-521", X25519: "X25519" };

/** The headers the exporter-toolkit lets a file set, with the only values it accepts where it names them. */
const HEADERS: Record<string, readonly string[] | null> = {
  "Strict-Transport-Security": null,
  "X-Content-Type-Options": ["nosniff"],
  "X-Frame-Options": ["deny", "sameorigin"],
  "X-XSS-Protection": null,
  "Content-Security-Policy": null,
};

/** $2$, $2a$, $2b$ or $2y$, a cost of 4 to 31, then 53 characters of salt and hash. */
const BCRYPT_HASH = /^\$2[aby]?\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}$/;

/** Go writes an empty string for "not set"; so does every file written for it. */
const text = z
  .string()
  .max(1024 * 1024)
  .optional()
  .transform((value) => (value === "" ? undefined : value));

const names = <T extends string>(values: readonly T[]) => z.enum(values as [T, ...T[]]);

const GO_DURATION_UNITS_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, "µs": 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A Go duration ("1s", "1m30s", "250ms") or a bare number of nanoseconds, as Go's YAML reads one; to milliseconds. */
const goDuration = z.union([z.number().int().min(0), z.string().max(64)]).transform((value, ctx) => {
  if (typeof value === "number") return value / 1e6;
  const parts = [...value.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)];
  if (value !== "0" && (parts.length === 0 || parts.map((p) => p[0]).join("") !== value)) {
    ctx.addIssue({ code: "custom", message: `expected a duration such as 1s or 500ms, got "${value}"` });
    return z.NEVER;
  }
  return parts.reduce((sum, p) => sum + Number(p[1]) * (GO_DURATION_UNITS_MS[p[2] as string] as number), 0);
});

const webConfigSchema = z.strictObject({
  tls_server_config: z
    .strictObject({
      cert: text,
      key: text,
      client_ca: text,
      cert_file: text,
      key_file: text,
      client_auth_type: z
        .enum(["", "NoClientCert", "RequestClientCert", "RequireAnyClientCert", "RequireClientCert", "VerifyClientCertIfGiven", "RequireAndVerifyClientCert"])
        .optional()
        .transform((value) => (value === "" ? undefined : value === "RequireClientCert" ? "RequireAnyClientCert" : value)),
      client_ca_file: text,
      client_allowed_sans: z.array(z.string().min(1).max(1024)).max(1000).optional(),
      min_version: names(Object.keys(TLS_VERSIONS)).default("TLS12"),
      max_version: names(Object.keys(TLS_VERSIONS)).default("TLS13"),
      cipher_suites: z.array(names([...Object.keys(TLS12_CIPHERS), ...TLS13_CIPHERS])).max(100).optional(),
      prefer_server_cipher_suites: z.boolean().default(true),
      curve_preferences: z.array(names(Object.keys(CURVES))).max(10).optional(),
    })
    .prefault({}),
  http_server_config: z
    .strictObject({
      /** Accepted for compatibility: the exporter serves HTTP/1.1, which every scraper speaks. */
      http2: z.boolean().optional(),
      headers: z.record(z.string(), z.string().max(4096)).default({}),
    })
    .prefault({}),
  basic_auth_users: z.record(z.string().max(1024), z.string()).nullish(),
  rate_limit: z.strictObject({ interval: goDuration, burst: z.number().int().min(0).max(1_000_000) }).optional(),
});

/** The serving certificate and the client-certificate policy; file paths absolute. */
export interface TlsServerSettings {
  certFile?: string;
  cert?: string;
  keyFile?: string;
  key?: string;
  clientCaFile?: string;
  clientCa?: string;
  clientAuth: ClientAuthType;
  /** A client certificate must carry one of these SAN values (DNS name, IP, e-mail or URI), exactly. */
  clientAllowedSans?: string[];
  minVersion: SecureVersion;
  maxVersion: SecureVersion;
  /** OpenSSL cipher list for TLS up to 1.2, all TLS 1.3 suites appended; Node's default when absent. */
  ciphers?: string;
  ecdhCurve?: string;
  honorCipherOrder: boolean;
}

export interface WebConfig {
  /** TLS when the file configures it; plain HTTP otherwise. */
  tls?: TlsServerSettings;
  /** User name to bcrypt hash; empty: no authentication. */
  users: ReadonlyMap<string, string>;
  /** Added to every response. */
  headers: Readonly<Record<string, string>>;
  /** A token bucket over every request but the probes: `burst` at once, one more each `intervalMs`. */
  rateLimit?: { intervalMs: number; burst: number };
}

type RawWebConfig = z.output<typeof webConfigSchema>;

/** The checks the schema cannot make; each message names the key it is about and never a value of it. */
function problems(raw: RawWebConfig): string[] {
  const found: string[] = [];
  const tls = raw.tls_server_config;
  const enabled = [tls.cert, tls.cert_file, tls.key, tls.key_file, tls.client_ca, tls.client_ca_file, tls.client_auth_type].some((v) => v !== undefined);
  const clientAuth = tls.client_auth_type ?? "NoClientCert";
  const hasClientCa = tls.client_ca !== undefined || tls.client_ca_file !== undefined;
  if (enabled) {
    if (tls.cert === undefined && tls.cert_file === undefined) found.push("tls_server_config: missing one of cert or cert_file");
    if (tls.key === undefined && tls.key_file === undefined) found.push("tls_server_config: missing one of key or key_file");
  }
  if (tls.cert !== undefined && tls.cert_file !== undefined) found.push("tls_server_config: set cert or cert_file, not both");
  if (tls.key !== undefined && tls.key_file !== undefined) found.push("tls_server_config: set key or key_file, not both");
  if (tls.client_ca !== undefined && tls.client_ca_file !== undefined) found.push("tls_server_config: set client_ca or client_ca_file, not both");
  if (hasClientCa && clientAuth === "NoClientCert") found.push("tls_server_config.client_ca_file: a client CA needs a client_auth_type that asks for client certificates");
  if (!hasClientCa && VERIFYING.has(clientAuth)) found.push(`tls_server_config.client_auth_type: ${clientAuth} needs client_ca_file, the CA that client certificates are checked against`);
  if (tls.client_allowed_sans && !VERIFYING.has(clientAuth)) found.push("tls_server_config.client_allowed_sans: needs a client_auth_type that verifies client certificates");
  if (VERSION_ORDER.indexOf(TLS_VERSIONS[tls.min_version] as SecureVersion) > VERSION_ORDER.indexOf(TLS_VERSIONS[tls.max_version] as SecureVersion)) {
    found.push("tls_server_config.min_version: is above max_version");
  }
  for (const [name, value] of Object.entries(raw.http_server_config.headers)) {
    const allowed = HEADERS[name];
    if (allowed === undefined) found.push(`http_server_config.headers.${name}: cannot be configured; allowed: ${Object.keys(HEADERS).join(", ")}`);
    else if (allowed && value !== "" && !allowed.includes(value)) found.push(`http_server_config.headers.${name}: expected one of ${allowed.join(", ")}`);
  }
  for (const [user, hash] of Object.entries(raw.basic_auth_users ?? {})) {
    if (!BCRYPT_HASH.test(hash)) found.push(`basic_auth_users.${user}: not a bcrypt hash`);
  }
  return found;
}

function tlsSettings(raw: RawWebConfig["tls_server_config"], baseDir: string): TlsServerSettings | undefined {
  if (raw.cert === undefined && raw.cert_file === undefined) return undefined;
  // Relative paths are relative to the web config file, as in the exporter-toolkit.
  const path = (file: string | undefined) => (file === undefined ? undefined : resolve(baseDir, file));
  const tls12 = raw.cipher_suites?.flatMap((name) => TLS12_CIPHERS[name] ?? []);
  return {
    certFile: path(raw.cert_file),
    cert: raw.cert,
    keyFile: path(raw.key_file),
    key: raw.key,
    clientCaFile: path(raw.client_ca_file),
    clientCa: raw.client_ca,
    clientAuth: (raw.client_auth_type ?? "NoClientCert") as ClientAuthType,
    clientAllowedSans: raw.client_allowed_sans,
    minVersion: TLS_VERSIONS[raw.min_version] as SecureVersion,
    maxVersion: TLS_VERSIONS[raw.max_version] as SecureVersion,
    ciphers: tls12 && [...tls12, ...TLS13_CIPHERS].join(":"),
    ecdhCurve: raw.curve_preferences?.map((name) => CURVES[name]).join(":"),
    honorCipherOrder: raw.prefer_server_cipher_suites,
  };
}

/**
 * Reads and checks a web config file, and the serving certificate, key and client CA it names, so
 * that a bad file stops the exporter at start (exit 2) rather than at the first connection.
 * Throws ConfigError naming the file and the key.
 */
export function loadWebConfig(path: string): WebConfig {
  const fail = (message: string): never => {
    throw new ConfigError(`--web.config.file ${path}: ${message}`);
  };
  let raw: unknown;
  try {
    raw = readConfigFile(path);
  } catch (err) {
    return fail((err as Error).message);
  }
  const result = webConfigSchema.safeParse(raw ?? {});
  if (!result.success) return fail(result.error.issues.map(describeIssue).join("\n"));
  const found = problems(result.data);
  if (found.length > 0) return fail(found.join("\n"));
  const tls = tlsSettings(result.data.tls_server_config, dirname(resolve(path)));
  if (tls) {
    try {
      readServingMaterial(tls);
    } catch (err) {
      return fail((err as Error).message);
    }
  }
  const { rate_limit: rateLimit, http_server_config: http } = result.data;
  return {
    tls,
    users: new Map(Object.entries(result.data.basic_auth_users ?? {})),
    headers: Object.fromEntries(Object.entries(http.headers).filter(([, value]) => value !== "")),
    rateLimit: rateLimit && rateLimit.interval > 0 ? { intervalMs: rateLimit.interval, burst: rateLimit.burst } : undefined,
  };
}

/**
 * The configuration with the serving certificate's file added to the file source, so the exporter
 * exports its own certificate like any other: `{source="file", name="<cert_file>"}`.
 */
export function withServingCertificate(config: Config, web: WebConfig): Config {
  const certFile = web.tls?.certFile;
  if (certFile === undefined) return config;
  return { ...config, sources: { ...config.sources, files: [...config.sources.files, { paths: [certFile], exclude: [] }] } };
}
