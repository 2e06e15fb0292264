// `node --import <this file>`: appends every module the process loads to the file RECORD_LOADS names,
// one file URL or path a line: ES modules as the loader resolves them (record-loads-hooks.mjs), and
// CommonJS ones from require.cache when the process exits. Plain JavaScript, for compiled children.
import { appendFileSync } from "node:fs";
import { createRequire, register } from "node:module";

const out = process.env.RECORD_LOADS;
if (out) {
  register(new URL("./record-loads-hooks.mjs", import.meta.url), { data: { out } });
  const { cache } = createRequire(import.meta.url);
  process.on("exit", () => appendFileSync(out, Object.keys(cache).map((path) => `${path}\n`).join("")));
}
