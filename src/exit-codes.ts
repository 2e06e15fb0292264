/** The process's exit codes: a contract with scripts and pipelines, listed in the README. */
export const EXIT_CODES = {
  /** check: nothing is due. serve: stopped cleanly. */
  ok: 0,
  /** check: a certificate is due or a location could not be read. serve: a failure while running. */
  failed: 1,
  /** A usage or configuration error, a listen address that cannot be used among them. */
  usage: 2,
  /** check: a source could not be scanned at all. */
  unscanned: 3,
} as const;

export type ExitCode = (typeof EXIT_CODES)[keyof typeof EXIT_CODES];
