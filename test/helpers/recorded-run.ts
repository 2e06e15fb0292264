/**
 * A child that records every module it loads (record-loads.mjs), for tests of what a piece of the
 * exporter loads. The child runs `node` without tap's hooks (processes.ts plainNode), with the
 * TypeScript loader, so nothing the test process itself loaded counts.
 */
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ROOT } from "./build.js";
import { plainNode } from "./processes.js";

const RECORDER = fileURLToPath(new URL("./record-loads.mjs", import.meta.url));

/** Runs the ES module `script` in a child on `node`: what it printed, and every module it loaded (a URL or path each). */
export async function runRecorded(script: string, node = process.execPath): Promise<{ stdout: string; loads: string[] }> {
  const dir = await mkdtemp(join(tmpdir(), "cee-recorded-"));
  try {
    const record = join(dir, "loads.txt");
    const [command, args] = plainNode(["--import", "tsx", "--import", RECORDER, "--input-type=module", "-e", script], node);
    const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(command, args, { cwd: ROOT, env: { ...process.env, RECORD_LOADS: record }, stdio: ["ignore", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => (stdout += d));
      child.stderr.on("data", (d: Buffer) => (stderr += d));
      child.on("close", (code) => resolve({ code, stdout, stderr }));
    });
    if (code !== 0) throw new Error(`the child failed (${String(code)}): ${stderr}`);
    return { stdout, loads: (await readFile(record, "utf8")).split("\n").filter(Boolean) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The packages (node_modules folders) that `loads` name. */
export function packagesOf(loads: readonly string[]): Set<string> {
  return new Set(loads.flatMap((line) => [...line.matchAll(/\/node_modules\/((?:@[^/]+\/)?[^/]+)\//g)].map((m) => m[1] as string)));
}
