import { pino, destination, stdSerializers, stdTimeFunctions, type DestinationStream, type Logger, type LevelWithSilent } from "pino";
import type { Config } from "./config.js";
import { logfmtLine } from "./logfmt.js";

export type { Logger };

export type LogFormat = Config["logFormat"];

/** pino's JSON lines, rewritten as logfmt on their way to `sink`. */
function logfmtDestination(sink: DestinationStream): DestinationStream {
  return { write: (line: string) => sink.write(`${logfmtLine(JSON.parse(line) as Record<string, unknown>)}\n`) };
}

/** A serialized error without its stack, nor those of its causes. */
function withoutStacks(serialized: unknown): unknown {
  if (!serialized || typeof serialized !== "object") return serialized;
  const copy: Record<string, unknown> = { ...serialized };
  delete copy.stack;
  if (copy.cause !== undefined) copy.cause = withoutStacks(copy.cause);
  if (Array.isArray(copy.aggregateErrors)) copy.aggregateErrors = copy.aggregateErrors.map(withoutStacks);
  return copy;
}

/**
 * Logs on stderr, so `check` can keep stdout for its report: JSON lines or logfmt, with the level
 * as a word and the time in ISO 8601. There is no logger name in the record: `name` is the location
 * (file path, Secret) of the lines that are about one. An error's stack is logged only at debug and
 * trace; at other levels its type and message say enough, and a stack reads as a crash.
 */
export function createLogger(level: LevelWithSilent = "info", format: LogFormat = "json"): Logger {
  const stderr = destination(2);
  const logger: Logger = pino(
    {
      level,
      base: null,
      timestamp: stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      serializers: {
        err: (err: unknown) => {
          const serialized = stdSerializers.err(err as Error) as unknown;
          return logger.isLevelEnabled("debug") ? serialized : withoutStacks(serialized);
        },
      },
    },
    format === "logfmt" ? logfmtDestination(stderr) : stderr,
  );
  return logger;
}
