import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { checkReport } from "./check.js";
import { DEFAULT_THRESHOLDS } from "./report.js";
import type { Config } from "./config.js";
import { configWithoutFile, type ConfigOverrides } from "./config-overrides.js";
import { ConfigError } from "./errors.js";
import { EXIT_CODES, type ExitCode } from "./exit-codes.js";
import { parseListenAddress, type ListenAddress } from "./listen-address.js";
import { VERSION } from "./version.js";

export const PROGRAM = "cert-expiry-exporter";
const ENV_PREFIX = "CERT_EXPIRY_EXPORTER_";
/**
 * The old port variable. For a Service named like the exporter, Kubernetes sets exactly this name
 * in every pod of the namespace, to `tcp://<ip>:<port>`: it is read only when it is a plain number.
 */
export const LEGACY_PORT_VARIABLE = `${ENV_PREFIX}PORT`;
const WEB_LISTEN_ADDRESS_VARIABLE = `${ENV_PREFIX}WEB_LISTEN_ADDRESS`;
/** `check` logs errors only, unless told otherwise: its report is its output, and retries are noise there. */
const CHECK_LOG_LEVEL = "error";
const PROGRAM_OPTIONS = new Set(["-h", "--help", "-V", "--version"]);

/** The exporter itself loads only once a command runs, so usage and config errors answer at once. */
const loadApp = () => import("./app.js");
const loadReload = () => import("./reload.js");

/**
 * The configuration file with the overrides, validated. The schema and zod load only for a file, or
 * for an override out of bounds: without a file, the defaults with the overrides are the configuration.
 */
async function loadCommandConfig(path: string | undefined, overrides: ConfigOverrides): Promise<Config> {
  return (path ? undefined : configWithoutFile(overrides)) ?? (await import("./config.js")).loadConfig(path, overrides);
}

/** One line on stderr per line of `message`, each naming the program. */
function complain(message: string): void {
  process.stderr.write(message.split("\n").map((line) => `${PROGRAM}: ${line}\n`).join(""));
}

function integer(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError("expected a whole number");
  return Number(value);
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

function listenAddress(value: string): ListenAddress {
  const parsed = parseListenAddress(value);
  if (!parsed) throw new InvalidArgumentError("expected host:port, [ipv6]:port or :port");
  return parsed;
}

interface CommonOptions {
  config?: string;
  logLevel?: string;
  logFormat?: string;
  file?: string[];
  kubeconfigFile?: string[];
  kubeconfig?: string;
  context?: string;
}

interface ServeOptions extends CommonOptions {
  "web.enableLifecycle"?: boolean;
  /** exporter-toolkit web config: TLS and basic auth for the exporter's own endpoints. */
  "web.config.file"?: string;
}

interface CheckOptions extends CommonOptions {
  output: "table" | "json";
  warnDays: number;
  ignoreReadErrors?: boolean;
}

/** Options that `serve` and `check` share: the config file and what may override it. */
function addCommonOptions(command: Command): Command {
  return command
    .addOption(new Option("-c, --config <path>", "YAML configuration file").env(`${ENV_PREFIX}CONFIG`))
    .addOption(new Option("--log-level <level>", "fatal, error, warn, info, debug, trace or silent (default info)").env(`${ENV_PREFIX}LOG_LEVEL`))
    .addOption(new Option("--log-format <format>", "json or logfmt (default json)").env(`${ENV_PREFIX}LOG_FORMAT`))
    .addOption(new Option("--file <glob>", "certificate file path or glob; repeatable").argParser(collect))
    .addOption(new Option("--kubeconfig-file <glob>", "kubeconfig file path or glob; repeatable").argParser(collect))
    .addOption(new Option("--kubeconfig <path>", "kubeconfig for the Kubernetes API (default: KUBECONFIG, in-cluster service account, ~/.kube/config)"))
    .addOption(new Option("--context <name>", "kubeconfig context for the Kubernetes API (default: the current context)"));
}

/** Options of `serve` alone: where it listens and what its HTTP server offers. */
function addServeOptions(command: Command): Command {
  return command
    .addOption(new Option("--web.listen-address <host:port>", "address and port to listen on, e.g. :9798 or 127.0.0.1:9798 (default 0.0.0.0:9798)").argParser(listenAddress).env(WEB_LISTEN_ADDRESS_VARIABLE))
    .addOption(new Option("--listen-address <address>", "address to listen on; overrides that of --web.listen-address").env(`${ENV_PREFIX}LISTEN_ADDRESS`))
    .addOption(new Option("--port <port>", "port to listen on; overrides that of --web.listen-address").argParser(integer))
    .addOption(new Option("--web.enable-lifecycle", "serve POST /-/reload, which reloads the configuration file as SIGHUP does"))
    .addOption(new Option("--web.config.file <path>", "TLS and basic auth for the exporter's endpoints, in the Prometheus exporter-toolkit format").env(`${ENV_PREFIX}WEB_CONFIG_FILE`));
}

function overrides(options: CommonOptions): ConfigOverrides {
  return {
    logLevel: options.logLevel,
    logFormat: options.logFormat,
    files: options.file,
    kubeconfigFiles: options.kubeconfigFile,
    kubeconfig: options.kubeconfig,
    kubeContext: options.context,
  };
}

interface ListenOverrides {
  overrides: Pick<ConfigOverrides, "listenAddress" | "port">;
  /** The value of LEGACY_PORT_VARIABLE when it was ignored for not being a port number. */
  ignoredLegacyPort?: string;
}

/**
 * Where to listen, from flags and environment. Every flag wins over every variable; among either,
 * --listen-address and --port win over the matching half of --web.listen-address.
 */
function listenOverrides(command: Command, env: NodeJS.ProcessEnv): ListenOverrides {
  const legacy = env[LEGACY_PORT_VARIABLE];
  const legacyPort = legacy !== undefined && /^\d+$/.test(legacy) ? Number(legacy) : undefined;
  const out: ListenOverrides = { overrides: {} };
  if (legacy !== undefined && legacyPort === undefined) out.ignoredLegacyPort = legacy;
  for (const source of ["env", "cli"] as const) {
    const given = <T>(key: string): T | undefined => (command.getOptionValueSource(key) === source ? (command.getOptionValue(key) as T) : undefined);
    const web = given<ListenAddress>("web.listenAddress");
    const address = given<string>("listenAddress");
    const port = source === "env" ? legacyPort : given<number>("port");
    if (web) out.overrides = { listenAddress: web.address, port: web.port };
    if (address !== undefined) out.overrides.listenAddress = address;
    if (port !== undefined) out.overrides.port = port;
  }
  return out;
}

async function serve(options: ServeOptions, command: Command): Promise<void> {
  // A SIGHUP while the exporter is still starting is held until it can reload.
  let heldReload = false;
  let onSighup = () => {
    heldReload = true;
  };
  process.on("SIGHUP", () => onSighup());
  const listen = listenOverrides(command, process.env);
  const load = () => loadCommandConfig(options.config, { ...overrides(options), ...listen.overrides });
  const config = await load();
  const webConfigFile = options["web.config.file"];
  const web = webConfigFile === undefined ? undefined : (await import("./web-config.js")).loadWebConfig(webConfigFile);
  const [{ Exporter }, { ConfigReloader, reloadRoute }] = await Promise.all([loadApp(), loadReload()]);
  const exporter = await Exporter.create(config, undefined, web);
  if (listen.ignoredLegacyPort !== undefined) {
    exporter.log.warn(
      { variable: LEGACY_PORT_VARIABLE, value: listen.ignoredLegacyPort },
      `ignoring a port variable that is not a number, such as Kubernetes sets for a Service named like the exporter; use ${WEB_LISTEN_ADDRESS_VARIABLE}`,
    );
  }
  const reloader = new ConfigReloader(exporter, load);
  try {
    await exporter.serve(options["web.enableLifecycle"] ? [reloadRoute(reloader)] : []);
  } catch (err) {
    await exporter.close();
    throw err;
  }
  onSighup = () => void reloader.reload("SIGHUP");
  if (heldReload) onSighup();
  let closing = false;
  const shutdown = (signal: string) => {
    if (closing) return;
    closing = true;
    exporter.log.info({ signal }, "shutting down");
    // The last resort, should anything (a source that will not stop) outlast close()'s own deadline.
    setTimeout(() => {
      exporter.log.error({ shutdownTimeoutSeconds: config.http.shutdownTimeout }, "shutdown did not finish within its deadline; exiting anyway");
      process.exit(EXIT_CODES.failed);
    }, config.http.shutdownTimeout * 1000);
    exporter.close().then(
      () => process.exit(EXIT_CODES.ok),
      (err: unknown) => {
        exporter.log.error({ err }, "shutdown failed");
        process.exit(EXIT_CODES.failed);
      },
    );
  };
  process.once("SIGTERM", shutdown);
  process.once("SIGINT", shutdown);
}

async function check(options: CheckOptions): Promise<ExitCode> {
  // Validated with the file's own logLevel, as `serve` would; check's quieter default applies after.
  const config = await loadCommandConfig(options.config, overrides(options));
  const { Exporter } = await loadApp();
  const exporter = await Exporter.forScan({ ...config, logLevel: options.logLevel === undefined ? CHECK_LOG_LEVEL : config.logLevel });
  let scanFailures;
  try {
    if (exporter.sources.length === 0) throw new ConfigError("nothing to check: no source is configured; give --file, --kubeconfig-file or a configuration file with sources");
    scanFailures = await exporter.scanOnce();
  } finally {
    await exporter.close();
  }
  const report = checkReport(exporter.inventory, {
    warnDays: options.warnDays,
    format: options.output,
    failOnReadErrors: !options.ignoreReadErrors,
    scanFailures,
    countSuperseded: !config.metrics.markSuperseded,
  });
  process.stdout.write(report.output);
  for (const { source, message } of report.unscanned) complain(`the ${source} source could not be scanned: ${message}`);
  return report.exitCode;
}

/** Commander's error as one line: `unknown command 'chek' (did you mean check?)`. */
function oneLine(commanderError: string): string {
  return commanderError
    .trim()
    .replace(/^error: /, "")
    .replace(/\s*\n\(Did you mean/, " (did you mean")
    .replace(/\s*\n\s*/g, " ");
}

export function buildProgram(): Command {
  const program = new Command(PROGRAM)
    .description("Prometheus exporter for the expiry of X.509 certificates in files, kubeconfigs, Kubernetes Secrets and TLS endpoints")
    .version(VERSION)
    .configureOutput({ outputError: (message, write) => write(`${PROGRAM}: ${oneLine(message)}\n`) })
    .exitOverride();
  addServeOptions(addCommonOptions(program.command("serve").description("run the exporter; the command when none is given")))
    .action((options: ServeOptions, command: Command) => serve(options, command));
  addCommonOptions(program.command("check").description("scan once, print the certificates soonest to expire, exit 1 when any is due or unreadable"))
    .addOption(new Option("-o, --output <format>", "table or json").choices(["table", "json"]).default("table"))
    .addOption(new Option("--warn-days <days>", "exit 1 when a certificate expires within this many days").argParser(integer).default(DEFAULT_THRESHOLDS.warningDays))
    .addOption(new Option("--ignore-read-errors", "list read errors, but do not fail on them"))
    // Read errors fail by default now; the flag that asked for it stays accepted for older scripts.
    .addOption(new Option("--fail-on-error").hideHelp().conflicts("ignoreReadErrors"))
    .action(async (options: CheckOptions) => {
      process.exitCode = await check(options);
    });
  return program;
}

/** `serve` is the command when none is named: no arguments, or the first is an option. */
function withDefaultCommand(argv: readonly string[]): string[] {
  const args = argv.slice(2);
  const first = args[0];
  const named = first !== undefined && (!first.startsWith("-") || PROGRAM_OPTIONS.has(first));
  return named ? [...argv] : [...argv.slice(0, 2), "serve", ...args];
}

/**
 * Runs the command line; exit codes are EXIT_CODES. Whatever fails reaches the user as one line on
 * stderr, never a stack trace.
 */
export async function main(argv: readonly string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(withDefaultCommand(argv));
  } catch (err) {
    // Commander has printed its own line (configureOutput above); help and version exit 0.
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode === 0 ? EXIT_CODES.ok : EXIT_CODES.usage;
      return;
    }
    complain(err instanceof Error ? err.message : String(err));
    process.exitCode = err instanceof ConfigError ? EXIT_CODES.usage : EXIT_CODES.failed;
  }
}
