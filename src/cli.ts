#!/usr/bin/env node
import { PROGRAM, main } from "./commands.js";
import { EXIT_CODES } from "./exit-codes.js";

// Whatever escapes everything else is still one line, not a stack trace.
process.on("uncaughtException", (err) => {
  process.stderr.write(`${PROGRAM}: internal error: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(EXIT_CODES.failed);
});

await main(process.argv);
