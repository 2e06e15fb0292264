/** Reading certificate and kubeconfig files only when they changed, and remembering what they meant. */
import { constants, type BigIntStats } from "node:fs";
import { open, stat } from "node:fs/promises";
import { CertReadError, toReadError } from "../errors.js";

/** What reading one path gave. Objects are reused while nothing changes, so identity means "same". */
export type FileOutcome<T> =
  | { kind: "value"; value: T }
  | { kind: "error"; error: CertReadError }
  /** The path does not exist (or a symlink points nowhere); `error` is a ready `not_found`. */
  | { kind: "missing"; error: CertReadError };

interface Memo<T> {
  /** dev, inode, size, mtime and ctime of the file read (the symlink's target), or null when stat failed. */
  signature: string | null;
  outcome: FileOutcome<T>;
  scan: number;
}

const MISSING_CODES = new Set(["ENOENT", "ENOTDIR"]);

/** The path does not exist, or a symlink on the way points nowhere. */
export function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code !== undefined && MISSING_CODES.has(code);
}

/** An `unreadable` error for a failed stat, open, read or directory listing; names the cause, never the contents. */
export function fileSystemError(path: string, err: unknown): CertReadError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === "EISDIR") return new CertReadError("unreadable", `${path}: is a directory`, { cause: err });
  if (code === "EACCES" || code === "EPERM") return new CertReadError("unreadable", `${path}: permission denied`, { cause: err });
  if (code === "ELOOP") return new CertReadError("unreadable", `${path}: symlink loop`, { cause: err });
  if (code !== undefined) return new CertReadError("unreadable", `${path}: ${code}`, { cause: err });
  return toReadError(err, "unreadable");
}

function signatureOf(st: BigIntStats): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
}

/**
 * Reads files only when they changed, and remembers what their bytes meant.
 *
 * Change detection is by `stat` of the path, which follows symlinks: the device, inode, size,
 * modification and change times of the target. A symlink repointed to a new file (kubelet's
 * `kubelet-client-current.pem`), a file rewritten in place or replaced by rename, or a permission
 * change (ctime) is read again; a file whose signature did not change is neither read nor
 * interpreted, and its previous outcome object is returned as it was.
 *
 * Anything that is not a regular file is `unreadable` without being opened (a FIFO would block); a
 * file over `maxFileSize` is `too_large` without being read. The bytes are handed to `interpret`,
 * which may be asynchronous, and are zeroed once it is done; they are never kept. Call
 * `beginScan()` before and `endScan()` after each pass so that paths no longer visited are forgotten.
 */
export class FileReader<T> {
  readonly #interpret: (bytes: Buffer, path: string) => T | Promise<T>;
  readonly #maxFileSize: number;
  readonly #memo = new Map<string, Memo<T>>();
  #scan = 0;
  /** How many times a file's bytes were read; tests use it to prove unchanged files are not. */
  reads = 0;

  constructor(interpret: (bytes: Buffer, path: string) => T | Promise<T>, options: { maxFileSize: number }) {
    this.#interpret = interpret;
    this.#maxFileSize = options.maxFileSize;
  }

  beginScan(): void {
    this.#scan++;
  }

  /** Forgets every path not read since beginScan(). */
  endScan(): void {
    for (const [path, memo] of this.#memo) if (memo.scan !== this.#scan) this.#memo.delete(path);
  }

  async read(path: string): Promise<FileOutcome<T>> {
    const previous = this.#memo.get(path);
    if (previous?.scan === this.#scan) return previous.outcome;
    let st: BigIntStats;
    try {
      st = await stat(path, { bigint: true });
    } catch (err) {
      return this.#remember(path, null, this.#statFailure(path, err, previous));
    }
    const signature = signatureOf(st);
    if (previous && previous.signature === signature) return this.#remember(path, signature, previous.outcome);
    if (!st.isFile()) {
      const what = st.isDirectory() ? "is a directory" : "is not a regular file";
      return this.#remember(path, signature, { kind: "error", error: new CertReadError("unreadable", `${path}: ${what}`) });
    }
    if (st.size > BigInt(this.#maxFileSize)) return this.#remember(path, signature, this.#tooLarge(path, st.size));
    return this.#readFile(path, previous);
  }

  #statFailure(path: string, err: unknown, previous: Memo<T> | undefined): FileOutcome<T> {
    const prior = previous?.signature === null ? previous.outcome : undefined;
    if (isMissing(err)) {
      if (prior?.kind === "missing") return prior;
      return { kind: "missing", error: new CertReadError("not_found", `${path}: no such file`, { cause: err }) };
    }
    const error = fileSystemError(path, err);
    if (prior?.kind === "error" && prior.error.reason === error.reason) return prior;
    return { kind: "error", error };
  }

  #tooLarge(path: string, size: bigint): FileOutcome<T> {
    return { kind: "error", error: new CertReadError("too_large", `${path}: ${size} bytes is over the limit of ${this.#maxFileSize}`) };
  }

  async #readFile(path: string, previous: Memo<T> | undefined): Promise<FileOutcome<T>> {
    let handle;
    try {
      // O_NONBLOCK: should the path have turned into a FIFO since stat, opening must not hang.
      handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
    } catch (err) {
      return this.#remember(path, null, this.#statFailure(path, err, previous));
    }
    try {
      const st = await handle.stat({ bigint: true });
      const signature = signatureOf(st);
      if (!st.isFile()) {
        return this.#remember(path, signature, { kind: "error", error: new CertReadError("unreadable", `${path}: is not a regular file`) });
      }
      if (st.size > BigInt(this.#maxFileSize)) return this.#remember(path, signature, this.#tooLarge(path, st.size));
      // Read at most one byte past the limit, so a file growing while read is still caught.
      const buffer = Buffer.allocUnsafe(Math.min(Number(st.size), this.#maxFileSize) + 1);
      let length = 0;
      for (;;) {
        const { bytesRead } = await handle.read(buffer, length, buffer.length - length, null);
        if (bytesRead === 0) break;
        length += bytesRead;
        if (length === buffer.length) break;
      }
      this.reads++;
      if (length > this.#maxFileSize) return this.#remember(path, signature, this.#tooLarge(path, BigInt(length)));
      const bytes = buffer.subarray(0, length);
      let outcome: FileOutcome<T>;
      try {
        outcome = { kind: "value", value: await this.#interpret(bytes, path) };
      } catch (err) {
        outcome = { kind: "error", error: toReadError(err, "corrupt_certificate") };
      } finally {
        bytes.fill(0);
      }
      return this.#remember(path, signature, outcome);
    } catch (err) {
      return this.#remember(path, null, { kind: "error", error: fileSystemError(path, err) });
    } finally {
      await handle.close().catch(() => undefined);
    }
  }

  #remember(path: string, signature: string | null, outcome: FileOutcome<T>): FileOutcome<T> {
    this.#memo.set(path, { signature, outcome, scan: this.#scan });
    return outcome;
  }
}
