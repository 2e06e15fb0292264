import { homedir } from "node:os";
import { resolve } from "node:path";
import picomatch from "picomatch";
import type { PathGroup } from "../config.js";
import { CertReadError } from "../errors.js";
import { expandHome, type Expansion, type PathProblem } from "./glob.js";

/**
 * The globs of `groups` that matched nothing, each a `not_found` problem named by the glob (made
 * absolute, `~` expanded): a pattern that silently matches nothing is a blind spot, whether its
 * folder is missing or holds no such file. A glob whose walk met a problem (an unreadable folder,
 * too_many_files) is left out, as that problem already says why nothing was found. Literal paths
 * are not globs: a missing one is the reader's `not_found` under its own name.
 */
export function unmatchedGlobs(groups: readonly PathGroup[], { matches, problems }: Expansion, cwd = process.cwd(), home = homedir()): PathProblem[] {
  const unmatched: PathProblem[] = [];
  for (const pattern of new Set(groups.flatMap((group) => group.paths))) {
    const absolute = resolve(cwd, expandHome(pattern, home));
    const scan = picomatch.scan(absolute);
    if (!scan.isGlob) continue;
    // As the walk matches: the part after the glob's static base, against the glob.
    const base = scan.base.endsWith("/") ? scan.base : `${scan.base}/`;
    const matchesGlob = picomatch(scan.glob, { dot: false, posix: true });
    const below = (path: string) => path.startsWith(base);
    if (matches.some(({ path }) => below(path) && matchesGlob(path.slice(base.length)))) continue;
    if (problems.some(({ path }) => path === absolute || below(path) || `${path}/` === base)) continue;
    unmatched.push({ path: absolute, error: new CertReadError("not_found", `${absolute}: nothing matches this pattern`) });
  }
  return unmatched;
}
