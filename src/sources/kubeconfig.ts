import { dirname } from "node:path";
import type { KubeconfigEntry } from "../certs/kubeconfig.js";
import type { CertRecord } from "../certs/record.js";
import type { LocationChecks } from "../checks.js";
import type { PathGroup } from "../config.js";
import { toReadError } from "../errors.js";
import type { Location } from "../model.js";
import { FileReader } from "./file-reader.js";
import { expandPathGroups } from "./glob.js";
import { PolledSource } from "./poller.js";
import { unmatchedGlobs } from "./unmatched.js";
import { ScanPublisher, type LocationResult } from "./scan-publisher.js";
import type { SourceContext } from "./source.js";

/** A kubeconfig entry with its inline certificates already parsed (and checked), or a file still to read. */
type ResolvedEntry = { key: string; result: LocationResult; checks?: LocationChecks } | { key: string; file: string };

/**
 * Parses a kubeconfig's inline certificates. A user's client certificate is presented to the API
 * server: its chain is checked up to the kubeconfig's own cluster CAs (a kubeadm cluster signs
 * clients with the CA it serves under) and the trust anchors. Its key is not compared: the decode
 * returns no `client-key-data`, so a kubeconfig's keys never leave the decode.
 */
export function resolveKubeconfigEntries(entries: readonly KubeconfigEntry[], ctx: SourceContext): ResolvedEntry[] {
  const clusterCas = entries.flatMap((entry) => (entry.kind === "data" && entry.key.startsWith("clusters/") ? [entry.bytes] : []));
  return entries.map((entry): ResolvedEntry => {
    if (entry.kind === "file") return { key: entry.key, file: entry.path };
    if (entry.kind === "error") return { key: entry.key, result: entry.error };
    try {
      if (!ctx.checks.active || !entry.key.startsWith("users/")) return { key: entry.key, result: ctx.cache.parse(entry.bytes) };
      const { records, checks } = ctx.checks.presented(entry.bytes, "auto", { ca: clusterCas });
      return { key: entry.key, result: records, checks };
    } catch (err) {
      return { key: entry.key, result: toReadError(err, "corrupt_certificate") };
    }
  });
}

export interface KubeconfigSourceOptions {
  intervalSeconds: number;
  maxFileSize: number;
  /** limits.maxGlobEntries: directory entries one glob may visit in one scan. */
  maxGlobEntries?: number;
}

/**
 * Kubeconfig files found by paths and globs. One location per cluster CA and user client
 * certificate: `{source: "kubeconfig", name: <kubeconfig path>, key: "clusters/x" | "users/y"}`;
 * a file that cannot be read or is not a kubeconfig is one error location with key "", and so is
 * whatever a glob reached but could not read (a directory, a name that is not UTF-8, the glob itself).
 * Referenced certificate files are read (and change-detected) like the kubeconfig itself.
 */
export class KubeconfigSource extends PolledSource {
  /** Exposed so tests can count reads. */
  readonly reader: FileReader<ResolvedEntry[]>;
  readonly referenceReader: FileReader<readonly CertRecord[]>;
  readonly #groups: readonly PathGroup[];
  readonly #maxGlobEntries: number | undefined;
  readonly #publisher: ScanPublisher;

  constructor(groups: PathGroup[], options: KubeconfigSourceOptions, ctx: SourceContext) {
    super("kubeconfig", options.intervalSeconds, ctx);
    this.#groups = groups;
    this.#maxGlobEntries = options.maxGlobEntries;
    this.#publisher = new ScanPublisher(ctx, "kubeconfig");
    const maxFileSize = options.maxFileSize;
    this.reader = new FileReader<ResolvedEntry[]>(
      async (bytes, path) => resolveKubeconfigEntries(await ctx.decodeKubeconfig(bytes, dirname(path)), ctx),
      { maxFileSize },
    );
    this.referenceReader = new FileReader((bytes) => ctx.cache.parse(bytes), { maxFileSize });
  }

  async #reference(path: string): Promise<LocationResult> {
    const outcome = await this.referenceReader.read(path);
    return outcome.kind === "value" ? outcome.value : outcome.error;
  }

  protected async scan(): Promise<void> {
    const expansion = await expandPathGroups(this.#groups, { maxEntries: this.#maxGlobEntries });
    const { matches } = expansion;
    const problems = [...expansion.problems, ...unmatchedGlobs(this.#groups, expansion)];
    this.reader.beginScan();
    this.referenceReader.beginScan();
    this.#publisher.begin();
    for (const { path, error } of problems) this.#publisher.publish({ source: "kubeconfig", namespace: "", name: path, key: "" }, error);
    for (const { path, literal } of matches) {
      const at = (key: string): Location => ({ source: "kubeconfig", namespace: "", name: path, key });
      const outcome = await this.reader.read(path);
      if (outcome.kind === "value") {
        for (const entry of outcome.value) {
          if ("result" in entry) this.#publisher.publish(at(entry.key), entry.result, entry.checks);
          else this.#publisher.publish(at(entry.key), await this.#reference(entry.file));
        }
      } else if (outcome.kind === "error" || literal) {
        this.#publisher.publish(at(""), outcome.error);
      }
    }
    this.reader.endScan();
    this.referenceReader.endScan();
    this.#publisher.finish();
  }
}
