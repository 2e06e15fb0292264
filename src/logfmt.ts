import { visibleText } from "./report.js";

/** Written first, in this order, as Go's logfmt loggers do; the other fields follow in record order. */
const LEADING_KEYS = ["time", "level", "msg"];

/** A key is a bare word: anything else in one becomes `_`. */
function bareKey(key: string): string {
  return key.replace(/[^A-Za-z0-9_.:/-]/g, "_") || "_";
}

/**
 * A value bare when that is unambiguous, else quoted: a quote or backslash is escaped, and so is
 * every control character, line separator and bidirectional override, so a hostile file name can
 * neither end the line nor forge a field nor make the line read backwards.
 */
function logfmtValue(text: string): string {
  const escaped = visibleText(text);
  if (text !== "" && escaped === text && !/[\s="]/.test(text)) return text;
  return `"${escaped.replace(/"/g, '\\"')}"`;
}

function scalarText(value: unknown): string {
  return typeof value === "string" ? value : value === undefined ? "" : JSON.stringify(value) ?? String(value);
}

/** `key=value` pairs of one field; an object becomes one pair per member, named `key.member`. */
function pairs(key: string, value: unknown, out: string[]): void {
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    for (const [member, inner] of Object.entries(value)) pairs(`${key}.${member}`, inner, out);
    return;
  }
  const text = Array.isArray(value) && value.every((item) => item === null || typeof item !== "object") ? value.map(scalarText).join(",") : scalarText(value);
  out.push(`${bareKey(key)}=${logfmtValue(text)}`);
}

/** One log record as one logfmt line (without the newline). */
export function logfmtLine(record: Record<string, unknown>): string {
  const out: string[] = [];
  for (const key of LEADING_KEYS) if (key in record) pairs(key, record[key], out);
  for (const [key, value] of Object.entries(record)) if (!LEADING_KEYS.includes(key)) pairs(key, value, out);
  return out.join(" ");
}
