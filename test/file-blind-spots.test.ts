/**
 * What a glob reaches but cannot read is an error location and one log line, never a silent gap:
 * unreadable directories, names that are not UTF-8, FIFOs, sockets, devices, symlink loops, trees
 * deeper than the cap, and globs that visit more entries than allowed.
 */
import { execFileSync, spawn } from "node:child_process";
import { chmod, mkdir, rm, symlink, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import t from "tap";
import { makeCert } from "../scripts/certgen.js";
import type { PathGroup } from "../src/config.js";
import { FileSource } from "../src/sources/files.js";
import { MAX_GLOB_DEPTH } from "../src/sources/glob.js";
import { KubeconfigSource } from "../src/sources/kubeconfig.js";
import { loggedSource, type SourceView } from "./helpers/logged-source.js";
import { tempDir as makeTempDir } from "./helpers/polled-source.js";
import { plainNode } from "./helpers/processes.js";

type Tap = Pick<typeof t, "teardown" | "equal">;

const tempDir = (t: Tap) => makeTempDir(t, "file-blind-spots");
const group = (paths: string[], exclude: string[] = []): PathGroup => ({ paths, exclude });
const pem = (await makeCert({ cn: "beside" })).pem;

function fileSource(groups: PathGroup[], maxGlobEntries?: number) {
  return loggedSource((ctx) => new FileSource(groups, { intervalSeconds: 3600, maxFileSize: 1024 * 1024, maxGlobEntries }, ctx));
}

/** `dir` joined with raw bytes, for names that are not UTF-8. */
const bytePath = (dir: string, ...name: Array<string | number>) =>
  Buffer.concat([Buffer.from(`${dir}/`), ...name.map((part) => (typeof part === "number" ? Buffer.from([part]) : Buffer.from(part)))]);

/** The error locations as `name reason message`, for one comparison per scan. */
const described = (view: SourceView) => view.errors.map((e) => `${e.name} ${e.reason} ${e.message}`);

t.test("a directory the exporter may not read is unreadable, once; the files beside it are exported", async (t) => {
  const dir = await tempDir(t);
  const locked = join(dir, "locked");
  const skipped = join(dir, "skip", "locked");
  await mkdir(locked);
  await mkdir(skipped, { recursive: true });
  await writeFile(join(dir, "good.crt"), pem);
  await writeFile(join(locked, "inside.crt"), pem);
  for (const path of [dir, join(dir, "skip")]) await chmod(path, 0o755);
  await chmod(locked, 0o000);
  await chmod(skipped, 0o000);
  const child = await otherUser(t, [group([`${dir}/**/*.crt`], [`${dir}/skip/**`])]);

  const first = await child.scan();
  t.ok(first.up);
  t.same(first.errors, [{ source: "file", namespace: "", name: locked, key: "", reason: "unreadable", message: `${locked}: permission denied` }]);
  t.same(first.exported, [join(dir, "good.crt")]);
  t.same(first.warnings, [locked], "one log line; the excluded directory has none");

  t.same(await child.scan(), first, "logged once, not on every scan");

  await chmod(locked, 0o755);
  const fixed = await child.scan();
  t.same(fixed.errors, [], "the error goes with its cause");
  t.same(fixed.exported, [join(dir, "good.crt"), join(locked, "inside.crt")]);
});

t.test("names that are not UTF-8: one error each, distinct, when the glob matches them or ** walks past them", async (t) => {
  const dir = await tempDir(t);
  for (const sub of ["flat", "deep/a"]) await mkdir(join(dir, sub), { recursive: true });
  const bad = [bytePath(dir, "flat/bad", 0xff, ".crt"), bytePath(dir, "flat/bad", 0xfe, ".crt"), bytePath(dir, "deep/a/x", 0xff, "\\.txt")];
  const ignored = [bytePath(dir, "flat/notes", 0xff, ".txt"), bytePath(dir, "flat/other", 0xff, ".md"), bytePath(dir, "deep/.", 0xff)];
  for (const path of [...bad, ...ignored]) await writeFile(path, pem);
  const badFolder = bytePath(dir, "deep/", 0xc3, "x");
  await mkdir(badFolder);
  await writeFile(Buffer.concat([badFolder, Buffer.from("/inside.crt")]), pem);
  await writeFile(join(dir, "flat/good.crt"), pem);
  await writeFile(join(dir, "deep/a/ok.crt"), pem);
  const h = fileSource([group([`${dir}/flat/*.{crt,txt}`], ["*.txt"]), group([`${dir}/deep/**/*.crt`])]);

  const view = await h.scan();
  t.ok(view.up);
  const names = [`${dir}/deep/\\xc3x`, `${dir}/deep/a/x\\xff\\x5c.txt`, `${dir}/flat/bad\\xfe.crt`, `${dir}/flat/bad\\xff.crt`];
  t.same(
    described(view),
    names.map((name) => `${name} unreadable ${name}: file name is not valid UTF-8`),
    "excluded, unmatched and dot names have none; a bad folder is not entered",
  );
  t.same(view.exported, [join(dir, "deep/a/ok.crt"), join(dir, "flat/good.crt")]);
  t.same(view.warnings, names);
  t.equal(h.source.reader.reads, 2, "only the two good files were read");

  const generation = h.inventory.generation;
  const again = await h.scan();
  t.same(again.warnings, names, "logged once");
  t.equal(h.inventory.generation, generation, "the same errors found again do not touch the inventory");

  for (const path of bad) await rm(path);
  await rm(badFolder, { recursive: true });
  const fixed = await h.scan();
  t.same(fixed.errors, []);
  t.same(fixed.exported, [join(dir, "deep/a/ok.crt"), join(dir, "flat/good.crt")]);
});

t.test("a FIFO, a socket, a device and a symlink loop matched by a glob are unreadable; a dangling link is gone", async (t) => {
  const dir = await tempDir(t);
  const fifo = join(dir, "pipe.crt");
  execFileSync("mkfifo", [fifo, join(dir, "pipe.txt")]);
  const socket = join(dir, "socket.crt");
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const device = join(dir, "null.crt");
  await symlink("/dev/null", device);
  const loop = join(dir, "loop.crt");
  await symlink(loop, loop);
  await symlink(join(dir, "nowhere.crt"), join(dir, "dangling.crt"));
  await writeFile(join(dir, "good.crt"), pem);
  const h = fileSource([group([`${dir}/*.crt`])]);

  const view = await h.scan();
  t.ok(view.up, "the scan ends: nothing opened the FIFO and waited");
  t.same(described(view), [
    `${loop} unreadable ${loop}: symlink loop`,
    `${device} unreadable ${device}: is not a regular file`,
    `${fifo} unreadable ${fifo}: is not a regular file`,
    `${socket} unreadable ${socket}: is not a regular file`,
  ]);
  t.same(view.exported, [join(dir, "good.crt")]);
  t.same(view.warnings, [loop, device, fifo, socket]);
  t.equal(h.source.reader.reads, 1);

  for (const path of [fifo, device, loop]) await rm(path);
  await new Promise<void>((resolve) => server.close(() => resolve()));
  const fixed = await h.scan();
  t.same(fixed.errors, []);
  t.same(fixed.warnings, [loop, device, fifo, socket], "nothing more logged");
});

t.test("a glob visiting more than maxGlobEntries is too_many_files; other patterns still work", async (t) => {
  const dir = await tempDir(t);
  // Folders the globs cannot match in are never entered, so their entries do not count.
  for (const sub of ["big", "small", "flat/sub", "dots/..data"]) await mkdir(join(dir, sub), { recursive: true });
  for (let i = 0; i < 101; i++) {
    for (const sub of ["big", "flat/sub", "dots/..data"]) await writeFile(join(dir, sub, `${i}.crt`), pem);
  }
  const others = [join(dir, "dots", "d.crt"), join(dir, "flat", "f.crt"), join(dir, "literal.crt"), join(dir, "small", "s.crt")];
  for (const path of others) await writeFile(path, pem);
  const pattern = `${dir}/big/*.crt`;
  const h = fileSource([group([pattern, `${dir}/small/*.crt`, `${dir}/flat/*.crt`, `${dir}/dots/**/*.crt`, join(dir, "literal.crt")])], 100);

  const view = await h.scan();
  t.ok(view.up);
  t.same(view.errors.map((e) => [e.name, e.reason]), [[pattern, "too_many_files"]]);
  t.match(view.errors[0]?.message, /more than 100 directory entries/);
  t.same(view.exported, others, "none of the pattern's files, all of the others");
  t.same(view.warnings, [pattern]);

  await rm(join(dir, "big", "0.crt"));
  const fixed = await h.scan();
  t.same(fixed.errors, []);
  t.equal(fixed.exported.length, 100 + others.length);
});

t.test(`a tree deeper than ${MAX_GLOB_DEPTH} levels is searched to that depth; the first folder below is reported once`, async (t) => {
  const dir = await tempDir(t);
  const levels = Array.from({ length: MAX_GLOB_DEPTH + 2 }, (_, i) => `n${i + 1}`);
  const at = (depth: number) => join(dir, ...levels.slice(0, depth));
  await mkdir(at(levels.length), { recursive: true });
  await writeFile(join(at(MAX_GLOB_DEPTH), "deepest.crt"), pem);
  await writeFile(join(at(MAX_GLOB_DEPTH + 1), "too-deep.crt"), pem);
  const h = fileSource([group([`${dir}/**/*.crt`])]);

  const view = await h.scan();
  t.ok(view.up);
  const tooDeep = at(MAX_GLOB_DEPTH + 1);
  t.same(view.errors.map((e) => [e.name, e.reason]), [[tooDeep, "unreadable"]]);
  t.match(view.errors[0]?.message, /too deep/);
  t.same(view.exported, [join(at(MAX_GLOB_DEPTH), "deepest.crt")]);
  t.same(view.warnings, [tooDeep]);

  await rm(tooDeep, { recursive: true });
  t.same((await h.scan()).errors, []);
});

t.test("symlinked folders are followed under their own path; a loop back to an ancestor ends with one error", async (t) => {
  const dir = await tempDir(t);
  const a = join(dir, "a");
  await mkdir(a);
  await writeFile(join(a, "good.crt"), pem);
  const loops = [join(a, "back"), join(a, "self"), join(dir, "link", "back"), join(dir, "link", "self")];
  await symlink(dir, join(a, "back"));
  await symlink(".", join(a, "self"));
  await symlink(a, join(dir, "link"));
  const knot = join(a, "knot");
  await symlink(knot, knot);
  const knots = [knot, join(dir, "link", "knot")];
  const h = fileSource([group([`${dir}/**/*.crt`])]);

  const view = await h.scan();
  t.ok(view.up);
  t.same(view.exported, [join(a, "good.crt"), join(dir, "link", "good.crt")]);
  const expected = [...loops, ...knots].sort();
  t.same(
    described(view),
    expected.map((path) => `${path} unreadable ${path}: symlink loop`),
    "a link that ** might enter and that loops is reported too",
  );
  t.same(view.warnings, expected);

  for (const path of [join(a, "back"), join(a, "self"), knot]) await rm(path);
  const fixed = await h.scan();
  t.same(fixed.errors, []);
  t.same(fixed.exported, [join(a, "good.crt"), join(dir, "link", "good.crt")]);
});

t.test("a kubeconfig glob reports what it cannot read as a kubeconfig error location", async (t) => {
  const dir = await tempDir(t);
  await writeFile(bytePath(dir, "admin", 0xff, ".conf"), "apiVersion: v1\nkind: Config\n");
  const h = loggedSource((ctx) => new KubeconfigSource([group([`${dir}/*.conf`])], { intervalSeconds: 3600, maxFileSize: 1024 * 1024 }, ctx));
  const view = await h.scan();
  t.ok(view.up);
  const name = `${dir}/admin\\xff.conf`;
  t.same(view.errors, [{ source: "kubeconfig", namespace: "", name, key: "", reason: "unreadable", message: `${name}: file name is not valid UTF-8` }]);
  t.same(view.warnings, [name]);
});

/**
 * A FileSource in a child process that file permissions apply to. Root reads any directory through
 * two capabilities; as root the child runs without them (setpriv drops them from its bounding set),
 * still as root, so it can load the code wherever the repository is checked out.
 */
async function otherUser(t: Tap, groups: PathGroup[]): Promise<{ scan(): Promise<SourceView> }> {
  const script = fileURLToPath(new URL("helpers/file-source-child.ts", import.meta.url));
  const node = plainNode(["--import", "tsx", script, JSON.stringify(groups)]).flat();
  const [command, ...args] = process.getuid?.() === 0 ? ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--", ...node] : node;
  const child = spawn(command as string, args, {
    cwd: fileURLToPath(new URL("..", import.meta.url)),
    env: { PATH: process.env.PATH },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  t.teardown(() => {
    child.kill("SIGKILL");
  });
  const exited = new Promise<never>((_, reject) => child.once("exit", (code) => reject(new Error(`the child exited with ${code}`))));
  exited.catch(() => undefined);
  return {
    scan: () =>
      Promise.race([
        exited,
        new Promise<SourceView>((resolve) => {
          child.once("message", (view) => resolve(view as SourceView));
          child.send("scan");
        }),
      ]),
  };
}
