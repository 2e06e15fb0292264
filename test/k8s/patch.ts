/** JSON merge patch (RFC 7386) and JSON patch (RFC 6902), enough for kubectl label/annotate/patch. */

type Json = unknown;

const isObj = (v: unknown): v is Record<string, unknown> => !!v && typeof v === "object" && !Array.isArray(v);

export function mergePatch(target: Json, patch: Json): Json {
  if (!isObj(patch)) return patch;
  const out: Record<string, unknown> = isObj(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

/** Merge keys of the lists the double's types have (strategic merge patch); other lists are replaced. */
const MERGE_KEYS: Record<string, string> = { ports: "port", containers: "name", initContainers: "name", volumes: "name", env: "name", conditions: "type" };

/**
 * Strategic merge patch, simplified: a JSON merge patch that merges the known keyed lists element by
 * element, honours `$patch: delete|replace` on maps, and drops the other directives
 * (`$setElementOrder/…`, `$retainKeys`, `$deleteFromPrimitiveList/…`) as kubectl apply sends them.
 */
export function strategicMergePatch(target: Json, patch: Json, field = ""): Json {
  if (Array.isArray(patch)) {
    const key = MERGE_KEYS[field];
    if (!key || !Array.isArray(target) || !patch.every((p) => isObj(p) && key in p)) return patch.filter((p) => !(isObj(p) && p.$patch === "delete"));
    const out = [...target];
    for (const p of patch as Record<string, unknown>[]) {
      const i = out.findIndex((t) => isObj(t) && t[key] === p[key]);
      if (p.$patch === "delete") {
        if (i >= 0) out.splice(i, 1);
      } else if (i >= 0) out[i] = strategicMergePatch(out[i], p);
      else out.push(strategicMergePatch(undefined, p));
    }
    return out;
  }
  if (!isObj(patch)) return patch;
  if (patch.$patch === "delete") return undefined;
  const base: Record<string, unknown> = patch.$patch === "replace" ? {} : isObj(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (k.startsWith("$")) continue;
    if (v === null) delete base[k];
    else {
      const merged = strategicMergePatch(base[k], v, k);
      if (merged === undefined) delete base[k];
      else base[k] = merged;
    }
  }
  return base;
}

export class PatchError extends Error {}

function decodePointer(path: string): string[] {
  if (path === "") return [];
  if (!path.startsWith("/")) throw new PatchError(`invalid JSON pointer: ${path}`);
  return path
    .slice(1)
    .split("/")
    .map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"));
}

interface Op {
  op: string;
  path: string;
  value?: unknown;
  from?: string;
}

function parentOf(doc: unknown, tokens: string[]): { parent: Record<string, unknown> | unknown[]; key: string } {
  let cur: unknown = doc;
  for (const t of tokens.slice(0, -1)) {
    if (Array.isArray(cur)) cur = cur[Number(t)];
    else if (isObj(cur)) cur = cur[t];
    else cur = undefined;
    if (cur === undefined) throw new PatchError(`doc is missing path: ${tokens.join("/")}`);
  }
  if (!isObj(cur) && !Array.isArray(cur)) throw new PatchError(`doc is missing path: ${tokens.join("/")}`);
  return { parent: cur, key: tokens[tokens.length - 1]! };
}

function get(doc: unknown, tokens: string[]): unknown {
  if (!tokens.length) return doc;
  const { parent, key } = parentOf(doc, tokens);
  return Array.isArray(parent) ? parent[Number(key)] : parent[key];
}

function remove(doc: unknown, tokens: string[]): unknown {
  const { parent, key } = parentOf(doc, tokens);
  if (Array.isArray(parent)) return parent.splice(Number(key), 1)[0];
  if (!(key in parent)) throw new PatchError(`unable to remove nonexistent key: ${key}: missing value`);
  const v = parent[key];
  delete parent[key];
  return v;
}

function add(doc: unknown, tokens: string[], value: unknown, replace: boolean): unknown {
  if (!tokens.length) return value;
  const { parent, key } = parentOf(doc, tokens);
  if (Array.isArray(parent)) {
    const i = key === "-" ? parent.length : Number(key);
    if (replace) parent[i] = value;
    else parent.splice(i, 0, value);
  } else {
    if (replace && !(key in parent)) throw new PatchError(`replace operation does not apply: doc is missing key: ${tokens.join("/")}`);
    parent[key] = value;
  }
  return doc;
}

export function jsonPatch(doc: Json, ops: unknown): Json {
  if (!Array.isArray(ops)) throw new PatchError("json patch must be an array of operations");
  let out: unknown = structuredClone(doc);
  for (const raw of ops as Op[]) {
    const tokens = decodePointer(raw.path);
    switch (raw.op) {
      case "add":
        out = add(out, tokens, structuredClone(raw.value), false);
        break;
      case "replace":
        out = add(out, tokens, structuredClone(raw.value), true);
        break;
      case "remove":
        remove(out, tokens);
        break;
      case "move":
      case "copy": {
        const from = decodePointer(raw.from ?? "");
        const v = raw.op === "move" ? remove(out, from) : structuredClone(get(out, from));
        out = add(out, tokens, v, false);
        break;
      }
      case "test":
        if (JSON.stringify(get(out, tokens)) !== JSON.stringify(raw.value)) throw new PatchError(`testing value ${raw.path} failed: test failed`);
        break;
      default:
        throw new PatchError(`Unexpected kind: ${String(raw.op)}`);
    }
  }
  return out;
}
