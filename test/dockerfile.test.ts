/**
 * The container image, without a Docker engine: the Dockerfile's structure is parsed and checked, and
 * the compiled output is started with plain `node` from a folder laid out like the image's WORKDIR.
 */
import { spawn } from "node:child_process";
import { mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { isBuiltin } from "node:module";
import { join, relative } from "node:path";
import picomatch from "picomatch";
import t from "tap";
import { makeCert } from "../scripts/certgen.js";
import { ROOT, compileApp } from "./helpers/build.js";
import { freePort } from "./helpers/net.js";


const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
  version: string;
  engines: { node: string };
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

interface Instruction {
  keyword: string;
  args: string;
  line: number;
}

interface Stage {
  image: string;
  name: string | undefined;
  index: number;
  instructions: Instruction[];
}

/** Dockerfile → stages of instructions (comments dropped, `\` continuations joined). */
export function parseDockerfile(text: string): Stage[] {
  const stages: Stage[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const start = i + 1;
    let line = lines[i] ?? "";
    if (/^\s*(#|$)/.test(line)) continue;
    while (/\\\s*$/.test(line) && i + 1 < lines.length) {
      line = line.replace(/\\\s*$/, " ");
      i++;
      if (!/^\s*#/.test(lines[i] ?? "")) line += lines[i] ?? "";
    }
    const match = /^\s*(\w+)\s+(.*)$/.exec(line);
    if (!match) throw new Error(`line ${start}: cannot parse "${line}"`);
    const keyword = (match[1] as string).toUpperCase();
    const args = (match[2] as string).trim().replace(/\s+/g, " ");
    if (keyword === "FROM") {
      const from = /^(?:--platform=\S+ )?(\S+)(?: AS (\S+))?$/i.exec(args);
      if (!from) throw new Error(`line ${start}: cannot parse FROM ${args}`);
      stages.push({ image: from[1] as string, name: from[2], index: stages.length, instructions: [] });
      continue;
    }
    const stage = stages.at(-1);
    if (!stage) {
      if (keyword === "ARG") continue;
      throw new Error(`line ${start}: ${keyword} before FROM`);
    }
    stage.instructions.push({ keyword, args, line: start });
  }
  return stages;
}

const dockerfile = parseDockerfile(readFileSync(join(ROOT, "Dockerfile"), "utf8"));
const final = dockerfile.at(-1) as Stage;
const of = (stage: Stage, keyword: string) => stage.instructions.filter((i) => i.keyword === keyword);
const stageByRef = (ref: string) => dockerfile.find((s) => s.name === ref || String(s.index) === ref);
/** npm commands that install packages. */
const npmInstalls = (stage: Stage) => of(stage, "RUN").flatMap((run) => run.args.split(/&&|;|\|\|/).map((c) => c.trim()).filter((c) => /^npm (ci|install|i|add)\b/.test(c)));
const installsProductionOnly = (command: string) => /^npm ci\b/.test(command) && /(--omit[= ]dev|--production\b)/.test(command);

t.test("multi-stage: TypeScript is compiled in a build stage", async (t) => {
  t.ok(dockerfile.length >= 2, `${dockerfile.length} stages`);
  const builders = dockerfile.slice(0, -1).filter((s) => of(s, "RUN").some((r) => /\bnpm run build\b|\btsc\b/.test(r.args)));
  t.ok(builders.length >= 1, "a stage before the final one runs the build");
  const copiesDist = of(final, "COPY").some((c) => {
    const from = /--from=(\S+)/.exec(c.args)?.[1];
    return from !== undefined && builders.includes(stageByRef(from) as Stage) && /\bdist\b/.test(c.args);
  });
  t.ok(copiesDist, "the final stage copies dist/ from the build stage");
});

t.test("every base image is the Node.js image pinned by an LTS major version", async (t) => {
  const minimum = Number(/(\d+)/.exec(pkg.engines.node)?.[1]);
  const majors = new Set<number>();
  for (const stage of dockerfile) {
    if (stageByRef(stage.image) && stageByRef(stage.image) !== stage) continue; // FROM an earlier stage
    const match = /^node:(\d+)(?:\.\d+){0,2}-(slim|bookworm-slim|trixie-slim)(@sha256:[0-9a-f]{64})?$/.exec(stage.image);
    t.ok(match, `stage ${stage.name ?? stage.index}: ${stage.image} is node:<major>-slim`);
    if (!match) continue;
    const major = Number(match[1]);
    majors.add(major);
    t.equal(major % 2, 0, `Node ${major} is an LTS line (even major)`);
    t.ok(major >= minimum, `Node ${major} satisfies engines ${pkg.engines.node}`);
  }
  t.equal(majors.size, 1, "every stage runs the same Node.js major");
});

t.test("the final stage holds production dependencies only", async (t) => {
  for (const command of npmInstalls(final)) t.ok(installsProductionOnly(command), `final stage: ${command}`);
  let nodeModules = 0;
  for (const copy of of(final, "COPY")) {
    const from = /--from=(\S+)/.exec(copy.args)?.[1];
    const sources = copy.args.replace(/--\S+/g, "").trim().split(" ").slice(0, -1);
    if (from === undefined) {
      // From the build context: never node_modules, never the whole context.
      for (const source of sources) t.notMatch(source, /^(\.|\.\/|\*|node_modules.*)$/, `COPY ${copy.args} copies only named files`);
      continue;
    }
    if (!sources.some((s) => /node_modules/.test(s))) continue;
    nodeModules++;
    const origin = stageByRef(from);
    t.ok(origin, `COPY --from=${from} names a stage`);
    const installs = origin ? npmInstalls(origin) : [];
    t.ok(installs.length > 0, `stage ${from} installs node_modules`);
    for (const command of installs) t.ok(installsProductionOnly(command), `stage ${from}, whose node_modules the final stage copies: ${command}`);
  }
  t.ok(nodeModules + npmInstalls(final).length >= 1, "the final stage gets its node_modules from a production-only install");
});

t.test("the final stage runs as a numeric non-root user, the CLI as entrypoint", async (t) => {
  const users = of(final, "USER");
  t.ok(users.length >= 1, "USER is set");
  const user = users.at(-1)?.args ?? "";
  const match = /^(\d+)(?::(\d+))?$/.exec(user);
  t.ok(match, `USER ${user} is numeric, so Kubernetes can check runAsNonRoot`);
  t.not(Number(match?.[1]), 0, "the uid is not root");
  if (match?.[2] !== undefined) t.not(Number(match[2]), 0, "the gid is not root");
  const entrypointAt = final.instructions.findIndex((i) => i.keyword === "ENTRYPOINT");
  t.ok(entrypointAt > final.instructions.indexOf(users.at(-1) as Instruction), "USER comes before ENTRYPOINT");
  t.same(JSON.parse(of(final, "ENTRYPOINT").at(-1)?.args ?? "null"), ["node", "dist/cli.js"], "exec-form ENTRYPOINT: plain node, no shell, no npm");
  t.same(JSON.parse(of(final, "CMD").at(-1)?.args ?? "null"), ["serve"], 'CMD ["serve"]');
  t.same(of(final, "EXPOSE").map((e) => e.args), ["9798"], "EXPOSE 9798");
  t.equal(of(final, "WORKDIR").at(-1)?.args, "/app", "WORKDIR /app (the deploy manifests and this test start from there)");
  t.ok(of(final, "COPY").some((c) => !/--from/.test(c.args) && /\bpackage\.json\b/.test(c.args)), "package.json is in the image (src/version.ts reads it)");
  t.same(of(final, "VOLUME"), [], "no VOLUME: nothing is written at run time");
  t.same(of(final, "RUN").filter((r) => final.instructions.indexOf(r) > final.instructions.indexOf(users.at(-1) as Instruction)), [], "nothing runs as the user at build time");
});

t.test(".dockerignore sends only what the build needs", async (t) => {
  const patterns = readFileSync(join(ROOT, ".dockerignore"), "utf8")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"));
  // Docker's rule: the last matching pattern wins; `!` re-includes; a folder pattern covers its contents.
  const excluded = (path: string) => {
    let out = false;
    for (const raw of patterns) {
      const negate = raw.startsWith("!");
      const pattern = (negate ? raw.slice(1) : raw).replace(/^\/+|\/+$/g, "");
      if (picomatch(pattern, { dot: true })(path) || picomatch(`${pattern}/**`, { dot: true })(path)) out = !negate;
    }
    return out;
  };
  for (const path of ["node_modules/tap/package.json", "dist/cli.js", ".git/HEAD", "test/shard.test.ts", ".tap/report.json", "coverage/index.html", "deploy/base/kustomization.yaml"]) {
    t.ok(excluded(path), `${path} stays out of the build context`);
  }
  const contextSources = dockerfile.flatMap((s) => of(s, "COPY").filter((c) => !/--from/.test(c.args)).flatMap((c) => c.args.split(" ").slice(0, -1)));
  for (const source of contextSources) t.notOk(excluded(source.replace(/\/$/, "") + (source.endsWith("/") ? "/x.ts" : "")), `${source}, which a stage copies, is in the build context`);
  t.notOk(excluded("src/cli.ts"), "src/ is in the build context");
});

function walk(dir: string, skip: (path: string) => boolean = () => false): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (skip(path)) continue;
    if (entry.isDirectory()) out.push(...walk(path, skip));
    else out.push(path);
  }
  return out.sort();
}

t.test("the compiled output starts with plain node, as the image starts it", async (t) => {
  const compiled = await compileApp();
  t.teardown(() => compiled.remove());
  const app = compiled.dir; // the image's WORKDIR


  t.test("every bare import in the compiled output is a production dependency", async (t) => {
    const imported = new Map<string, string>();
    for (const file of walk(join(app, "dist")).filter((f) => f.endsWith(".js"))) {
      const code = readFileSync(file, "utf8");
      for (const m of code.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+|\brequire\s*\(\s*)["']([^"']+)["']/g)) {
        const spec = m[1] as string;
        if (spec.startsWith(".") || spec.startsWith("/") || spec.startsWith("node:") || isBuiltin(spec)) continue;
        const name = spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : (spec.split("/")[0] as string);
        imported.set(name, relative(app, file));
      }
    }
    t.ok(imported.size > 0, `bare imports: ${[...imported.keys()].join(", ")}`);
    for (const [name, file] of imported) t.ok(name in pkg.dependencies, `${name} (imported by ${file}) is in dependencies${name in pkg.devDependencies ? ", not devDependencies" : ""}`);
  });

  const certs = join(app, "..", "certs");
  mkdirSync(certs);
  const certPath = join(certs, "web.pem");
  writeFileSync(certPath, (await makeCert({ cn: "image.test", notAfterDays: 40 })).pem);
  const before = walk(app, (p) => p === join(app, "node_modules")).map((f) => `${relative(app, f)} ${statSync(f).mtimeMs} ${statSync(f).size}`);

  const port = await freePort();
  // The image's environment: no HOME to write to, nothing inherited from this shell.
  const child = spawn("node", ["dist/cli.js", "serve", "--port", String(port), "--listen-address", "127.0.0.1", "--file", certPath], {
    cwd: app,
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", NODE_ENV: "production", HOME: "/nonexistent" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stdout.resume();
  child.stderr.on("data", (d: Buffer) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  t.teardown(() => {
    if (child.exitCode === null) child.kill("SIGKILL");
  });

  const base = `http://127.0.0.1:${port}`;
  let ready = false;
  for (let attempt = 0; attempt < 200 && !ready && child.exitCode === null; attempt++) {
    ready = await fetch(`${base}/readyz`).then(
      (r) => r.ok,
      () => false,
    );
    if (!ready) await new Promise((resolve) => setTimeout(resolve, 100));
  }
  t.ok(ready, "/readyz answers 200 once the file source has scanned", ready ? {} : { stderr });
  const healthz = await fetch(`${base}/healthz`);
  t.equal(healthz.status, 200, "/healthz");
  const metrics = await (await fetch(`${base}/metrics`)).text();
  t.match(metrics, new RegExp(`cert_not_after_timestamp_seconds\\{[^}]*source="file"[^}]*name="${certPath.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}"`), "the certificate file is exported");
  t.match(metrics, `cert_expiry_exporter_build_info{version="${pkg.version}"`, "the version is read from package.json next to dist/");

  child.kill("SIGTERM");
  t.equal(await exited, 0, "SIGTERM exits 0");
  const after = walk(app, (p) => p === join(app, "node_modules")).map((f) => `${relative(app, f)} ${statSync(f).mtimeMs} ${statSync(f).size}`);
  t.same(after, before, "nothing under the WORKDIR was written (read-only root filesystem)");
});
