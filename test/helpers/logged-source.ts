import { pino } from "pino";
import { ParseCache } from "../../src/certs/cache.js";
import { Health } from "../../src/health.js";
import { Inventory } from "../../src/inventory.js";
import { SourceContext, type Source } from "../../src/sources/source.js";

export interface ErrorLocation {
  source: string;
  name: string;
  key: string;
  reason: string;
  message: string;
}

/** What a source holds and logged after a scan; plain data, so a child process can send it. */
export interface SourceView {
  /** The scan succeeded. */
  up: boolean;
  errors: ErrorLocation[];
  /** Names of the locations that hold certificates. */
  exported: string[];
  /** Location names of the "cannot read certificates" log lines so far, one per line logged. */
  warnings: string[];
}

const byText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** A source over a real inventory, parse cache and health, whose log lines are kept rather than printed. */
export function loggedSource<S extends Source>(make: (ctx: SourceContext) => S) {
  const logs: Array<Record<string, unknown>> = [];
  const log = pino({ level: "info" }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
  const inventory = new Inventory();
  const health = new Health(inventory);
  const source = make(new SourceContext(inventory, new ParseCache(1000), health, log));
  return {
    source,
    inventory,
    /** One scan, and what it left. */
    async scan(): Promise<SourceView> {
      await source.scanOnce();
      const up = (await health.sourceUp.get()).values.find((v) => v.labels.source === source.name)?.value === 1;
      const entries = [...inventory.entries()];
      return {
        up,
        errors: entries
          .filter((e) => e.error)
          .map(({ location, error }) => ({ ...location, reason: error?.reason ?? "", message: error?.message ?? "" }))
          .sort((a, b) => byText(a.name, b.name)),
        exported: entries
          .filter((e) => e.certificates.length > 0)
          .map((e) => e.location.name)
          .sort(byText),
        warnings: logs
          .filter((line) => line.msg === "cannot read certificates")
          .map((line) => String(line.name))
          .sort(byText),
      };
    },
  };
}
