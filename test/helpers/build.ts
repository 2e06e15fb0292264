import { execFile } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

export const ROOT = join(import.meta.dirname, "..", "..");

export interface CompiledApp {
  /** Laid out like the image's WORKDIR: dist/, package.json, node_modules. */
  dir: string;
  /** The compiled CLI entry point. */
  cli: string;
  remove(): void;
}

/**
 * Compiles src/ with the production tsconfig into a fresh folder laid out as the container image
 * is, so tests start the exporter with plain `node` exactly as users and the image do. Without
 * source maps: they would map the compiled children's coverage onto src/ over the in-process
 * coverage of the same files, and the merged report came out different from run to run.
 */
export async function compileApp(): Promise<CompiledApp> {
  const tmp = mkdtempSync(join(tmpdir(), "cee-build-"));
  const dir = join(tmp, "app");
  mkdirSync(dir);
  await promisify(execFile)(process.execPath, [join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", join(ROOT, "tsconfig.build.json"), "--outDir", join(dir, "dist"), "--sourceMap", "false"], { cwd: ROOT });
  copyFileSync(join(ROOT, "package.json"), join(dir, "package.json"));
  symlinkSync(join(ROOT, "node_modules"), join(dir, "node_modules"), "dir");
  return { dir, cli: join(dir, "dist", "cli.js"), remove: () => rmSync(tmp, { recursive: true, force: true }) };
}
