import type { Config } from "./config.js";
import { DEFAULT_CONFIG, LOG_FORMATS, LOG_LEVELS, MAX_CONTEXT_LENGTH, MAX_HOST_LENGTH, MAX_PATH_LENGTH, MAX_PATHS_PER_GROUP, MAX_PORT } from "./config-defaults.js";

/** Command-line and environment values that override the file; undefined means "not given". */
export interface ConfigOverrides {
  listenAddress?: string;
  port?: number;
  logLevel?: string;
  logFormat?: string;
  files?: string[];
  kubeconfigFiles?: string[];
  /** Kubernetes client: kubeconfig file and context (--kubeconfig, --context). */
  kubeconfig?: string;
  kubeContext?: string;
}

/** Applies overrides to the raw file content before validation, so they are checked the same way. */
export function mergeOverrides(raw: unknown, overrides: ConfigOverrides): unknown {
  const base = (raw && typeof raw === "object" ? structuredClone(raw) : {}) as Record<string, unknown>;
  const section = (key: string): Record<string, unknown> => {
    const value = base[key];
    if (value && typeof value === "object" && !Array.isArray(value)) return value as Record<string, unknown>;
    const fresh: Record<string, unknown> = {};
    base[key] = fresh;
    return fresh;
  };
  if (overrides.listenAddress !== undefined) section("listen").address = overrides.listenAddress;
  if (overrides.port !== undefined) section("listen").port = overrides.port;
  if (overrides.logLevel !== undefined) base.logLevel = overrides.logLevel;
  if (overrides.logFormat !== undefined) base.logFormat = overrides.logFormat;
  const addGroup = (key: string, paths: string[] | undefined) => {
    if (!paths?.length) return;
    const sources = section("sources");
    const existing = Array.isArray(sources[key]) ? (sources[key] as unknown[]) : [];
    // A group from the command line excludes nothing.
    sources[key] = [...existing, { paths, exclude: [] }];
  };
  if (overrides.kubeconfig !== undefined) section("kubernetes").kubeconfig = overrides.kubeconfig;
  if (overrides.kubeContext !== undefined) section("kubernetes").context = overrides.kubeContext;
  addGroup("files", overrides.files);
  addGroup("kubeconfigs", overrides.kubeconfigFiles);
  return base;
}

const text = (value: string | undefined, maxLength: number): boolean => value === undefined || (value.length >= 1 && value.length <= maxLength);
const paths = (values: string[] | undefined): boolean => values === undefined || (values.length <= MAX_PATHS_PER_GROUP && values.every((path) => text(path, MAX_PATH_LENGTH)));
const oneOf = (value: string | undefined, choices: readonly string[]): boolean => value === undefined || choices.includes(value);

/** True when every override is within what the schema accepts (its bounds in src/config-defaults.ts). */
function withinBounds(overrides: ConfigOverrides): boolean {
  const { port } = overrides;
  return (
    text(overrides.listenAddress, MAX_HOST_LENGTH) &&
    (port === undefined || (Number.isInteger(port) && port >= 0 && port <= MAX_PORT)) &&
    oneOf(overrides.logLevel, LOG_LEVELS) &&
    oneOf(overrides.logFormat, LOG_FORMATS) &&
    paths(overrides.files) &&
    paths(overrides.kubeconfigFiles) &&
    text(overrides.kubeconfig, MAX_PATH_LENGTH) &&
    text(overrides.kubeContext, MAX_CONTEXT_LENGTH)
  );
}

/**
 * The configuration of a command given no configuration file: the defaults with the overrides, the
 * same as the schema makes of them, without loading it and zod. Undefined when an override is out of
 * bounds: the schema then says what is wrong, in its words.
 */
export function configWithoutFile(overrides: ConfigOverrides): Config | undefined {
  return withinBounds(overrides) ? (mergeOverrides(DEFAULT_CONFIG, overrides) as Config) : undefined;
}
