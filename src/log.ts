import { pino, destination, type Logger, type LevelWithSilent } from "pino";

export type { Logger };

/** JSON lines on stderr, so `check` can keep stdout for its report. */
export function createLogger(level: LevelWithSilent = "info"): Logger {
  return pino({ level, base: { name: "cert-expiry-exporter" } }, destination(2));
}
