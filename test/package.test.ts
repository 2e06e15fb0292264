/**
 * The npm package: `npm pack` builds dist/ first and ships it, and the binary installed from the
 * tarball runs (a check of one certificate, with plain node and production dependencies only).
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { makeCert } from "../scripts/certgen.js";
import { ROOT } from "./helpers/build.js";

t.test("npm pack ships the compiled CLI, and the installed binary works", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "cee-pack-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const packed = JSON.parse(execFileSync("npm", ["pack", "--json", "--pack-destination", dir], { cwd: ROOT, encoding: "utf8", maxBuffer: 16 * 1024 * 1024 })) as { filename: string; files: { path: string }[] }[];
  const files = packed[0]?.files.map((f) => f.path) ?? [];
  for (const path of ["dist/cli.js", "dist/decode-worker.js", "alerts/cert-expiry.rules.yml", "package.json", "README.md"]) t.ok(files.includes(path), `${path} is in the package`);
  t.notOk(files.some((f) => f.startsWith("src/") || f.startsWith("test/")), "no sources or tests");

  const prefix = join(dir, "installed");
  execFileSync("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund", "--omit=dev", "--prefix", prefix, join(dir, packed[0]?.filename ?? "")], { cwd: dir, stdio: "ignore" });
  const bin = join(prefix, "node_modules", ".bin", "cert-expiry-exporter");
  t.ok(readdirSync(join(prefix, "node_modules", ".bin")).includes("cert-expiry-exporter"), "the binary is linked");
  const version = spawnSync(bin, ["--version"], { encoding: "utf8" });
  t.equal(version.stdout.trim(), (JSON.parse(execFileSync("npm", ["pkg", "get", "version"], { cwd: ROOT, encoding: "utf8" })) as string), "--version");
  const certificate = join(dir, "one.crt");
  writeFileSync(certificate, (await makeCert({ cn: "packaged.test", notAfterDays: 200 })).pem);
  const check = spawnSync(bin, ["check", "--file", certificate], { encoding: "utf8" });
  t.equal(check.status, 0, `check exits 0: ${check.stderr}`);
  t.match(check.stdout, "packaged.test");
});
