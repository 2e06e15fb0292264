import { basename, dirname, extname } from "node:path";
import type { ChainHealth } from "../certs/chain.js";
import { MAX_PRIVATE_KEY_BYTES, type KeyPairStatus } from "../certs/private-key.js";
import type { CertList } from "../certs/record.js";
import type { LocationChecks } from "../checks.js";
import { readFileBounded } from "../read-bounded.js";
import type { PathGroup } from "../config.js";
import { CertReadError } from "../errors.js";
import type { Location } from "../model.js";
import { FileReader } from "./file-reader.js";
import { expandPathGroups } from "./glob.js";
import { PolledSource } from "./poller.js";
import { unmatchedGlobs } from "./unmatched.js";
import { ScanPublisher } from "./scan-publisher.js";
import type { SourceContext } from "./source.js";

/**
 * PEM labels of things that are not certificates but sit beside them in certificate folders:
 * private and public keys (`sa.key`, `sa.pub`), requests and parameters. A file holding only
 * these is not an error for a glob to have caught; it simply has no certificates and no location.
 * A CRL is read like a certificate, so a file holding one is a location.
 */
const NOT_CERTIFICATE_LABELS = new Set([
  "PRIVATE KEY",
  "RSA PRIVATE KEY",
  "EC PRIVATE KEY",
  "DSA PRIVATE KEY",
  "ENCRYPTED PRIVATE KEY",
  "OPENSSH PRIVATE KEY",
  "PUBLIC KEY",
  "RSA PUBLIC KEY",
  "CERTIFICATE REQUEST",
  "NEW CERTIFICATE REQUEST",
  "EC PARAMETERS",
  "DH PARAMETERS",
]);

/** True when a parse failure means "keys or requests only", which is not an error for a file. */
export function holdsOnlyNonCertificates(error: CertReadError): boolean {
  return error.reason === "no_certificate" && error.pemLabels.length > 0 && error.pemLabels.every((label) => NOT_CERTIFICATE_LABELS.has(label));
}

function fileLocation(path: string): Location {
  return { source: "file", namespace: "", name: path, key: "" };
}

/**
 * Certificates (and CRLs) in a file, or null for a file that has nothing for us (keys, CSRs only). A
 * presented file (its group names a private key or asks for its chain) keeps its chain's health and
 * its leaf's public key, against which the key file is compared at every scan.
 */
type FileValue = { records: CertList; chain?: ChainHealth; leafPublicKey?: Uint8Array } | null;

/** A group's private key path for one certificate file: `{dir}` its folder, `{stem}` its name without the extension. */
export function privateKeyPath(template: string, certificatePath: string): string {
  const stem = basename(certificatePath, extname(certificatePath));
  return template.replaceAll("{dir}", dirname(certificatePath)).replaceAll("{stem}", stem);
}

const presents = (group: PathGroup | undefined): group is PathGroup => group !== undefined && (group.privateKey !== undefined || group.checkChain === true);

export interface FileSourceOptions {
  intervalSeconds: number;
  maxFileSize: number;
  /** limits.maxGlobEntries: directory entries one glob may visit in one scan. */
  maxGlobEntries?: number;
}

/**
 * Certificate files (PEM bundles, DER, PKCS#7) found by paths and globs, polled on an interval.
 * One location per file: `{source: "file", name: <absolute path as matched>}`; whatever a glob
 * reached but could not read (a directory, a name that is not UTF-8, the glob itself when it
 * visits too many entries) is an error location of its own, named the same way.
 */
export class FileSource extends PolledSource {
  /** Exposed so tests can count reads. */
  readonly reader: FileReader<FileValue>;
  readonly #groups: readonly PathGroup[];
  readonly #maxGlobEntries: number | undefined;
  readonly #publisher: ScanPublisher;
  readonly #ctx: SourceContext;
  /** The group each path matched in the scan under way, read by the parse of a file that changed. */
  readonly #groupOf = new Map<string, PathGroup>();

  constructor(groups: PathGroup[], options: FileSourceOptions, ctx: SourceContext) {
    super("file", options.intervalSeconds, ctx);
    this.#groups = groups;
    this.#maxGlobEntries = options.maxGlobEntries;
    this.#publisher = new ScanPublisher(ctx, "file");
    this.#ctx = ctx;
    this.reader = new FileReader<FileValue>(
      (bytes, path) => {
        try {
          if (!presents(this.#groupOf.get(path)) || !ctx.checks.active) return { records: ctx.cache.parse(bytes) };
          const { records, checks, leafPublicKey } = ctx.checks.presented(bytes, "auto", {});
          // A copy: the view would keep the whole file's bytes alive.
          return { records, ...(checks.chain ? { chain: checks.chain } : {}), ...(leafPublicKey ? { leafPublicKey: leafPublicKey.slice() } : {}) };
        } catch (err) {
          if (err instanceof CertReadError && holdsOnlyNonCertificates(err)) return null;
          throw err;
        }
      },
      { maxFileSize: options.maxFileSize },
    );
  }

  protected async scan(): Promise<void> {
    const expansion = await expandPathGroups(this.#groups, { maxEntries: this.#maxGlobEntries });
    const { matches } = expansion;
    const problems = [...expansion.problems, ...unmatchedGlobs(this.#groups, expansion)];
    this.reader.beginScan();
    this.#publisher.begin();
    for (const { path, error } of problems) this.#publisher.publish(fileLocation(path), error);
    this.#groupOf.clear();
    for (const { path, group } of matches) this.#groupOf.set(path, this.#groups[group]!);
    for (const { path, literal } of matches) {
      const location = fileLocation(path);
      const outcome = await this.reader.read(path);
      switch (outcome.kind) {
        case "value":
          if (outcome.value !== null) this.#publisher.publish(location, outcome.value.records, this.#checks(path, outcome.value));
          break;
        case "error":
          this.#publisher.publish(location, outcome.error);
          break;
        case "missing":
          // A glob match that vanished is simply gone; a path named literally is an error.
          if (literal) this.#publisher.publish(location, outcome.error);
          break;
      }
    }
    this.reader.endScan();
    this.#publisher.finish();
  }

  /** The chain found when the file was read, and its private key compared now: keys change apart from their certificates. */
  #checks(path: string, value: NonNullable<FileValue>): LocationChecks {
    const checks: LocationChecks = value.chain ? { chain: value.chain } : {};
    const template = this.#groupOf.get(path)?.privateKey;
    if (template === undefined || !value.leafPublicKey || !this.#ctx.checks.config.privateKeys) return checks;
    let key: Buffer | null = null;
    let keyPair: KeyPairStatus | undefined;
    try {
      key = readFileBounded(privateKeyPath(template, path), MAX_PRIVATE_KEY_BYTES);
      keyPair = this.#ctx.checks.keyPair(key, value.leafPublicKey);
    } catch (err) {
      keyPair = err instanceof CertReadError && err.reason === "not_found" ? this.#ctx.checks.keyPair(null, value.leafPublicKey) : "unreadable";
    } finally {
      key?.fill(0);
    }
    return keyPair ? { ...checks, keyPair } : checks;
  }
}
