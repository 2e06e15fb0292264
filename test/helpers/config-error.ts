import { ConfigError, validateConfig } from "../../src/config.js";

/** The ConfigError message `raw` gets from validation, or "" when it is valid; anything else is thrown. */
export function configErrorOf(raw: unknown): string {
  try {
    validateConfig(raw);
  } catch (err) {
    if (err instanceof ConfigError) return err.message;
    throw err;
  }
  return "";
}
