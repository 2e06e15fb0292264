/**
 * What the file and kubeconfig sources share: turning configured path groups into the files they
 * match, reading those files only when they changed, and publishing each location only when what it
 * holds changed.
 */
import { constants, type BigIntStats } from "node:fs";
import { open, stat } from "node:fs/promises";
import { homedir } from "node:os";
import { basename, resolve } from "node:path";
import picomatch from "picomatch";
import { glob } from "tinyglobby";
import type { CertRecord } from "../certs/record.js";
import type { PathGroup } from "../config.js";
import { CertReadError, toReadError } from "../errors.js";
import { locationId, type Location, type SourceKind } from "../inventory.js";
import type { SourceContext } from "./source.js";

/** `~` and `~/x` to the home folder; anything else unchanged (`~user` is not expanded). */
export function expandHome(path: string, home: string = homedir()): string {
  if (path === "~") return home;
  if (path.startsWith("~/")) return resolve(home, path.slice(2));
  return path;
}

export interface MatchedPath {
  /** Absolute path as matched: a symlink stays the symlink, so the location name is stable. */
  path: string;
  /** Named literally in the config (no glob characters), rather than found by a glob. */
  literal: boolean;
}

export interface ExpandOptions {
  /** Base for relative paths; the process's working folder by default. */
  cwd?: string;
  /** Home folder for `~`; os.homedir() (which honours $HOME) by default. */
  home?: string;
}

/**
 * A matcher for a group's excludes. A pattern without `/` matches the file's base name anywhere
 * (`*.key`); one with `/` matches the whole absolute path (`/etc/kubernetes/pki/etcd/**`).
 */
function excludeMatcher(patterns: readonly string[], cwd: string, home: string): (path: string) => boolean {
  const byName: string[] = [];
  const byPath: string[] = [];
  for (const pattern of patterns) {
    const expanded = expandHome(pattern, home);
    if (expanded.includes("/")) byPath.push(resolve(cwd, expanded));
    else byName.push(expanded);
  }
  const options = { dot: true, posix: true };
  const name = byName.length ? picomatch(byName, options) : () => false;
  const full = byPath.length ? picomatch(byPath, options) : () => false;
  return (path) => name(basename(path)) || full(path);
}

/**
 * Expands path groups into the files they name, sorted and without duplicates. Literal paths are
 * returned whether or not they exist (a missing one is the caller's `not_found`); globs return the
 * regular files they match, following symlinks to files and folders. `*` and `**` do not match names
 * that start with a dot, which keeps Kubernetes volume internals (`..data`, `..2024_…`) out of `**`.
 */
export async function expandPathGroups(groups: readonly PathGroup[], options: ExpandOptions = {}): Promise<MatchedPath[]> {
  const cwd = options.cwd ?? process.cwd();
  const home = options.home ?? homedir();
  const found = new Map<string, boolean>();
  for (const group of groups) {
    const excluded = excludeMatcher(group.exclude ?? [], cwd, home);
    for (const pattern of group.paths) {
      const absolute = resolve(cwd, expandHome(pattern, home));
      const scan = picomatch.scan(absolute);
      const matches: Array<[string, boolean]> = [];
      if (!scan.isGlob) {
        matches.push([absolute, true]);
      } else {
        const paths = await glob(scan.glob, {
          cwd: scan.base || "/",
          absolute: true,
          onlyFiles: true,
          followSymbolicLinks: true,
          dot: false,
          expandDirectories: false,
        });
        for (const path of paths) matches.push([path, false]);
      }
      for (const [path, literal] of matches) {
        if (excluded(path)) continue;
        found.set(path, (found.get(path) ?? false) || literal);
      }
    }
  }
  return [...found].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([path, literal]) => ({ path, literal }));
}

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

function signatureOf(st: BigIntStats): string {
  return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
}

function readError(path: string, err: unknown): CertReadError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === "EISDIR") return new CertReadError("unreadable", `${path}: is a directory`, { cause: err });
  if (code === "EACCES" || code === "EPERM") return new CertReadError("unreadable", `${path}: permission denied`, { cause: err });
  return toReadError(err, "unreadable");
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
 * file over `maxFileSize` is `too_large` without being read. The bytes are handed to `interpret` and
 * never kept. Call `beginScan()` before and `endScan()` after each pass so that paths no longer
 * visited are forgotten.
 */
export class FileReader<T> {
  readonly #interpret: (bytes: Buffer, path: string) => T;
  readonly #maxFileSize: number;
  readonly #memo = new Map<string, Memo<T>>();
  #scan = 0;
  /** How many times a file's bytes were read; tests use it to prove unchanged files are not. */
  reads = 0;

  constructor(interpret: (bytes: Buffer, path: string) => T, options: { maxFileSize: number }) {
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
    const code = (err as NodeJS.ErrnoException | undefined)?.code;
    const prior = previous?.signature === null ? previous.outcome : undefined;
    if (code !== undefined && MISSING_CODES.has(code)) {
      if (prior?.kind === "missing") return prior;
      return { kind: "missing", error: new CertReadError("not_found", `${path}: no such file`, { cause: err }) };
    }
    const error = readError(path, err);
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
        outcome = { kind: "value", value: this.#interpret(bytes, path) };
      } catch (err) {
        outcome = { kind: "error", error: toReadError(err, "corrupt_certificate") };
      } finally {
        bytes.fill(0);
      }
      return this.#remember(path, signature, outcome);
    } catch (err) {
      return this.#remember(path, null, { kind: "error", error: readError(path, err) });
    } finally {
      await handle.close().catch(() => undefined);
    }
  }

  #remember(path: string, signature: string | null, outcome: FileOutcome<T>): FileOutcome<T> {
    this.#memo.set(path, { signature, outcome, scan: this.#scan });
    return outcome;
  }
}

/** Certificates or the error that stopped them; the thing one location holds. */
export type LocationResult = readonly CertRecord[] | CertReadError;

/**
 * Publishes locations for one scan pass, but only those whose result object changed since it was
 * last published, so an unchanged file costs no inventory update; at the end, every location of the
 * source not seen in the pass is pruned.
 */
export class ScanPublisher {
  readonly #ctx: SourceContext;
  readonly #source: SourceKind;
  readonly #published = new Map<string, LocationResult>();
  #seen = new Set<string>();

  constructor(ctx: SourceContext, source: SourceKind) {
    this.#ctx = ctx;
    this.#source = source;
  }

  begin(): void {
    this.#seen = new Set();
  }

  publish(location: Location, result: LocationResult): void {
    const id = locationId(location);
    this.#seen.add(id);
    if (this.#published.get(id) === result) return;
    this.#published.set(id, result);
    this.#ctx.publish(location, result);
  }

  /** Prunes what this pass did not publish. Only call it after a complete pass. */
  finish(): void {
    for (const id of this.#published.keys()) if (!this.#seen.has(id)) this.#published.delete(id);
    this.#ctx.pruneExcept(this.#source, this.#seen);
  }
}
