/** How a failed request is handled, and the `reason` label it is counted under. */
export type FailureKind = "expired" | "forbidden" | "unauthorized" | "throttled" | "server_error" | "network" | "error";

/**
 * A failed Kubernetes API request, from any of the ways one fails: an HTTP status with a
 * metav1.Status body, an ERROR event on a watch, or a network error (code 0). The message is the
 * server's Status message or the network error; never a request or response object, which could
 * hold Secret data.
 */
export class KubeApiError extends Error {
  readonly code: number;
  /** The Status reason (Expired, Forbidden, …) or a network error code. */
  readonly reason: string;
  readonly retryAfterSeconds: number | undefined;

  constructor(code: number, message: string, reason = "", retryAfterSeconds?: number) {
    super(message);
    this.name = "KubeApiError";
    this.code = code;
    this.reason = reason;
    this.retryAfterSeconds = retryAfterSeconds;
  }

  get kind(): FailureKind {
    const c = this.code;
    if (c === 410 || this.reason === "Expired" || this.reason === "Gone") return "expired";
    if (c === 403) return "forbidden";
    if (c === 401) return "unauthorized";
    if (c === 429) return "throttled";
    if (c >= 500) return "server_error";
    if (c === 0 && this.reason !== "Config" && this.reason !== "BadStream") return "network";
    return "error";
  }

  /** A metav1.Status object (from a body or a watch ERROR event). */
  static fromStatus(code: number, status: unknown, retryAfter?: string | number): KubeApiError {
    const s = (status && typeof status === "object" ? status : {}) as { code?: unknown; message?: unknown; reason?: unknown; details?: { retryAfterSeconds?: unknown } };
    const statusCode = typeof s.code === "number" && s.code > 0 ? s.code : code;
    const message = typeof s.message === "string" && s.message ? s.message : `HTTP ${statusCode}`;
    const reason = typeof s.reason === "string" ? s.reason : "";
    let retry = retryAfter === undefined ? undefined : Number(retryAfter);
    if ((retry === undefined || !Number.isFinite(retry)) && typeof s.details?.retryAfterSeconds === "number") retry = s.details.retryAfterSeconds;
    return new KubeApiError(statusCode, message.slice(0, 1000), reason, retry !== undefined && Number.isFinite(retry) && retry >= 0 ? retry : undefined);
  }

  static fromResponse(code: number, body: string, retryAfter?: string): KubeApiError {
    let status: unknown;
    try {
      status = JSON.parse(body);
    } catch {
      status = undefined;
    }
    return KubeApiError.fromStatus(code, status, retryAfter);
  }

  static fromNetwork(err: unknown): KubeApiError {
    const e = err as { code?: unknown; message?: unknown; name?: unknown };
    const code = typeof e?.code === "string" ? e.code : typeof e?.name === "string" && e.name === "AbortError" ? "Timeout" : "NetworkError";
    return new KubeApiError(0, typeof e?.message === "string" ? e.message : String(err), code);
  }

  /** Anything a request threw: a KubeApiError already, or a network, abort or client-configuration error. */
  static from(err: unknown): KubeApiError {
    return err instanceof KubeApiError ? err : KubeApiError.fromNetwork(err);
  }
}

/**
 * The text of a 403 on a list or watch: what was refused, where, and the grant that fixes it.
 * `includeKey` is the config key whose literal namespaces avoid cluster-wide access; absent for a
 * cluster-scoped resource.
 */
export function missingPermission(verb: "list" | "watch", what: string, namespace: string | undefined, includeKey: string | undefined, error: KubeApiError): string {
  const where = namespace === undefined ? "at the cluster scope" : `in the namespace "${namespace}"`;
  const grant =
    namespace !== undefined
      ? `grant list and watch on ${what} with a Role in "${namespace}"`
      : includeKey === undefined
        ? `grant list and watch on ${what} with a ClusterRole`
        : `grant list and watch on ${what} with a ClusterRole, or name the namespaces literally in ${includeKey} to read them one by one`;
  return `missing permission: cannot ${verb} ${what} ${where}; ${grant} (API server: ${error.message})`;
}
