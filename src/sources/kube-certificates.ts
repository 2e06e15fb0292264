import { createHash } from "node:crypto";
import type { KubeConfig } from "@kubernetes/client-node";
import type { CertList } from "../certs/record.js";
import type { LocationChecks } from "../checks.js";
import type { KubernetesConfig } from "../config.js";
import { decodeBase64 } from "../certs/base64.js";
import { CertReadError, toReadError } from "../errors.js";
import type { Location, SourceKind } from "../model.js";
import { KubeCollection, type KindDescriptor, type KubeObject } from "./kube-collection.js";
import type { LocationExtra, Source, SourceContext } from "./source.js";

/** The certificates at one location key of an object, or why they could not be read. */
export interface Found {
  key: string;
  result: CertList | CertReadError;
  /** Key and chain checks of a presented certificate (src/checks.ts). */
  checks?: LocationChecks;
}

/**
 * One Kubernetes kind that holds certificates: the collection's descriptor without its state, plus
 * how an object's certificates are found. `read` does the decoding; it never sees the inventory.
 */
export interface CertificateKind<T extends KubeObject> extends Omit<KindDescriptor<T, unknown>, "read" | "drop" | "stale" | "changed" | "refusalLocation"> {
  /** The `source` label of its certificates. */
  source: SourceKind;
  /** The `name` label of an object's locations; default its name. */
  locationName?(object: T): string;
  /** The object's name from the `name` label of one of its locations (locationName's inverse); undefined when not this kind's. */
  objectName?(locationName: string): string | undefined;
  read(object: T): Promise<Found[]> | Found[];
  extra?(object: T): LocationExtra;
  /** The object is gone: forget anything remembered about it (logged warnings). */
  forget?(namespace: string, name: string): void;
}

/** What is remembered of an object: where its certificates went, never its data. */
interface Published {
  namespace: string;
  name: string;
  /** Shared between objects with the same keys (sharedKeys): never mutated. */
  keys: readonly string[];
}

/** Distinct key lists kept for sharing; past this, lists are still exactly sized but not shared. */
const MAX_SHARED_KEY_LISTS = 1024;
const keyLists = new Map<string, readonly string[]>();

/**
 * One frozen array per distinct list of location keys. Nearly every object of a kind has the same
 * keys (`ca.crt`, `tls.crt`), and each object's state holds them for as long as it lives: a list
 * built with push has room for 17 (184 bytes with its header) where sharing costs nothing, 18 MiB for
 * 100,000 Secrets (bench/secrets.ts). Bounded, since the keys come from the objects; an unshared
 * list is copied to its exact length.
 */
export function sharedKeys(keys: readonly string[]): readonly string[] {
  const id = keys.join("\0");
  const known = keyLists.get(id);
  if (known) return known;
  const list = Object.freeze(keys.slice());
  if (keyLists.size < MAX_SHARED_KEY_LISTS) keyLists.set(id, list);
  return list;
}

/** A Kubernetes `[]byte` field (padded base64) as bytes, or the `bad_base64` error naming `what`. */
export function byteField(value: string, what: string): Buffer | CertReadError {
  return decodeBase64(value, true) ?? new CertReadError("bad_base64", `${what} is not valid base64`);
}

/**
 * A hash of an object's fields that may hold certificates (key and value as they came), so that an
 * object whose fields did not change is not read again; undefined when it has none.
 */
export function fieldsDigest(fields: readonly { key: string; raw: string }[]): string | undefined {
  if (fields.length === 0) return undefined;
  const hash = createHash("sha1");
  for (const { key, raw } of fields) hash.update(`\0${key}\0`).update(raw);
  return hash.digest("base64");
}

/**
 * Parses bytes with the shared cache, a failure becoming the location's read error: the one parse
 * step every Kubernetes kind uses. Bytes that could not be had are their error already.
 */
export function parseFound(ctx: SourceContext, key: string, bytes: Uint8Array | CertReadError, format: "auto" | "pem" | "der" = "auto"): Found {
  if (bytes instanceof CertReadError) return { key, result: bytes };
  try {
    return { key, result: ctx.cache.parse(bytes, format) };
  } catch (err) {
    return { key, result: toReadError(err, "corrupt_certificate") };
  }
}

/** A kind as a collection descriptor whose results are published to the inventory. */
function publishing<T extends KubeObject>(kind: CertificateKind<T>, ctx: SourceContext): KindDescriptor<T, Published> {
  const location = (p: Published, key: string): Location => ({ source: kind.source, namespace: p.namespace, name: p.name, key });
  return {
    ...kind,
    // Namespaced kinds are sharded by namespace (NamespaceFilter); cluster-scoped ones by object name.
    digest: (object) => (kind.namespaces || ctx.shard.owns(object.metadata?.name ?? "") ? kind.digest(object) : undefined),
    refusalLocation: (namespace) => ({ source: kind.source, namespace: namespace ?? "", name: "", key: kind.namespaces ? "" : kind.resource.resource }),
    async read(object, previous) {
      const found = await kind.read(object);
      const published: Published = { namespace: object.metadata?.namespace ?? "", name: kind.locationName?.(object) ?? object.metadata?.name ?? "", keys: sharedKeys(found.map((f) => f.key)) };
      const extra = kind.extra?.(object) ?? {};
      // Published only once every key is read, so a slow decode never leaves an object half updated.
      for (const { key, result, checks } of found) ctx.publish(location(published, key), result, checks ? { ...extra, ...checks } : extra);
      if (previous) {
        const now = new Set(published.keys);
        for (const key of previous.keys) if (!now.has(key)) ctx.remove(location(previous, key));
      }
      return published;
    },
    drop(namespace, name, state, gone, lastKnownOnly) {
      for (const key of state.keys) {
        const at = location(state, key);
        // An adopted location may have been published since by another stream of the scope.
        if (!lastKnownOnly || ctx.inventory.get(at)?.stale) ctx.remove(at);
      }
      if (gone) kind.forget?.(namespace, name);
    },
    adoptable(at) {
      if (at.source !== kind.source || at.name === "") return undefined;
      const objectName = kind.objectName ? kind.objectName(at.name) : at.name;
      if (objectName === undefined) return undefined;
      if (kind.namespaces ? !kind.namespaces.allows(at.namespace) : !ctx.shard.owns(objectName)) return undefined;
      return {
        key: `${at.namespace}/${objectName}`,
        namespace: at.namespace,
        join: (previous) => ({ namespace: at.namespace, name: at.name, keys: sharedKeys([...(previous?.keys ?? []), at.key]) }),
      };
    },
    stale(state, stale) {
      for (const key of state.keys) ctx.inventory.setStale(location(state, key), stale);
    },
  };
}

/**
 * A source of certificates in Kubernetes objects: one collection per kind (the CA bundles of four
 * kinds make one source), each with its own health.
 */
export class KubeCertificateSource implements Source {
  readonly name: SourceKind;
  readonly collections: KubeCollection<KubeObject, Published>[];

  constructor(name: SourceKind, kinds: readonly CertificateKind<KubeObject>[], kubeConfig: KubeConfig, kubernetes: KubernetesConfig, ctx: SourceContext) {
    this.name = name;
    this.collections = kinds.map((kind) => new KubeCollection(publishing(kind, ctx), kubeConfig, kubernetes, ctx));
  }

  healthSources(): string[] {
    return this.collections.map((c) => c.health.name);
  }

  /** Keeps a last-known location of the source a reload replaced while its scope is refused here; see KubeCollection.adopt. */
  adopt(location: Location): boolean {
    return this.collections.some((c) => c.adopt(location));
  }

  async start(): Promise<void> {
    await Promise.all(this.collections.map((c) => c.start()));
  }

  async scanOnce(): Promise<void> {
    await Promise.all(this.collections.map((c) => c.listOnce()));
  }

  async stop(): Promise<void> {
    await Promise.all(this.collections.map((c) => c.stop()));
  }
}

