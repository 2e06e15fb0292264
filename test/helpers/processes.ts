/**
 * Real components started by tests (the exporter, Prometheus, Alertmanager) in process groups of
 * their own, with their output kept for failure messages, and the bounded waits that go with them.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Test } from "tap";

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export interface Started {
  name: string;
  process: ChildProcess;
  output(): string;
}

/** Polls `probe` until it returns true, at most `timeoutMs`; fails early when `child` exits. */
export async function waitFor(what: string, timeoutMs: number, probe: () => Promise<boolean>, child?: Started): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child && child.process.exitCode !== null) throw new Error(`${what}: the process exited (${child.process.exitCode}):\n${child.output()}`);
    try {
      if (await probe()) return;
    } catch {
      // not up yet
    }
    await sleep(250);
  }
  throw new Error(`${what}: not ready within ${timeoutMs} ms${child ? `:\n${child.output()}` : ""}`);
}

/**
 * The command line that runs `node <args>` without tap's hooks. tap puts its process-info loader and
 * coverage into the environment of every child it sees spawned, even when a test removed them, and
 * a child running TypeScript through another loader (tsx) then reports coverage of src/ that merges
 * badly with the test process's own. env(1) removes them after tap has added them.
 */
export function plainNode(args: string[], node = process.execPath): [command: string, args: string[]] {
  return ["env", ["-u", "NODE_OPTIONS", "-u", "NODE_V8_COVERAGE", node, ...args]];
}

/** Starts a process in its own process group, so that stopping it stops its children too. */
export function start(name: string, command: string, args: string[], cwd?: string): Started {
  const child = spawn(command, args, { cwd, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString()).slice(-20_000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  return { name, process: child, output: () => output };
}

/** Debian's Prometheus, which CI installs. */
export const PROMETHEUS = "/usr/bin/prometheus";

/** A real Prometheus on loopback with `config`, its data in `dataDir`, warnings only, and `flags` besides. */
export function startPrometheus(config: string, dataDir: string, port: number, flags: string[] = []): Started {
  return start("prometheus", PROMETHEUS, [`--config.file=${config}`, `--storage.tsdb.path=${dataDir}`, `--web.listen-address=127.0.0.1:${port}`, ...flags, "--log.level=warn"]);
}

/** SIGTERM to the process group, SIGKILL after 5 s. */
export async function stop(started: Started): Promise<void> {
  const { process: child } = started;
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const signal = (sig: NodeJS.Signals): void => {
    try {
      process.kill(-(child.pid as number), sig);
    } catch {
      // already gone
    }
  };
  signal("SIGTERM");
  const timer = setTimeout(() => signal("SIGKILL"), 5_000);
  await exited;
  clearTimeout(timer);
}

export async function getJson<T>(url: string): Promise<T> {
  const response = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  return (await response.json()) as T;
}

/** True when `binary` is not installed. */
export function missing(binary: string): boolean {
  return (spawnSync(binary, ["--version"]).error as NodeJS.ErrnoException | undefined)?.code === "ENOENT";
}

/**
 * A temporary directory and a list for the components a test starts there; at teardown the
 * components stop, last started first, and the directory goes.
 */
export async function workspace(t: Test, prefix: string): Promise<{ dir: string; started: Started[] }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  const started: Started[] = [];
  t.teardown(async () => {
    for (const child of [...started].reverse()) await stop(child);
    await rm(dir, { recursive: true, force: true });
  });
  return { dir, started };
}
