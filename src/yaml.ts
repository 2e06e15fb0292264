/**
 * YAML to plain data for the configuration file and kubeconfigs, with bounded work: the yaml
 * library's own duplicate-key check compares every key with every other (quadratic in a large
 * mapping), so it is off and duplicates are found here with one Set per mapping; aliases are capped.
 */
import { createRequire } from "node:module";
import type * as Yaml from "yaml";

/**
 * The yaml library, loaded on first use: `check --file` and a file-only `serve` never parse YAML.
 * It is CommonJS under Node, so require() returns the very module an import would.
 */
let library: typeof Yaml | undefined;
const yaml = (): typeof Yaml => (library ??= createRequire(import.meta.url)("yaml") as typeof Yaml);

/** A YAML problem, named by its code and line; never quotes the text (a kubeconfig holds secrets). */
export class YamlError extends Error {
  readonly code: string;

  constructor(code: string, message: string) {
    super(message);
    this.name = "YamlError";
    this.code = code;
  }
}

/** Alias nodes one document may expand; "billion laughs" documents need far more. */
const MAX_ALIAS_COUNT = 100;

function lineOf(text: string, offset: number): number {
  let line = 1;
  for (let i = text.indexOf("\n"); i >= 0 && i < offset; i = text.indexOf("\n", i + 1)) line++;
  return line;
}

/** Parses one YAML document into plain data. Throws YamlError on syntax errors and duplicate keys. */
export function loadYaml(text: string): unknown {
  let doc;
  try {
    doc = yaml().parseDocument(text, { prettyErrors: false, uniqueKeys: false });
  } catch (err) {
    throw new YamlError("PARSE_FAILED", `cannot be parsed (${(err as Error).name})`);
  }
  const error = doc.errors[0];
  if (error) throw new YamlError(error.code, `${error.code} at line ${lineOf(text, error.pos[0])}`);
  let duplicate: { key: string; offset: number } | undefined;
  const { visit } = yaml();
  visit(doc, {
    Map(_key, map) {
      const seen = new Set<unknown>();
      for (const pair of map.items) {
        const key = pair.key as { value?: unknown; range?: [number, number, number] } | null;
        // Collections as keys cannot be compared cheaply; YAML allows them, kubeconfigs never use them.
        const value = key && typeof key === "object" && "value" in key ? key.value : key;
        if (typeof value === "object" && value !== null) continue;
        if (seen.has(value)) {
          duplicate = { key: String(value), offset: key?.range?.[0] ?? 0 };
          return visit.BREAK;
        }
        seen.add(value);
      }
      return undefined;
    },
  });
  if (duplicate) throw new YamlError("DUPLICATE_KEY", `DUPLICATE_KEY at line ${lineOf(text, duplicate.offset)}`);
  try {
    return doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch (err) {
    const code = (err as { code?: string }).code;
    throw new YamlError(code ?? "LOAD_FAILED", `cannot be loaded${code ? ` (${code})` : ""}`);
  }
}
