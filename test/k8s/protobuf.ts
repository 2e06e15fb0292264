/**
 * Decoder for the Kubernetes protobuf wire format of request bodies. kubectl's typed clients
 * (`kubectl create namespace`, `kubectl create secret ...`, `kubectl create configmap`) send
 * `application/vnd.kubernetes.protobuf` bodies; the double answers in JSON, which those clients accept.
 * Only the messages below are known; anything else is answered 415 by the caller.
 */

type FieldType = "string" | "bytes" | "int" | "bool" | "time" | Schema;
interface Field {
  name: string;
  type: FieldType;
  repeated?: boolean;
  /** map<string, value>: the wire form is repeated {1: key, 2: value} entries. */
  map?: boolean;
}
type Schema = Record<number, Field>;

const OWNER_REFERENCE: Schema = {
  1: { name: "kind", type: "string" },
  3: { name: "name", type: "string" },
  4: { name: "uid", type: "string" },
  5: { name: "apiVersion", type: "string" },
  6: { name: "controller", type: "bool" },
  7: { name: "blockOwnerDeletion", type: "bool" },
};

const OBJECT_META: Schema = {
  1: { name: "name", type: "string" },
  2: { name: "generateName", type: "string" },
  3: { name: "namespace", type: "string" },
  5: { name: "uid", type: "string" },
  6: { name: "resourceVersion", type: "string" },
  7: { name: "generation", type: "int" },
  8: { name: "creationTimestamp", type: "time" },
  11: { name: "labels", type: "string", map: true },
  12: { name: "annotations", type: "string", map: true },
  13: { name: "ownerReferences", type: OWNER_REFERENCE, repeated: true },
  14: { name: "finalizers", type: "string", repeated: true },
};

const SCHEMAS: Record<string, Schema> = {
  Secret: {
    1: { name: "metadata", type: OBJECT_META },
    2: { name: "data", type: "bytes", map: true },
    3: { name: "type", type: "string" },
    4: { name: "stringData", type: "string", map: true },
    5: { name: "immutable", type: "bool" },
  },
  ConfigMap: {
    1: { name: "metadata", type: OBJECT_META },
    2: { name: "data", type: "string", map: true },
    3: { name: "binaryData", type: "bytes", map: true },
    4: { name: "immutable", type: "bool" },
  },
  Namespace: {
    1: { name: "metadata", type: OBJECT_META },
    2: { name: "spec", type: { 1: { name: "finalizers", type: "string", repeated: true } } },
    3: { name: "status", type: { 1: { name: "phase", type: "string" } } },
  },
};

export class ProtobufError extends Error {}

interface Raw {
  field: number;
  wire: number;
  /** varint value, or the bytes of a length-delimited field. */
  value: bigint | Buffer;
}

function readVarint(buf: Buffer, pos: number): [bigint, number] {
  let result = 0n;
  let shift = 0n;
  for (;;) {
    if (pos >= buf.length) throw new ProtobufError("truncated varint");
    const b = buf[pos++]!;
    result |= BigInt(b & 0x7f) << shift;
    if (!(b & 0x80)) return [result, pos];
    shift += 7n;
    if (shift > 70n) throw new ProtobufError("varint too long");
  }
}

function readFields(buf: Buffer): Raw[] {
  const out: Raw[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const [key, p1] = readVarint(buf, pos);
    pos = p1;
    const field = Number(key >> 3n);
    const wire = Number(key & 7n);
    if (wire === 0) {
      const [v, p2] = readVarint(buf, pos);
      out.push({ field, wire, value: v });
      pos = p2;
    } else if (wire === 2) {
      const [len, p2] = readVarint(buf, pos);
      const end = p2 + Number(len);
      if (end > buf.length) throw new ProtobufError("truncated field");
      out.push({ field, wire, value: buf.subarray(p2, end) });
      pos = end;
    } else if (wire === 1) pos += 8;
    else if (wire === 5) pos += 4;
    else throw new ProtobufError(`unsupported wire type ${wire}`);
  }
  return out;
}

function scalar(type: FieldType, r: Raw): unknown {
  if (typeof type === "object") return decodeMessage(r.value as Buffer, type);
  switch (type) {
    case "string":
      return (r.value as Buffer).toString("utf8");
    case "bytes":
      return Buffer.from(r.value as Buffer).toString("base64");
    case "int":
      return Number(BigInt.asIntN(64, r.value as bigint));
    case "bool":
      return r.value !== 0n;
    case "time": {
      const b = r.value as Buffer;
      if (!b.length) return undefined;
      const f = readFields(b);
      const seconds = Number(f.find((x) => x.field === 1)?.value ?? 0n);
      return new Date(seconds * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");
    }
  }
}

/** Zero values are dropped, like JSON omitempty. */
function decodeMessage(buf: Buffer, schema: Schema): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const r of readFields(buf)) {
    const f = schema[r.field];
    if (!f) continue;
    if (f.map) {
      const entry = readFields(r.value as Buffer);
      const k = entry.find((e) => e.field === 1);
      const v = entry.find((e) => e.field === 2);
      const m = (out[f.name] ??= {}) as Record<string, unknown>;
      m[k ? (k.value as Buffer).toString("utf8") : ""] = v ? scalar(f.type, v) : f.type === "bytes" || f.type === "string" ? "" : undefined;
      continue;
    }
    const v = scalar(f.type, r);
    if (f.repeated) ((out[f.name] ??= []) as unknown[]).push(v);
    else if (v !== undefined && v !== "" && v !== 0 && v !== false) out[f.name] = v;
  }
  return out;
}

const MAGIC = Buffer.from([0x6b, 0x38, 0x73, 0x00]);

/** Decodes a `k8s\0`-prefixed runtime.Unknown envelope into the JSON form of the object. */
export function decodeK8sProtobuf(body: Buffer): Record<string, unknown> {
  if (!body.subarray(0, 4).equals(MAGIC)) throw new ProtobufError("missing k8s protobuf magic prefix");
  const env = readFields(body.subarray(4));
  const typeMeta = env.find((f) => f.field === 1);
  const raw = env.find((f) => f.field === 2);
  const tm = typeMeta ? readFields(typeMeta.value as Buffer) : [];
  const apiVersion = (tm.find((f) => f.field === 1)?.value as Buffer | undefined)?.toString("utf8") ?? "";
  const kind = (tm.find((f) => f.field === 2)?.value as Buffer | undefined)?.toString("utf8") ?? "";
  const schema = SCHEMAS[kind];
  if (!schema) throw new ProtobufError(`no protobuf schema for kind ${JSON.stringify(kind)} in the double; send JSON`);
  const obj = decodeMessage((raw?.value as Buffer | undefined) ?? Buffer.alloc(0), schema);
  return { apiVersion, kind, metadata: {}, ...obj };
}
