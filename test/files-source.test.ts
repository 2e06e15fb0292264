import { execFileSync } from "node:child_process";
import { webcrypto } from "node:crypto";
import { mkdir, rename, rm, stat, symlink, utimes, writeFile } from "node:fs/promises";
import { setImmediate as nextTurn } from "node:timers/promises";
import { join } from "node:path";
import t from "tap";
import { crlPem, csrPem, makeCert, makeChain, pkcs7, privateKeyPem } from "../scripts/certgen.js";
import type { PathGroup } from "../src/config.js";
import type { LocationEntry } from "../src/model.js";
import { FileReader } from "../src/sources/file-reader.js";
import { FileSource } from "../src/sources/files.js";
import { expandHome, expandPathGroups } from "../src/sources/glob.js";
import { polledSource, tempDir as makeTempDir } from "./helpers/polled-source.js";

type Tap = Pick<typeof t, "teardown" | "equal">;

const tempDir = (t: Tap) => makeTempDir(t, "files-source");

function harness(t: Tap, groups: PathGroup[], maxFileSize = 1024 * 1024) {
  const rig = polledSource(t, (ctx) => new FileSource(groups, { intervalSeconds: 3600, maxFileSize }, ctx));
  const { inventory } = rig;
  return {
    ...rig,
    entries(): LocationEntry[] {
      return [...inventory.entries()].sort((a, b) => (a.location.name < b.location.name ? -1 : 1));
    },
    names(): string[] {
      return this.entries().map((e) => e.location.name);
    },
    at(name: string): LocationEntry | undefined {
      return inventory.get({ source: "file", namespace: "", name, key: "" });
    },
  };
}

/** A whole second, so that two files can have exactly the same mtime. */
const FIXED_TIME = new Date("2024-01-01T00:00:00Z");

const group = (paths: string[], exclude: string[] = []): PathGroup => ({ paths, exclude });

t.test("globs with ** and excludes by name and by path; dot folders are not descended", async (t) => {
  const dir = await tempDir(t);
  const cert = await makeCert({ cn: "glob" });
  for (const sub of ["a", "a/b/c", "a/skip", "a/.hidden"]) await mkdir(join(dir, sub), { recursive: true });
  const files = ["top.crt", "a/x.crt", "a/b/c/y.crt", "a/skip/z.crt", "a/old-w.crt", "a/.hidden/h.crt", "a/n.txt"];
  for (const file of files) await writeFile(join(dir, file), cert.pem);
  const h = harness(t, [
    group([`${dir}/**/*.crt`], ["old-*.crt", `${dir}/a/skip/**`]),
    // The same file through a second group and a literal path is still one location.
    group([join(dir, "a/x.crt"), join(dir, "a/n.txt")]),
  ]);
  await h.scan();
  t.same(h.names(), ["a/b/c/y.crt", "a/n.txt", "a/x.crt", "top.crt"].map((f) => join(dir, f)));
  for (const entry of h.entries()) {
    t.equal(entry.error, undefined);
    t.equal(entry.certificates.length, 1);
    t.equal(entry.certificates[0]?.subjectCN, "glob");
  }
});

t.test("expandPathGroups: relative paths, ~ and literal paths that do not exist", async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, "one.pem"), "x");
  t.equal(expandHome("~", "/home/u"), "/home/u");
  t.equal(expandHome("~/x/y", "/home/u"), "/home/u/x/y");
  t.equal(expandHome("~other/x", "/home/u"), "~other/x");
  const { matches, problems } = await expandPathGroups([group(["*.pem", "missing.pem", "~/also-missing"])], { cwd: dir, home: "/nonexistent-home" });
  t.same(problems, []);
  t.same(matches, [
    { path: "/nonexistent-home/also-missing", literal: true, group: 0 },
    { path: join(dir, "missing.pem"), literal: true, group: 0 },
    { path: join(dir, "one.pem"), literal: false, group: 0 },
  ]);
});

t.test("~ is the home folder, for globs and literal paths", async (t) => {
  const home = await tempDir(t);
  const saved = process.env.HOME;
  process.env.HOME = home;
  t.teardown(() => {
    process.env.HOME = saved;
  });
  await mkdir(join(home, "certs"));
  await writeFile(join(home, "certs", "a.pem"), (await makeCert({ cn: "home-a" })).pem);
  await writeFile(join(home, "single.pem"), (await makeCert({ cn: "home-single" })).pem);
  const h = harness(t, [group(["~/certs/*.pem", "~/single.pem"])]);
  await h.scan();
  t.same(h.names(), [join(home, "certs", "a.pem"), join(home, "single.pem")]);
  t.same(
    h.entries().map((e) => e.certificates[0]?.subjectCN),
    ["home-a", "home-single"],
  );
});

t.test("a rotated symlink (kubelet-client-current.pem) is followed to its new target", async (t) => {
  const dir = await tempDir(t);
  const pki = join(dir, "pki");
  await mkdir(pki);
  const first = await makeCert({ cn: "system:node:n1", serial: "1a0001", key: "ed25519" });
  const second = await makeCert({ cn: "system:node:n1", serial: "1a0002", key: "ed25519" });
  t.equal(first.pem.length, second.pem.length);
  const oldPath = join(pki, "kubelet-client-2024-01-01.pem");
  const newPath = join(pki, "kubelet-client-2024-02-01.pem");
  await writeFile(oldPath, first.pem);
  await writeFile(newPath, second.pem);
  // Same size and same mtime (to the nanosecond): only the target's identity tells them apart.
  await utimes(oldPath, FIXED_TIME, FIXED_TIME);
  await utimes(newPath, FIXED_TIME, FIXED_TIME);
  const current = join(pki, "kubelet-client-current.pem");
  await symlink(oldPath, current);

  const h = harness(t, [group([current]), group([join(pki, "*-current.pem")])]);
  await h.scan();
  t.same(h.names(), [current], "the location is the symlink's path, as configured");
  t.same(h.at(current)?.certificates.map((c) => c.serial), ["1a0001"]);

  // Rotate as kubelet does: a new symlink renamed over the old one.
  await symlink(newPath, join(pki, ".tmp-link"));
  await rename(join(pki, ".tmp-link"), current);
  await h.scan();
  t.same(h.at(current)?.certificates.map((c) => c.serial), ["1a0002"], "the new serial is exported");
  t.same(
    h.entries().flatMap((e) => e.certificates.map((c) => c.serial)),
    ["1a0002"],
    "the old serial is gone",
  );
});

t.test("an unchanged file is neither read nor parsed again; a changed one is", async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, "tls.crt");
  const first = await makeCert({ cn: "same", serial: "2b0001", key: "ed25519" });
  const second = await makeCert({ cn: "same", serial: "2b0002", key: "ed25519" });
  await writeFile(path, first.pem);
  await utimes(path, FIXED_TIME, FIXED_TIME);
  const h = harness(t, [group([`${dir}/*.crt`])]);
  await h.scan();
  t.equal(h.source.reader.reads, 1);
  const parses = h.cache.hits + h.cache.misses;
  const generation = h.inventory.generation;

  await h.scan();
  await h.scan();
  t.equal(h.source.reader.reads, 1, "not read again");
  t.equal(h.cache.hits + h.cache.misses, parses, "not parsed again");
  t.equal(h.inventory.generation, generation, "the inventory was not touched");
  t.same(h.at(path)?.certificates.map((c) => c.serial), ["2b0001"]);

  // Rewritten in place with the same size and the old mtime put back: ctime still tells.
  t.equal(first.pem.length, second.pem.length);
  await writeFile(path, second.pem);
  await utimes(path, FIXED_TIME, FIXED_TIME);
  t.equal((await stat(path, { bigint: true })).mtimeNs, BigInt(FIXED_TIME.getTime()) * 1_000_000n, "same mtime as before");
  await h.scan();
  t.equal(h.source.reader.reads, 2, "read again after the change");
  t.same(h.at(path)?.certificates.map((c) => c.serial), ["2b0002"]);
});

t.test("a vanished file loses its series; a literal path that vanishes becomes not_found", async (t) => {
  const dir = await tempDir(t);
  const globbed = join(dir, "globbed.pem");
  const literal = join(dir, "named.crt");
  await writeFile(globbed, (await makeCert()).pem);
  await writeFile(literal, (await makeCert()).pem);
  const h = harness(t, [group([`${dir}/*.pem`, literal])]);
  await h.scan();
  t.same(h.names(), [globbed, literal]);
  await rm(globbed);
  await rm(literal);
  await h.scan();
  t.same(h.names(), [`${dir}/*.pem`, literal], "the globbed file has no location any more; the glob, matching nothing, has one");
  t.equal(h.at(`${dir}/*.pem`)?.error?.reason, "not_found");
  t.equal(h.at(literal)?.error?.reason, "not_found");
  t.same(h.at(literal)?.certificates, []);
  // It comes back when the file does.
  await writeFile(literal, (await makeCert({ cn: "back" })).pem);
  await h.scan();
  t.equal(h.at(literal)?.error, undefined);
  t.equal(h.at(literal)?.certificates[0]?.subjectCN, "back");
});

t.test("unreadable paths: a folder, a FIFO, a symlink loop; a dangling symlink is not_found", async (t) => {
  const dir = await tempDir(t);
  const folder = join(dir, "folder.crt");
  await mkdir(folder);
  const fifo = join(dir, "pipe.crt");
  execFileSync("mkfifo", [fifo]);
  const loop = join(dir, "loop.crt");
  await symlink(loop, loop);
  const dangling = join(dir, "dangling.crt");
  await symlink(join(dir, "nowhere.crt"), dangling);
  const good = join(dir, "good.crt");
  await writeFile(good, (await makeCert({ cn: "fine" })).pem);
  const h = harness(t, [group([folder, fifo, loop, dangling, good])]);
  await h.scan();
  t.equal(h.at(folder)?.error?.reason, "unreadable");
  t.match(h.at(folder)?.error?.message, /directory/);
  t.equal(h.at(fifo)?.error?.reason, "unreadable", "a FIFO is refused without opening it (which would hang)");
  t.equal(h.at(loop)?.error?.reason, "unreadable");
  t.equal(h.at(loop)?.error?.message, `${loop}: symlink loop`);
  t.equal(h.at(dangling)?.error?.reason, "not_found");
  t.equal(h.at(good)?.certificates[0]?.subjectCN, "fine", "the others are still exported");
  t.equal(h.source.reader.reads, 1, "only the regular file was read");
  const errors = (await h.health.readErrors.get()).values;
  t.equal(errors.find((v) => v.labels.reason === "unreadable")?.value, 3);
});

t.test("an oversized file is too_large and not read", async (t) => {
  const dir = await tempDir(t);
  const { root, intermediate, leaf } = await makeChain();
  const big = join(dir, "big.pem");
  const small = join(dir, "small.pem");
  await writeFile(big, leaf.pem + intermediate.pem + root.pem);
  await writeFile(small, leaf.pem);
  const limit = leaf.pem.length + 10;
  const h = harness(t, [group([`${dir}/*.pem`])], limit);
  await h.scan();
  t.equal(h.at(big)?.error?.reason, "too_large");
  t.same(h.at(big)?.certificates, []);
  t.equal(h.at(small)?.certificates.length, 1);
  t.equal(h.source.reader.reads, 1, "the big file was never read");
  await h.scan();
  t.equal(h.source.reader.reads, 1);
});

t.test("garbage is not_pem_or_der; key-, CSR- and public-key-only files have no location at all; a CRL-only file has its CRL", async (t) => {
  const dir = await tempDir(t);
  const ca = await makeCert({ cn: "crl-ca", ca: true });
  const key = await privateKeyPem(ca);
  const files: Record<string, string | Buffer> = {
    "garbage.pem": "this is not a certificate\n",
    "tls.key": key,
    "request.csr": await csrPem("node"),
    "revoked.crl": await crlPem(ca),
    "sa.pub": `-----BEGIN PUBLIC KEY-----\n${Buffer.from(await webcrypto.subtle.exportKey("spki", ca.keys.publicKey)).toString("base64")}\n-----END PUBLIC KEY-----\n`,
    "key-and-csr.pem": key + (await csrPem("both")),
  };
  for (const [name, content] of Object.entries(files)) await writeFile(join(dir, name), content);
  const h = harness(t, [group([`${dir}/*`])]);
  await h.scan();
  t.same(h.names(), [join(dir, "garbage.pem"), join(dir, "revoked.crl")], "only the garbage and the CRL have a location");
  t.notOk(h.at(join(dir, "revoked.crl"))?.error, "a CRL-only file is not a read error");
  t.equal(h.at(join(dir, "revoked.crl"))?.crls?.length, 1, "it holds its CRL");
  t.equal(h.at(join(dir, "garbage.pem"))?.error?.reason, "not_pem_or_der");
  const errors = (await h.health.readErrors.get()).values.filter((v) => v.value > 0);
  t.same(
    errors.map((v) => v.labels.reason),
    ["not_pem_or_der"],
  );
  t.equal(h.source.reader.reads, 6, "every file was looked at");
});

t.test("a mixed bundle, DER and PKCS#7 files; a certificate file turning into a key file loses its location", async (t) => {
  const dir = await tempDir(t);
  const { root, intermediate, leaf } = await makeChain("mixed.test");
  const key = await privateKeyPem(leaf);
  const bundle = join(dir, "bundle.pem");
  await writeFile(bundle, key + leaf.pem + (await csrPem()) + intermediate.pem + (await crlPem(root)) + root.pem);
  await writeFile(join(dir, "leaf.der"), leaf.der);
  await writeFile(join(dir, "chain.p7b"), pkcs7([leaf, intermediate]));
  const h = harness(t, [group([`${dir}/*`])]);
  await h.scan();
  t.same(
    h.at(bundle)?.certificates.map((c) => c.subjectCN),
    ["mixed.test", "Test Intermediate CA", "Test Root CA"],
    "certificates in file order; the key, CSR and CRL are skipped",
  );
  t.same(
    h.at(join(dir, "leaf.der"))?.certificates.map((c) => c.subjectCN),
    ["mixed.test"],
  );
  t.equal(h.at(join(dir, "chain.p7b"))?.certificates.length, 2);

  await writeFile(bundle, key);
  await h.scan();
  t.equal(h.at(bundle), undefined, "now a key file: no location, no error");
  t.equal(h.inventory.size, 2);
});

t.test("an error clears when the file is fixed, and start/stop run the poller", async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, "x.pem");
  await writeFile(path, "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n");
  const h = harness(t, [group([path])]);
  await h.source.start();
  t.ok(h.at(path)?.error, "the first scan ran before start() resolved");
  t.same(h.health.pendingSources(), []);
  await h.source.stop();
  await writeFile(path, (await makeCert({ cn: "fixed" })).pem);
  await h.scan();
  t.equal(h.at(path)?.error, undefined);
  t.equal(h.at(path)?.certificates[0]?.subjectCN, "fixed");
});

t.test("FileReader awaits an asynchronous interpret, and zeroes the bytes only after it", async (t) => {
  const dir = await tempDir(t);
  const good = join(dir, "good.bin");
  const bad = join(dir, "bad.bin");
  await writeFile(good, "secret bytes");
  await writeFile(bad, "x");
  const seen: Buffer[] = [];
  const reader = new FileReader(
    async (bytes, path) => {
      seen.push(bytes);
      await nextTurn();
      if (path === bad) throw new Error("cannot decode");
      return bytes.toString("utf8");
    },
    { maxFileSize: 1024 },
  );
  reader.beginScan();
  t.same(await reader.read(good), { kind: "value", value: "secret bytes" }, "the bytes were whole while interpret ran");
  const failed = await reader.read(bad);
  t.equal(failed.kind === "error" && failed.error.reason, "corrupt_certificate", "a rejection is an error outcome");
  t.ok(
    seen.every((bytes) => bytes.every((byte) => byte === 0)),
    "zeroed afterwards",
  );
});
