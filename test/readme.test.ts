import { readFileSync } from "node:fs";
import { join } from "node:path";
import t from "tap";
import { parse as parseYaml } from "yaml";
import { validateConfig } from "../src/config.js";

const readme = readFileSync(join(import.meta.dirname, "..", "README.md"), "utf8");

t.test("every YAML configuration example in the README is a valid configuration", async (t) => {
  const blocks = [...readme.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1] as string);
  t.ok(blocks.length >= 3, "the README shows its configuration examples");
  for (const block of blocks) t.doesNotThrow(() => validateConfig(parseYaml(block)), block.split("\n")[0] ?? "");
});

t.test("every CLI flag is documented in the README", async (t) => {
  const commands = readFileSync(join(import.meta.dirname, "..", "src", "commands.ts"), "utf8");
  const flags = [...commands.matchAll(/"(?:-\w, )?(--[a-z-]+)/g)].map((m) => m[1] as string);
  t.ok(flags.length >= 8);
  for (const flag of new Set(flags)) t.match(readme, new RegExp(`(\`|, )${flag}\\b`), `${flag} is documented`);
});
