/**
 * What the endpoint source loads: its module graph (the prober, its context, the inventory and the
 * parse cache) holds none of the packages an endpoint-only prober does not need. Loading code is
 * memory: zod alone was about 20 MiB of the prober's resident memory (bench/endpoints.ts), reached
 * through the shard, which threw the configuration's error class. Recorded in a child started with
 * plain node and the TypeScript loader (helpers/record-loads.mjs), so nothing this test process
 * loaded counts.
 */
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import t from "tap";
import { ROOT } from "./helpers/build.js";
import { packagesOf, runRecorded } from "./helpers/recorded-run.js";

/** The packages (node_modules folders) a child loads when it imports `modules` from src/. */
async function packagesLoadedBy(modules: string[]): Promise<Set<string>> {
  const script = modules.map((module) => `await import(${JSON.stringify(pathToFileURL(join(ROOT, "src", module)).href)});`).join("\n");
  return packagesOf((await runRecorded(script)).loads);
}

t.test("the endpoint source and its context load neither zod, the Kubernetes client, the HTTP server nor yaml", async (t) => {
  const loaded = await packagesLoadedBy(["sources/endpoints.ts", "sources/source.ts", "inventory.ts", "certs/cache.ts", "shard.ts"]);
  // The recording works: the prober's own concurrency limit is there.
  t.ok(loaded.has("p-limit"), "p-limit is loaded");
  for (const name of ["zod", "@kubernetes/client-node", "fastify", "yaml", "node-forge"]) t.notOk(loaded.has(name), `${name} is not loaded`);
});

t.test("the shard's configuration errors are the configuration's: one class, wherever it is imported from", async (t) => {
  const [{ ConfigError: fromConfig }, { ConfigError: fromErrors }, { resolveShard }] = await Promise.all([import("../src/config.js"), import("../src/errors.js"), import("../src/shard.js")]);
  t.equal(fromConfig, fromErrors);
  t.throws(() => resolveShard({ count: 2, index: 5 }, "exporter-0"), fromConfig);
});
