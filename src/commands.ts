import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { checkReport } from "./check.js";
import { DEFAULT_THRESHOLDS } from "./report.js";
import { ConfigError, loadConfig, type ConfigOverrides } from "./config.js";
import { VERSION } from "./version.js";

const ENV_PREFIX = "CERT_EXPIRY_EXPORTER_";

/** The exporter itself loads only once a command runs, so usage and config errors answer at once. */
const loadApp = () => import("./app.js");

function integer(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError("expected a whole number");
  return Number(value);
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

interface CommonOptions {
  config?: string;
  listenAddress?: string;
  port?: number;
  logLevel?: string;
  file?: string[];
  kubeconfigFile?: string[];
  kubeconfig?: string;
  context?: string;
}

/** Options that `serve` and `check` share: the config file and what may override it. */
function addCommonOptions(command: Command): Command {
  return command
    .addOption(new Option("-c, --config <path>", "YAML configuration file").env(`${ENV_PREFIX}CONFIG`))
    .addOption(new Option("--listen-address <address>", "address to listen on (default 0.0.0.0)").env(`${ENV_PREFIX}LISTEN_ADDRESS`))
    .addOption(new Option("--port <port>", "port to listen on (default 9798)").argParser(integer).env(`${ENV_PREFIX}PORT`))
    .addOption(new Option("--log-level <level>", "fatal, error, warn, info, debug, trace or silent (default info)").env(`${ENV_PREFIX}LOG_LEVEL`))
    .addOption(new Option("--file <glob>", "certificate file path or glob; repeatable").argParser(collect))
    .addOption(new Option("--kubeconfig-file <glob>", "kubeconfig file path or glob; repeatable").argParser(collect))
    .addOption(new Option("--kubeconfig <path>", "kubeconfig for the Kubernetes API (default: KUBECONFIG, in-cluster service account, ~/.kube/config)"))
    .addOption(new Option("--context <name>", "kubeconfig context for the Kubernetes API (default: the current context)"));
}

function overrides(options: CommonOptions): ConfigOverrides {
  return {
    listenAddress: options.listenAddress,
    port: options.port,
    logLevel: options.logLevel,
    files: options.file,
    kubeconfigFiles: options.kubeconfigFile,
    kubeconfig: options.kubeconfig,
    kubeContext: options.context,
  };
}

async function serve(options: CommonOptions): Promise<void> {
  const config = loadConfig(options.config, overrides(options));
  const { Exporter } = await loadApp();
  const exporter = await Exporter.create(config);
  await exporter.serve();
  let closing = false;
  const shutdown = (signal: string) => {
    if (closing) return;
    closing = true;
    exporter.log.info({ signal }, "shutting down");
    // The last resort, should anything (a source that will not stop) outlast close()'s own deadline.
    setTimeout(() => {
      exporter.log.error({ shutdownTimeoutSeconds: config.http.shutdownTimeout }, "shutdown did not finish within its deadline; exiting anyway");
      process.exit(1);
    }, config.http.shutdownTimeout * 1000);
    exporter.close().then(
      () => process.exit(0),
      (err: unknown) => {
        exporter.log.error({ err }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.once("SIGTERM", shutdown);
  process.once("SIGINT", shutdown);
}

interface CheckCliOptions extends CommonOptions {
  output: "table" | "json";
  warnDays: number;
  failOnError?: boolean;
}

async function check(options: CheckCliOptions): Promise<number> {
  const config = loadConfig(options.config, { ...overrides(options), logLevel: options.logLevel ?? "warn" });
  const { Exporter } = await loadApp();
  const exporter = await Exporter.create(config);
  await exporter.scanOnce();
  const report = checkReport(exporter.inventory, { warnDays: options.warnDays, format: options.output, failOnError: options.failOnError ?? false });
  process.stdout.write(report.output);
  return report.exitCode;
}

export function buildProgram(): Command {
  const program = new Command("cert-expiry-exporter")
    .description("Prometheus exporter for the expiry of X.509 certificates in files, kubeconfigs, Kubernetes Secrets and TLS endpoints")
    .version(VERSION)
    .exitOverride();
  addCommonOptions(program.command("serve", { isDefault: true }).description("run the exporter (default)")).action(serve);
  addCommonOptions(program.command("check").description("scan once, print the certificates soonest to expire, exit 1 when any is due"))
    .addOption(new Option("-o, --output <format>", "table or json").choices(["table", "json"]).default("table"))
    .addOption(new Option("--warn-days <days>", "exit 1 when a certificate expires within this many days").argParser(integer).default(DEFAULT_THRESHOLDS.warningDays))
    .option("--fail-on-error", "also exit 1 when any location cannot be read")
    .action(async (options: CheckCliOptions) => {
      process.exitCode = await check(options);
    });
  return program;
}

/** Exit codes: 0 fine, 1 certificates due (check), 2 configuration or usage error. */
export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode === 0 ? 0 : 2;
      return;
    }
    if (err instanceof ConfigError) {
      process.stderr.write(`configuration error:\n${err.message}\n`);
      process.exitCode = 2;
      return;
    }
    throw err;
  }
}

