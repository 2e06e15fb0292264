/**
 * Every reason a location can fail with. These strings are the `reason` label of
 * `cert_read_errors` and of the error counters: they are a public contract, so add, never rename.
 */
export const READ_ERROR_REASONS = {
  not_pem_or_der: "the bytes are neither PEM nor DER",
  no_certificate: "PEM or PKCS#7 without any certificate in it",
  corrupt_certificate: "a CERTIFICATE block or DER structure that does not decode",
  bad_base64: "base64 that does not decode (PEM body, kubeconfig *-data field)",
  unreadable: "the file or object could not be read (permissions, I/O error, not a regular file, a symlink loop, a name that is not UTF-8)",
  not_found: "a file named literally in the configuration, or referenced by a kubeconfig, does not exist",
  too_large: "larger than the configured size limit (the bytes, or the certificate facts they hold); not kept",
  too_many_certificates: "more certificates in one location than limits.maxCertificatesPerLocation",
  too_many_files: "a glob visited more directory entries than limits.maxGlobEntries in one scan",
  too_costly: "decoding would take more work than the input may ask for (PKCS#12 key-derivation iterations over limits.pkcs12MaxIterations)",
  parse_timeout: "decoding did not finish within limits.parseTimeout, or outgrew its memory; the bytes were not read",
  bad_yaml: "a kubeconfig that is not valid YAML or not a kubeconfig",
  file_reference_not_allowed: "a kubeconfig read from a Kubernetes object refers to a file, which cannot be read from there",
  wrong_passphrase: "a PKCS#12 bundle or JKS keystore whose passphrase does not match (for JKS, also one whose bytes were altered)",
  forbidden: "the Kubernetes API refused the request (403)",
  connect_timeout: "no TCP connection within the connect timeout",
  handshake_timeout: "no completed TLS handshake within the timeout",
  connection_refused: "the port refused the connection",
  connection_reset: "the peer reset or closed the connection",
  dns_error: "the host name did not resolve",
  tls_error: "the TLS handshake failed",
  not_tls: "the peer answered with something other than TLS (plain HTTP, another protocol)",
  client_cert_required: "the server demanded a client certificate and none was configured, or it refused the one configured",
  proxy_error: "the HTTP proxy refused or failed the CONNECT to the endpoint (its status is in the message), or did not answer as a proxy",
  starttls_error: "the server refused the STARTTLS upgrade, or answered the exchange before it in a way the protocol does not allow",
} as const;

export type ReadErrorReason = keyof typeof READ_ERROR_REASONS;

/**
 * Thrown for every configuration problem; the CLI turns it into exit code 2. It lives here, not in
 * config.ts (which re-exports it), so that code throwing it at run time (the shard, the Kubernetes
 * client) does not load the configuration schemas and zod with it: the endpoint source reaches the
 * shard through its context, and zod alone is about 20 MiB of a prober's memory.
 */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** A typed failure to read certificates from one location. `reason` is stable; `message` is for humans. */
export class CertReadError extends Error {
  readonly reason: ReadErrorReason;
  /** PEM block labels seen when no certificate was found, so callers can tell a key file from garbage. */
  readonly pemLabels: readonly string[];

  constructor(reason: ReadErrorReason, message: string, options: { cause?: unknown; pemLabels?: readonly string[] } = {}) {
    super(message, { cause: options.cause });
    this.name = "CertReadError";
    this.reason = reason;
    this.pemLabels = options.pemLabels ?? [];
  }
}

/** Turns anything thrown while reading into a CertReadError, keeping typed ones as they are. */
export function toReadError(err: unknown, fallback: ReadErrorReason = "unreadable"): CertReadError {
  if (err instanceof CertReadError) return err;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === "ENOENT") return new CertReadError("not_found", "no such file", { cause: err });
  const message = err instanceof Error ? err.message : String(err);
  return new CertReadError(fallback, message, { cause: err });
}
