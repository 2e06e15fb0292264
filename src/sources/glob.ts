/**
 * Turning configured path groups into the files they name: `~`, literal paths, and a bounded walk
 * for globs that reports what it reached but could not read instead of passing over it.
 */
import type { Dirent } from "node:fs";
import { opendir, stat } from "node:fs/promises";
import { homedir } from "node:os";
import { basename, join, resolve } from "node:path";
import picomatch from "picomatch";
import type { PathGroup } from "../config.js";
import { CertReadError } from "../errors.js";
import { fileSystemError, isMissing } from "./file-reader.js";

/** limits.maxGlobEntries, for callers that do not pass one. */
const DEFAULT_MAX_GLOB_ENTRIES = 100_000;

/** Directory levels below a glob's static base that a walk enters; a directory deeper still is reported, not entered. */
export const MAX_GLOB_DEPTH = 64;

const GLOBSTAR = "**";

/** `*` and `**` skip dot names, which keeps Kubernetes volume internals (`..data`, `..2024_…`) out. */
const MATCH_OPTIONS = { dot: false, posix: true };

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
  /** Index of the first group that matched it: the group whose settings (a private key) apply. */
  group: number;
}

/** Something a glob reached but could not read, or a glob that could not be walked to the end. */
export interface PathProblem {
  /** The path (a name that is not UTF-8 with its bad bytes as `\xNN`), or the glob itself for `too_many_files`. */
  path: string;
  error: CertReadError;
}

export interface Expansion {
  /** Sorted, without duplicates. */
  matches: MatchedPath[];
  /** Sorted, without duplicates, and never a path that is also matched. */
  problems: PathProblem[];
}

export interface ExpandOptions {
  /** Base for relative paths; the process's working folder by default. */
  cwd?: string;
  /** Home folder for `~`; os.homedir() (which honours $HOME) by default. */
  home?: string;
  /** Directory entries one glob may visit; beyond it the glob is `too_many_files`. */
  maxEntries?: number;
}

interface Exclusion {
  covers(path: string): boolean;
  /** Everything below this directory is excluded, so a walk need not enter it. */
  coversAllBelow(directory: string): boolean;
}

/**
 * A group's excludes. A pattern without `/` matches the base name anywhere (`*.key`); one with `/`
 * matches the whole absolute path (`/etc/kubernetes/pki/etcd/**`).
 */
function exclusion(patterns: readonly string[], cwd: string, home: string): Exclusion {
  const byName: string[] = [];
  const byPath: string[] = [];
  const subtrees: string[] = [];
  for (const pattern of patterns) {
    const expanded = expandHome(pattern, home);
    if (!expanded.includes("/")) {
      byName.push(expanded);
      continue;
    }
    const absolute = resolve(cwd, expanded);
    byPath.push(absolute);
    // With dot names allowed, `x/**` takes every path below whatever `x` matches.
    if (absolute.endsWith(`/${GLOBSTAR}`)) subtrees.push(absolute.slice(0, -3) || "/");
  }
  const options = { dot: true, posix: true };
  const matcher = (list: string[]) => (list.length ? picomatch(list, options) : () => false);
  const name = matcher(byName);
  const full = matcher(byPath);
  return { covers: (path) => name(basename(path)) || full(path), coversAllBelow: matcher(subtrees) };
}

/** The parts of a glob a path has got through: indexes into its parts; null when anything below may still match. */
type Progress = readonly number[] | null;

/**
 * A glob split at its slashes, to tell which directories can hold a match so the walk enters no
 * other. A path's progress is every part it may have reached, as `**` may take any number of names
 * that do not begin with a dot. A part that spans slashes (inside braces, say) ends the pruning.
 */
class GlobParts {
  readonly #parts: readonly string[];
  readonly #matchers: ReadonlyArray<(name: string) => boolean>;

  constructor(glob: string) {
    this.#parts = picomatch.scan(glob, { parts: true }).parts ?? [glob];
    this.#matchers = this.#parts.map((part) => picomatch(part, MATCH_OPTIONS));
  }

  start(): Progress {
    return this.#closure(new Set([0]));
  }

  /** The progress of the entry `name` in a directory with `progress`. */
  after(progress: Progress, name: string): Progress {
    if (progress === null) return null;
    const next = new Set<number>();
    for (const index of progress) {
      const part = this.#parts[index];
      if (part === GLOBSTAR) {
        if (!name.startsWith(".")) next.add(index);
      } else if (part !== undefined && this.#matchers[index]?.(name)) {
        next.add(index + 1);
      }
    }
    return this.#closure(next);
  }

  /** Whether a path below one with `progress` can still match. */
  continuesBelow(progress: Progress): boolean {
    return progress === null || progress.some((index) => index < this.#parts.length);
  }

  /** Adds the parts a `**` may be skipped to (Set iteration visits what is added meanwhile). */
  #closure(indexes: Set<number>): Progress {
    for (const index of indexes) {
      const part = this.#parts[index];
      if (part === GLOBSTAR) indexes.add(index + 1);
      else if (part !== undefined && (part.includes("/") || part.includes(GLOBSTAR))) return null;
    }
    return [...indexes];
  }
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** The bytes as text, or null when they are not UTF-8. */
function utf8(bytes: Uint8Array): string | null {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return null;
  }
}

/** How many bytes a UTF-8 sequence that begins with `lead` has; 0 when none begins with it. */
function sequenceLength(lead: number): number {
  if (lead < 0x80) return 1;
  if (lead >= 0xc2 && lead <= 0xdf) return 2;
  if (lead >= 0xe0 && lead <= 0xef) return 3;
  if (lead >= 0xf0 && lead <= 0xf4) return 4;
  return 0;
}

/**
 * A name that is not UTF-8 as text that keeps different names apart: every byte that is not part
 * of a valid character, and every backslash, is written `\xNN`.
 */
function escapeInvalidUtf8(bytes: Buffer): string {
  let text = "";
  for (let i = 0; i < bytes.length; ) {
    const lead = bytes[i] as number;
    const length = sequenceLength(lead);
    const character = length > 0 ? utf8(bytes.subarray(i, i + length)) : null;
    if (character !== null && character !== "\\") {
      text += character;
      i += length;
    } else {
      text += `\\x${lead.toString(16).padStart(2, "0")}`;
      i++;
    }
  }
  return text;
}

/** A directory's entries with their names as bytes, so that a name that is not UTF-8 shows as such. */
async function* entriesOf(directory: string): AsyncGenerator<Dirent<Buffer>> {
  // @types/node 20 allows only text encodings here, but Node takes "buffer" and names entries by their bytes.
  const dir = await opendir(directory, { encoding: "buffer" as BufferEncoding });
  for await (const entry of dir) yield entry as unknown as Dirent<Buffer>;
}

interface Subdirectory {
  path: string;
  relative: string;
  progress: Progress;
}

/**
 * One glob's walk below its static base. It visits at most `maxEntries` directory entries (then it
 * stops and is `exhausted`) and at most MAX_GLOB_DEPTH levels, follows symlinked directories but
 * never into one of their own ancestors, and collects what it could not read as problems.
 */
class GlobWalk {
  /** Non-directories the glob matches: files, and FIFOs, devices or loops that the reader refuses. */
  readonly matches: string[] = [];
  readonly problems: PathProblem[] = [];
  exhausted = false;
  readonly #base: string;
  readonly #parts: GlobParts;
  readonly #matches: (relative: string) => boolean;
  readonly #exclusion: Exclusion;
  readonly #maxEntries: number;
  #entries = 0;
  /** `dev:ino` of each directory from the base down to the one being walked. */
  readonly #ancestors = new Set<string>();

  constructor(base: string, glob: string, exclusion: Exclusion, maxEntries: number) {
    this.#base = base;
    this.#parts = new GlobParts(glob);
    this.#matches = picomatch(glob, MATCH_OPTIONS);
    this.#exclusion = exclusion;
    this.#maxEntries = maxEntries;
  }

  run(): Promise<void> {
    return this.#directory({ path: this.#base, relative: "", progress: this.#parts.start() }, 0);
  }

  async #directory({ path, relative, progress }: Subdirectory, depth: number): Promise<void> {
    if (this.#exclusion.coversAllBelow(path)) return;
    if (depth > MAX_GLOB_DEPTH) {
      this.#problem(path, new CertReadError("unreadable", `${path}: too deep, more than ${MAX_GLOB_DEPTH} directory levels below ${this.#base}; not searched`));
      return;
    }
    let identity: string;
    try {
      const st = await stat(path, { bigint: true });
      if (!st.isDirectory()) return;
      identity = `${st.dev}:${st.ino}`;
    } catch (err) {
      this.#failed(path, err);
      return;
    }
    if (this.#ancestors.has(identity)) {
      this.#problem(path, new CertReadError("unreadable", `${path}: symlink loop`));
      return;
    }
    const below: Subdirectory[] = [];
    try {
      for await (const entry of entriesOf(path)) {
        if (++this.#entries > this.#maxEntries) {
          this.exhausted = true;
          return;
        }
        await this.#entry(entry, path, relative, progress, below);
      }
    } catch (err) {
      this.#failed(path, err);
      return;
    }
    this.#ancestors.add(identity);
    for (const subdirectory of below) {
      if (this.exhausted) break;
      await this.#directory(subdirectory, depth + 1);
    }
    this.#ancestors.delete(identity);
  }

  async #entry(entry: Dirent<Buffer>, parent: string, parentRelative: string, parentProgress: Progress, below: Subdirectory[]): Promise<void> {
    const text = utf8(entry.name);
    // A name that is not UTF-8 is matched as the replacement characters it decodes to.
    const name = text ?? entry.name.toString("utf8");
    const relative = parentRelative ? `${parentRelative}/${name}` : name;
    const matched = this.#matches(relative);
    const progress = this.#parts.after(parentProgress, name);
    const descend = this.#parts.continuesBelow(progress);
    if (text === null) {
      if (matched || descend) {
        const path = join(parent, escapeInvalidUtf8(entry.name));
        this.#problem(path, new CertReadError("unreadable", `${path}: file name is not valid UTF-8`));
      }
      return;
    }
    const path = join(parent, text);
    if (entry.isDirectory()) {
      if (descend) below.push({ path, relative, progress });
      return;
    }
    if (!entry.isSymbolicLink()) {
      if (matched) this.matches.push(path);
      return;
    }
    if (!matched && !descend) return;
    let isDirectory: boolean;
    try {
      isDirectory = (await stat(path)).isDirectory();
    } catch (err) {
      // Dangling: gone, like a deleted file. A matched link that cannot be followed (a loop, a
      // permission) is left to the reader, which reports it as it does a path named literally.
      if (isMissing(err)) return;
      if (matched) this.matches.push(path);
      else this.#failed(path, err);
      return;
    }
    if (!isDirectory) {
      if (matched) this.matches.push(path);
    } else if (descend) {
      below.push({ path, relative, progress });
    }
  }

  /** A path that vanished meanwhile is simply gone; any other failure is a problem. */
  #failed(path: string, err: unknown): void {
    if (!isMissing(err)) this.#problem(path, fileSystemError(path, err));
  }

  #problem(path: string, error: CertReadError): void {
    if (!this.#exclusion.covers(path)) this.problems.push({ path, error });
  }
}

function byPath(a: { path: string }, b: { path: string }): number {
  return a.path < b.path ? -1 : a.path > b.path ? 1 : 0;
}

/**
 * Expands path groups into the paths they name and the problems met on the way. Literal paths are
 * returned whether or not they exist (a missing one is the caller's `not_found`); globs return the
 * non-directories they match, following symlinks to files and folders, with the link's own path.
 * A glob that would visit more than `maxEntries` directory entries returns no paths, only a
 * `too_many_files` problem named by the glob: a partial walk would give a different subset each time.
 */
export async function expandPathGroups(groups: readonly PathGroup[], options: ExpandOptions = {}): Promise<Expansion> {
  const cwd = options.cwd ?? process.cwd();
  const home = options.home ?? homedir();
  const maxEntries = options.maxEntries ?? DEFAULT_MAX_GLOB_ENTRIES;
  const found = new Map<string, { literal: boolean; group: number }>();
  const problems = new Map<string, CertReadError>();
  const addProblem = (path: string, error: CertReadError) => {
    if (!problems.has(path)) problems.set(path, error);
  };
  for (const [index, group] of groups.entries()) {
    const excluded = exclusion(group.exclude ?? [], cwd, home);
    const add = (path: string, literal: boolean) => {
      if (excluded.covers(path)) return;
      const known = found.get(path);
      found.set(path, { literal: (known?.literal ?? false) || literal, group: known?.group ?? index });
    };
    for (const pattern of group.paths) {
      const absolute = resolve(cwd, expandHome(pattern, home));
      const scan = picomatch.scan(absolute);
      if (!scan.isGlob) {
        add(absolute, true);
        continue;
      }
      const walk = new GlobWalk(scan.base || "/", scan.glob, excluded, maxEntries);
      await walk.run();
      if (walk.exhausted) {
        addProblem(absolute, new CertReadError("too_many_files", `${absolute}: more than ${maxEntries} directory entries to look at (limits.maxGlobEntries); nothing it matches is read`));
        continue;
      }
      for (const path of walk.matches) add(path, false);
      for (const { path, error } of walk.problems) addProblem(path, error);
    }
  }
  return {
    matches: [...found].map(([path, { literal, group }]) => ({ path, literal, group })).sort(byPath),
    problems: [...problems]
      .filter(([path]) => !found.has(path))
      .map(([path, error]) => ({ path, error }))
      .sort(byPath),
  };
}
