import type { CertList } from "../certs/record.js";
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

/** Certificates (and CRLs) in a file, or null for a file that has nothing for us (keys, CSRs only). */
type FileValue = CertList | null;

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

  constructor(groups: PathGroup[], options: FileSourceOptions, ctx: SourceContext) {
    super("file", options.intervalSeconds, ctx);
    this.#groups = groups;
    this.#maxGlobEntries = options.maxGlobEntries;
    this.#publisher = new ScanPublisher(ctx, "file");
    this.reader = new FileReader<FileValue>(
      (bytes) => {
        try {
          return ctx.cache.parse(bytes);
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
    for (const { path, literal } of matches) {
      const location = fileLocation(path);
      const outcome = await this.reader.read(path);
      switch (outcome.kind) {
        case "value":
          if (outcome.value !== null) this.#publisher.publish(location, outcome.value);
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
}
