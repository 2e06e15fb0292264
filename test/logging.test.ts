/**
 * Log lines: JSON or logfmt, the level as a word, `name` only ever the location's, and an error's
 * stack only at debug. The real logger writes to stderr, so its lines are read from a child process.
 */
import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import t from "tap";
import { plainNode } from "./helpers/processes.js";
import { makeCert } from "../scripts/certgen.js";
import { logfmtLine } from "../src/logfmt.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** Runs node with the TypeScript loader in the repository; resolves with its exit code and stderr (at most 60 s). */
function node(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(...plainNode(["--import", "tsx", ...args]), { cwd: ROOT, env: { ...process.env, ...env }, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d));
    const deadline = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`node ${args.join(" ")} did not finish within 60 s:\n${stderr}`));
    }, 60_000);
    child.on("close", (code) => {
      clearTimeout(deadline);
      resolve({ code, stderr });
    });
  });
}

/** Logs one error at info and one at debug, in `format`, from a fresh process. */
const LOG_AN_ERROR = `
const { createLogger } = await import("./src/log.ts");
const err = new Error("boom", { cause: new Error("inner") });
for (const level of ["info", "debug"]) createLogger(level, process.argv[1]).error({ err, name: "/etc/a.pem" }, "failed");
`;

const loggedError = (format: string) => node(["--input-type=module", "-e", LOG_AN_ERROR, format]);

async function folderWithOneBadFile(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "cee-logging-"));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, "good.pem"), (await makeCert({ cn: "good.test", notAfterDays: 100 })).pem);
  await writeFile(join(dir, "bad.pem"), "not a certificate");
  return dir;
}

t.test("JSON lines: the level as a word, ISO time, and `name` only once: the location's", async (t) => {
  const dir = await folderWithOneBadFile(t);
  const { code, stderr } = await node(["src/cli.ts", "check", "--file", join(dir, "*.pem"), "--log-level", "warn"]);
  t.equal(code, 1, "the bad file fails the check");
  const lines = stderr.trim().split("\n");
  t.equal(lines.length, 1, stderr);
  const line = lines[0] as string;
  t.equal(line.match(/"name":/g)?.length, 1, "no logger name beside the location's");
  const record = JSON.parse(line) as Record<string, unknown>;
  t.match(record, { level: "warn", msg: "cannot read certificates", source: "file", name: join(dir, "bad.pem"), reason: "not_pem_or_der" });
  t.match(record.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
});

t.test("--log-format logfmt, CERT_EXPIRY_EXPORTER_LOG_FORMAT and logFormat in the file", async (t) => {
  const dir = await folderWithOneBadFile(t);
  const expected = new RegExp(`^time=\\S+ level=warn msg="cannot read certificates" source=file namespace="" name=${join(dir, "bad.pem")} key="" reason=not_pem_or_der err="neither PEM nor DER"\n$`);
  const check = ["src/cli.ts", "check", "--file", join(dir, "*.pem"), "--log-level", "warn"];
  t.match((await node([...check, "--log-format", "logfmt"])).stderr, expected, "the flag");
  t.match((await node(check, { CERT_EXPIRY_EXPORTER_LOG_FORMAT: "logfmt" })).stderr, expected, "the variable");
  const config = join(dir, "config.yaml");
  await writeFile(config, "logFormat: logfmt\n");
  t.match((await node([...check, "-c", config])).stderr, expected, "the file");
  const bad = await node([...check, "--log-format", "xml"]);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /^cert-expiry-exporter: logFormat: /);
});

t.test("an error's stack is logged at debug only, in either format", async (t) => {
  const json = (await loggedError("json")).stderr.trim().split("\n").map((line) => JSON.parse(line) as { level: string; err: Record<string, unknown> });
  t.same(json[0]?.err, { type: "Error", message: "boom: inner" }, "at info: type and message");
  t.equal(json[0]?.level, "error");
  t.match(json[1]?.err.stack, /^Error: boom\n\s+at /, "at debug: the stack too");
  const logfmt = (await loggedError("logfmt")).stderr.trim().split("\n");
  t.match(logfmt[0], /^time=\S+ level=error msg=failed err.type=Error err.message="boom: inner" name=\/etc\/a.pem$/);
  t.match(logfmt[1], / err.stack="Error: boom\\n\s+at [^\n]*"/, "one line still: the stack's newlines are escaped");
});

t.test("logfmt values are quoted and escaped so that no value can break or forge a line", async (t) => {
  t.equal(logfmtLine({ msg: "hello", time: "T", level: "info", n: 3, ok: true, none: null }), "time=T level=info msg=hello n=3 ok=true none=null", "time, level and msg first");
  t.equal(logfmtLine({ a: "", b: "two words", c: "x=y", d: 'say "hi"', e: "back\\slash" }), 'a="" b="two words" c="x=y" d="say \\"hi\\"" e="back\\\\slash"');
  t.equal(logfmtLine({ name: "/tmp/a\nlevel=error msg=forged" }), 'name="/tmp/a\\nlevel=error msg=forged"', "a newline cannot start a line");
  t.equal(logfmtLine({ name: "a\u202ecod.exe\u0085\u2028" }), 'name="a\\u202ecod.exe\\u0085\\u2028"', "bidi overrides and Unicode line breaks are escaped");
  t.equal(logfmtLine({ err: { type: "Error", message: "m", cause: { message: "c" } } }), "err.type=Error err.message=m err.cause.message=c", "objects become dotted keys");
  t.equal(logfmtLine({ sources: ["file", "secret"], mixed: [{ a: 1 }] }), 'sources=file,secret mixed="[{\\"a\\":1}]"');
  t.equal(logfmtLine({ "bad key=x": 1 }), "bad_key_x=1", "a key is a bare word");
});
