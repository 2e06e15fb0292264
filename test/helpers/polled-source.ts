import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Test } from "tap";
import { ParseCache } from "../../src/certs/cache.js";
import { Health } from "../../src/health.js";
import { Inventory } from "../../src/inventory.js";
import { createLogger } from "../../src/log.js";
import { SourceContext, type Source } from "../../src/sources/source.js";

type Tap = Pick<Test, "teardown" | "equal">;

/** A fresh folder, removed when the test ends. */
export async function tempDir(t: Tap, prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `${prefix}-`));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A polled source over a real inventory, parse cache and health, with a scan that must succeed. */
export function polledSource<S extends Source>(t: Tap, make: (ctx: SourceContext) => S) {
  const inventory = new Inventory();
  const cache = new ParseCache(1000);
  const health = new Health(inventory);
  const source = make(new SourceContext(inventory, cache, health, createLogger("silent")));
  return {
    inventory,
    cache,
    health,
    source,
    /** One scan, failing the test if the scan itself failed. */
    async scan(): Promise<void> {
      await source.scanOnce();
      const up = (await health.sourceUp.get()).values.find((v) => v.labels.source === source.name);
      t.equal(up?.value, 1, "the scan succeeded");
    },
  };
}
