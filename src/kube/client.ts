import { existsSync, readFileSync, statSync } from "node:fs";
import type { OutgoingHttpHeaders } from "node:http";
import type { User } from "@kubernetes/client-node";
import { ConfigError } from "../errors.js";
import { KubeConfig } from "./client-node.js";

/** Where the service-account files of a pod live (the token, its CA and namespace). */
export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

export interface KubeAccessOptions {
  /** A kubeconfig file; otherwise KUBECONFIG, then the in-cluster service account, then ~/.kube/config. */
  kubeconfig?: string;
  /** A context of the kubeconfig other than its current one. */
  context?: string;
  /** Prefix of the service-account directory, for tests (client-node's loadFromCluster pathPrefix). */
  inClusterPathPrefix?: string;
  /** The environment to read KUBECONFIG and KUBERNETES_SERVICE_HOST from; default process.env. */
  env?: NodeJS.ProcessEnv;
}

const TOKEN_PROVIDER = "cert-expiry-exporter/rotating-token-file";
const TOKEN_MAX_AGE_MS = 60_000;

/**
 * Bearer token from a file that the kubelet rotates (projected service-account tokens are replaced
 * through a symlink swap well before they expire). client-node's own token-file authenticator
 * re-reads the file once a minute; this one re-reads it as soon as the file changes (a stat per
 * request, which list pages and watch starts make cheap), and at least once a minute, so a rotated
 * token is used on the very next request.
 */
export class RotatingTokenFileAuth {
  #token = "";
  #stamp = "";
  #readAt = 0;

  isAuthProvider(user: User): boolean {
    return user.authProvider?.name === TOKEN_PROVIDER;
  }

  async applyAuthentication(user: User, opts: { headers?: OutgoingHttpHeaders }): Promise<void> {
    const path = (user.authProvider?.config as Record<string, string> | undefined)?.path;
    if (!path) return;
    let stamp: string;
    try {
      const st = statSync(path);
      stamp = `${st.ino}:${st.mtimeMs}:${st.size}`;
    } catch {
      stamp = "missing";
    }
    if (stamp !== this.#stamp || Date.now() - this.#readAt > TOKEN_MAX_AGE_MS) {
      try {
        this.#token = readFileSync(path, "utf8").trim();
      } catch {
        // Keep the last token: a missing file mid-rotation should not drop authentication.
      }
      this.#stamp = stamp;
      this.#readAt = Date.now();
    }
    if (this.#token) {
      opts.headers ??= {};
      opts.headers.Authorization = `Bearer ${this.#token}`;
    }
  }
}

function inCluster(env: NodeJS.ProcessEnv, prefix: string): boolean {
  return Boolean(env.KUBERNETES_SERVICE_HOST && env.KUBERNETES_SERVICE_PORT && existsSync(`${prefix}${SERVICE_ACCOUNT_DIR}/token`));
}

/**
 * The in-cluster configuration of client-node (`loadFromCluster`: API server from
 * KUBERNETES_SERVICE_HOST/PORT, the service-account CA) with the token read by
 * RotatingTokenFileAuth instead of client-node's once-a-minute reader.
 */
function loadInCluster(kc: KubeConfig, prefix: string): void {
  kc.loadFromCluster(prefix);
  const user = kc.getCurrentUser();
  const tokenFile = (user?.authProvider?.config as Record<string, string> | undefined)?.tokenFile ?? `${prefix}${SERVICE_ACCOUNT_DIR}/token`;
  kc.loadFromClusterAndUser(kc.getCurrentCluster()!, { name: "inClusterUser", authProvider: { name: TOKEN_PROVIDER, config: { path: tokenFile } } });
  kc.addAuthenticator(new RotatingTokenFileAuth());
}

/**
 * Builds the client configuration: `kubeconfig` (the --kubeconfig flag), else KUBECONFIG (one or
 * more paths, merged by client-node), else the in-cluster service account, else ~/.kube/config.
 * A bad path or unknown context is a ConfigError.
 */
export function loadKubeConfig(opts: KubeAccessOptions = {}): KubeConfig {
  const env = opts.env ?? process.env;
  const prefix = opts.inClusterPathPrefix ?? "";
  const kc = new KubeConfig();
  try {
    if (opts.kubeconfig) kc.loadFromFile(opts.kubeconfig);
    else if (env.KUBECONFIG) kc.loadFromDefault();
    else if (inCluster(env, prefix)) loadInCluster(kc, prefix);
    else kc.loadFromDefault();
  } catch (err) {
    throw new ConfigError(`cannot load the Kubernetes client configuration${opts.kubeconfig ? ` from ${opts.kubeconfig}` : ""}: ${(err as Error).message}`);
  }
  if (opts.context) {
    if (!kc.getContextObject(opts.context)) throw new ConfigError(`kubernetes.context: the kubeconfig has no context "${opts.context}"`);
    kc.setCurrentContext(opts.context);
  }
  if (!kc.getCurrentCluster()) throw new ConfigError("the Kubernetes client configuration names no cluster (no current context?)");
  return kc;
}
