import { spawnSync } from "node:child_process";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import t from "tap";
import { Exporter } from "../src/app.js";
import { validateConfig } from "../src/config.js";
import { createLogger } from "../src/log.js";
import { makeChain, makeCert } from "../scripts/certgen.js";

t.test("a real /metrics body passes `promtool check metrics` but for the days-unit note", async (t) => {
  const promtool = spawnSync("promtool", ["--version"]);
  t.equal(promtool.error, undefined, "promtool is installed (Debian package prometheus; .ci/run installs it)");
  if (promtool.error) return;

  const dir = await mkdtemp(join(tmpdir(), "cee-promtool-"));
  const chain = await makeChain("lint.test");
  await writeFile(join(dir, "chain.pem"), chain.leaf.pem + chain.intermediate.pem + chain.root.pem);
  await writeFile(join(dir, "odd.pem"), (await makeCert({ subject: 'CN=quote" back\\\\ line\\0A', notAfterDays: -1 })).pem);
  await writeFile(join(dir, "bad.pem"), "garbage");
  const exporter = await Exporter.create(
    validateConfig({ listen: { address: "127.0.0.1", port: 0 }, sources: { files: [{ paths: [join(dir, "*.pem")] }] } }),
    createLogger("silent"),
  );
  await exporter.serve();
  t.teardown(() => exporter.close());
  await exporter.scanOnce();

  for (const accept of ["text/plain", "application/openmetrics-text; version=1.0.0"]) {
    const body = await (await fetch(`http://127.0.0.1:${exporter.port}/metrics`, { headers: { accept } })).text();
    t.match(body, "cert_read_errors{", "the body holds an error series");
    t.match(body, 'subject_cn="lint.test"');
    if (accept !== "text/plain") continue;
    const lint = spawnSync("promtool", ["check", "metrics"], { input: body, encoding: "utf8" });
    const problems = `${lint.stdout}${lint.stderr}`
      .split("\n")
      .map((line) => line.trim())
      .filter(Boolean);
    t.same(
      problems.filter((line) => !line.startsWith("cert_expires_in_days ")),
      [],
      "nothing but the documented exception",
    );
    t.ok(problems.some((line) => line.startsWith("cert_expires_in_days ")), "the days unit is the one note, as designed");
  }
});
