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

t.test("the README and docs link only to files inside the repository, and those exist", async (t) => {
  const { readdirSync, existsSync } = await import("node:fs");
  const { dirname, resolve, relative } = await import("node:path");
  const root = join(import.meta.dirname, "..");
  const pages = ["README.md", ...readdirSync(join(root, "docs")).filter((f) => f.endsWith(".md")).map((f) => `docs/${f}`)];
  for (const page of pages) {
    const text = readFileSync(join(root, page), "utf8");
    for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^(https?:|mailto:)/.test(target as string)) {
        t.fail(`${page} links outside the repository: ${target}`);
        continue;
      }
      const path = (target as string).split("#")[0] as string;
      if (!path) continue;
      // A page read outside its folder (a copy of docs/, a package page) must not lead upwards.
      t.notOk(path.startsWith("../"), `${page}: ${target} does not climb out of the page's folder`);
      const absolute = resolve(dirname(join(root, page)), path);
      t.notOk(relative(root, absolute).startsWith(".."), `${page}: ${target} stays inside the repository`);
      t.ok(existsSync(absolute), `${page}: ${target} exists`);
    }
  }
});
