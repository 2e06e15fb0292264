import { hostname as osHostname } from "node:os";
import type { ShardConfig } from "./config.js";
import { ConfigError } from "./errors.js";

/**
 * Sharding: several replicas split the work of one cluster, each reading its own share.
 *
 * Contract (for the sources that call it):
 * - The key of a namespaced object is its **namespace name**, so one replica owns every Secret of a
 *   namespace and can list and watch that namespace alone. The key of a TLS endpoint is its
 *   **`host:port`** as exported in the `name` label. The key of a cluster-scoped object holding
 *   certificates (a webhook configuration, an APIService, a CRD, a CSR) is its **name**; every replica
 *   lists and watches those kinds and keeps only its share.
 * - `owns(key)` is a pure function of the key, `index` and `count`: the same on every replica, in every
 *   process, on every version (the golden values in test/shard.test.ts hold it to that), so exactly one
 *   replica owns each key and the replicas never need to talk to each other.
 * - The hash is Jump Consistent Hash (Lamping and Veach, 2014) over the 64-bit FNV-1a hash of the key's
 *   UTF-8 bytes. Keys spread evenly, and when `count` grows from n to n + 1 only about 1/(n + 1) of
 *   the keys move, all of them to the new replica.
 * - With `count` 1 (the default) every key is owned, and sharding costs nothing.
 */
export interface Shard {
  readonly index: number;
  readonly count: number;
  /** True when this replica is responsible for `key`. */
  owns(key: string): boolean;
}

const FNV64_OFFSET = 0xcbf29ce484222325n;
const FNV64_PRIME = 0x100000001b3n;
const MASK64 = 0xffffffffffffffffn;

/** One replica that owns everything: what every process is without a `shard` setting. */
export const UNSHARDED: Shard = Object.freeze({ index: 0, count: 1, owns: () => true });

/** 64-bit FNV-1a of the UTF-8 bytes of `key`. */
export function fnv1a64(key: string): bigint {
  let hash = FNV64_OFFSET;
  for (const byte of Buffer.from(key, "utf8")) {
    hash ^= BigInt(byte);
    hash = (hash * FNV64_PRIME) & MASK64;
  }
  return hash;
}

/** Jump Consistent Hash: the bucket in [0, buckets) of a 64-bit key. */
export function jumpHash(key: bigint, buckets: number): number {
  if (!Number.isInteger(buckets) || buckets < 1) throw new RangeError(`buckets must be a positive integer, got ${buckets}`);
  let k = key & MASK64;
  let b = -1;
  let j = 0;
  while (j < buckets) {
    b = j;
    k = (k * 2862933555777941757n + 1n) & MASK64;
    j = Math.floor((b + 1) * (2 ** 31 / (Number(k >> 33n) + 1)));
  }
  return b;
}

/** The replica (0-based) that owns `key` among `count` replicas. */
export function shardOf(key: string, count: number): number {
  return count === 1 ? 0 : jumpHash(fnv1a64(key), count);
}

/** True when replica `index` of `count` owns `key`. */
export function shardOwns(key: string, shard: { index: number; count: number }): boolean {
  return shardOf(key, shard.count) === shard.index;
}

/** The ordinal of a StatefulSet pod from its host name (`cert-expiry-exporter-2` → 2), or undefined. */
export function ordinalFromHostname(hostname: string): number | undefined {
  const match = /-(\d+)$/.exec(hostname.split(".")[0] ?? "");
  return match ? Number(match[1]) : undefined;
}

/**
 * The shard of this process: `shard.index` when the configuration gives it, else the StatefulSet
 * ordinal at the end of the host name (a StatefulSet pod's HOSTNAME is its pod name). A count above
 * 1 without either, or an ordinal outside [0, count), is a ConfigError: a replica that silently
 * owned nothing, or everything, would lose or duplicate series.
 */
export function resolveShard(config: ShardConfig, hostname: string = process.env.HOSTNAME ?? osHostname()): Shard {
  const { count } = config;
  let index = config.index;
  if (index === undefined) {
    if (count === 1) index = 0;
    else {
      index = ordinalFromHostname(hostname);
      if (index === undefined) {
        throw new ConfigError(`shard.index: not set, and the host name "${hostname}" does not end in a StatefulSet ordinal (-<n>)`);
      }
    }
  }
  if (index >= count) {
    throw new ConfigError(`shard.index: ${index} is not below shard.count ${count}${config.index === undefined ? ` (ordinal of host name "${hostname}")` : ""}`);
  }
  const shard = { index, count };
  return { ...shard, owns: (key: string) => shardOwns(key, shard) };
}
