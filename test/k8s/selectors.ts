/**
 * Label and field selectors with the syntax and the error behaviour of the Kubernetes API server
 * (k8s.io/apimachinery/pkg/labels and pkg/fields).
 */

export type Labels = Record<string, string> | undefined;

export type LabelRequirement =
  | { op: "=" | "!="; key: string; value: string }
  | { op: "in" | "notin"; key: string; values: string[] }
  | { op: "exists" | "!exists"; key: string };

export class SelectorError extends Error {}

/** Splits on commas that are not inside parentheses. */
function splitTopLevel(s: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let cur = "";
  for (const ch of s) {
    if (ch === "(") depth++;
    if (ch === ")") depth--;
    if (ch === "," && depth === 0) {
      parts.push(cur);
      cur = "";
    } else cur += ch;
  }
  parts.push(cur);
  return parts;
}

const KEY = /^([a-z0-9A-Z]([-a-z0-9A-Z.]*[a-z0-9A-Z])?\/)?[a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?$/;
const VALUE = /^([a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?)?$/;

function checkKey(key: string): string {
  if (!KEY.test(key)) throw new SelectorError(`unable to parse requirement: invalid label key "${key}"`);
  return key;
}

function checkValue(value: string): string {
  if (!VALUE.test(value) || value.length > 63) throw new SelectorError(`unable to parse requirement: invalid label value: "${value}"`);
  return value;
}

export function parseLabelSelector(selector: string | null | undefined): LabelRequirement[] {
  if (!selector || !selector.trim()) return [];
  return splitTopLevel(selector).map((raw) => {
    const part = raw.trim();
    let m: RegExpMatchArray | null;
    if ((m = part.match(/^(\S+?)\s+(in|notin)\s*\((.*)\)$/))) {
      const values = m[3]!.split(",").map((v) => checkValue(v.trim()));
      return { op: m[2] as "in" | "notin", key: checkKey(m[1]!), values };
    }
    if ((m = part.match(/^!\s*(\S+)$/))) return { op: "!exists", key: checkKey(m[1]!) };
    if ((m = part.match(/^([^=!\s]+)\s*(==|=|!=)\s*(\S*)$/))) {
      return { op: m[2] === "!=" ? "!=" : "=", key: checkKey(m[1]!), value: checkValue(m[3]!) };
    }
    if ((m = part.match(/^([^=!\s()]+)$/))) return { op: "exists", key: checkKey(m[1]!) };
    throw new SelectorError(`unable to parse requirement: found '${part}', expected: !, identifier, or 'end of string'`);
  });
}

export function matchLabels(reqs: LabelRequirement[], labels: Labels): boolean {
  const l = labels ?? {};
  return reqs.every((r) => {
    const has = Object.prototype.hasOwnProperty.call(l, r.key);
    const v = l[r.key];
    switch (r.op) {
      case "=":
        return has && v === r.value;
      case "!=":
        return !has || v !== r.value;
      case "in":
        return has && r.values.includes(v!);
      case "notin":
        return !has || !r.values.includes(v!);
      case "exists":
        return has;
      case "!exists":
        return !has;
    }
  });
}

export interface FieldRequirement {
  field: string;
  op: "=" | "!=";
  value: string;
}

/** Splits on an unescaped separator; fields.ParseSelector allows \, \= and \\ escapes in values. */
function splitUnescaped(s: string, sep: string): string[] {
  const out: string[] = [];
  let cur = "";
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    if (ch === "\\" && i + 1 < s.length) {
      cur += ch + s[i + 1];
      i++;
    } else if (ch === sep) {
      out.push(cur);
      cur = "";
    } else cur += ch;
  }
  out.push(cur);
  return out;
}

function unescapeField(v: string): string {
  return v.replace(/\\(.)/g, (_m, c: string) => {
    if (c === "\\" || c === "," || c === "=") return c;
    throw new SelectorError(`invalid field selector: invalid escape sequence: \\${c}`);
  });
}

export function parseFieldSelector(selector: string | null | undefined): FieldRequirement[] {
  if (!selector || !selector.trim()) return [];
  return splitUnescaped(selector, ",").map((part) => {
    const m = part.match(/^([^=!]+?)(!=|==|=)(.*)$/s);
    if (!m) throw new SelectorError(`invalid selector: '${selector}'; can't understand '${part}'`);
    return { field: m[1]!.trim(), op: m[2] === "!=" ? "!=" : "=", value: unescapeField(m[3]!) };
  });
}

export function matchFields(reqs: FieldRequirement[], fields: Record<string, string>): boolean {
  return reqs.every((r) => (r.op === "=" ? fields[r.field] === r.value : fields[r.field] !== r.value));
}
