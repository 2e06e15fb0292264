/**
 * Kubeconfig YAML → the certificates it points at, without I/O: used for kubeconfig files and for
 * kubeconfigs held in Secrets. YAML is the one input here whose decoder is not ours; it runs off the
 * event loop with a time budget (src/decode-pool.ts), and loadYaml keeps its own checks linear.
 */
import { resolve } from "node:path";
import { CertReadError } from "../errors.js";
import { YamlError, loadYaml } from "../yaml.js";
import { decodeBase64 } from "./base64.js";

/**
 * One certificate a kubeconfig points at, keyed `clusters/<name>` or `users/<name>`: inline bytes
 * (a `*-data` field, base64-decoded), a file (a `certificate-authority` / `client-certificate`
 * path), or the error that stopped the entry being read.
 */
export type KubeconfigEntry =
  | { key: string; kind: "data"; bytes: Uint8Array }
  | { key: string; kind: "file"; path: string }
  | { key: string; kind: "error"; error: CertReadError };

type Mapping = Record<string, unknown>;

function isMapping(value: unknown): value is Mapping {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === null || value === undefined) return "empty";
  if (Array.isArray(value)) return "a list";
  return `a ${typeof value}`;
}

function notKubeconfig(message: string): CertReadError {
  return new CertReadError("bad_yaml", `not a kubeconfig: ${message}`);
}

/**
 * The certificate of one cluster or user: the `-data` field wins over the file reference, as in
 * client-go; an empty string counts as absent; neither present means no entry.
 */
function certificateEntry(key: string, holder: Mapping, dataField: string, fileField: string, baseDir: string | null): KubeconfigEntry | undefined {
  const data = holder[dataField];
  if (data !== undefined && data !== null && data !== "") {
    if (typeof data !== "string") return { key, kind: "error", error: new CertReadError("bad_yaml", `${key}: ${dataField} is ${describe(data)}, not a string`) };
    const bytes = decodeBase64(data, true);
    if (!bytes) return { key, kind: "error", error: new CertReadError("bad_base64", `${key}: ${dataField} is not valid base64`) };
    return { key, kind: "data", bytes };
  }
  const file = holder[fileField];
  if (file === undefined || file === null || file === "") return undefined;
  if (typeof file !== "string") return { key, kind: "error", error: new CertReadError("bad_yaml", `${key}: ${fileField} is ${describe(file)}, not a string`) };
  if (baseDir === null) {
    return { key, kind: "error", error: new CertReadError("file_reference_not_allowed", `${key}: ${fileField} refers to the file ${file}, which cannot be read from here`) };
  }
  return { key, kind: "file", path: resolve(baseDir, file) };
}

function namedList(config: Mapping, field: "clusters" | "users"): unknown[] {
  const list = config[field];
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) throw notKubeconfig(`${field} is ${describe(list)}, not a list`);
  return list;
}

function collect(
  config: Mapping,
  field: "clusters" | "users",
  inner: "cluster" | "user",
  dataField: string,
  fileField: string,
  baseDir: string | null,
  into: Map<string, KubeconfigEntry>,
): void {
  namedList(config, field).forEach((item, index) => {
    const name = isMapping(item) ? item.name : undefined;
    if (!isMapping(item) || typeof name !== "string" || name === "") {
      const key = `${field}/#${index}`;
      into.set(key, { key, kind: "error", error: new CertReadError("bad_yaml", `${field}[${index}] has no name`) });
      return;
    }
    const key = `${field}/${name}`;
    const holder = item[inner];
    if (holder === undefined || holder === null) {
      into.delete(key);
      return;
    }
    if (!isMapping(holder)) {
      into.set(key, { key, kind: "error", error: new CertReadError("bad_yaml", `${key}: ${inner} is ${describe(holder)}, not a mapping`) });
      return;
    }
    const entry = certificateEntry(key, holder, dataField, fileField, baseDir);
    // A later entry of the same name replaces an earlier one, as client-go's loader does.
    if (entry) into.set(key, entry);
    else into.delete(key);
  });
}

/**
 * The certificates a kubeconfig points at, without any I/O, so that kubeconfigs stored in Secrets can
 * use it too. File references resolve against `baseDir` (the kubeconfig's folder); with `baseDir`
 * null they are `file_reference_not_allowed` errors. Only the certificate fields are looked at:
 * `client-key-data`, tokens and auth providers are never read or returned.
 *
 * Throws a `bad_yaml` CertReadError when the text is not YAML, not UTF-8, or not a kubeconfig (not a
 * mapping, a `kind` other than Config, no clusters/users/contexts, or those not lists). Error
 * messages carry positions, never the text itself, since a kubeconfig holds secrets.
 */
export function parseKubeconfig(input: string | Uint8Array, baseDir: string | null): KubeconfigEntry[] {
  let text: string;
  if (typeof input === "string") {
    text = input;
  } else {
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(input);
    } catch {
      throw new CertReadError("bad_yaml", "not valid YAML: not UTF-8 text");
    }
  }
  let config: unknown;
  try {
    config = loadYaml(text);
  } catch (err) {
    if (err instanceof YamlError) throw new CertReadError("bad_yaml", `not valid YAML: ${err.message}`);
    throw err;
  }
  if (!isMapping(config)) throw notKubeconfig(`the document is ${describe(config)}, not a mapping`);
  if (config.kind !== undefined && config.kind !== "Config") throw notKubeconfig("kind is not Config");
  if (config.kind === undefined && !("clusters" in config || "users" in config || "contexts" in config)) {
    throw notKubeconfig("no clusters, users or contexts");
  }
  const entries = new Map<string, KubeconfigEntry>();
  collect(config, "clusters", "cluster", "certificate-authority-data", "certificate-authority", baseDir, entries);
  collect(config, "users", "user", "client-certificate-data", "client-certificate", baseDir, entries);
  return [...entries.values()];
}
