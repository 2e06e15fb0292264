import type { Inventory } from "./inventory.js";
import { certificateRows, DEFAULT_THRESHOLDS, errorRows, type StatusRow } from "./status-page.js";

export interface CheckReport {
  output: string;
  exitCode: 0 | 1;
}

export interface CheckOptions {
  warnDays: number;
  format: "table" | "json";
  failOnError: boolean;
}

function formatTable(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i] as number)).join("  ").trimEnd();
  return [line(headers), ...rows.map(line)].join("\n");
}

/** Names that hold control characters (a CN with a newline) must not break the table's lines. */
const printable = (text: string): string => JSON.stringify(text).slice(1, -1);

function locationText(row: { namespace: string; name: string; key: string }): string {
  return printable([row.namespace, row.name, row.key].filter(Boolean).join("/"));
}

/** Builds `check`'s report from a scanned inventory, and the exit code its findings call for. */
export function checkReport(inventory: Inventory, options: CheckOptions, now = Date.now() / 1000): CheckReport {
  const certs = certificateRows(inventory, now, { warningDays: options.warnDays, criticalDays: Math.min(DEFAULT_THRESHOLDS.criticalDays, options.warnDays) });
  const errors = errorRows(inventory);
  const due = (row: StatusRow) => row.daysLeft <= options.warnDays;
  const failing = certs.some(due) || (options.failOnError && errors.length > 0);
  const exitCode = failing ? 1 : 0;

  if (options.format === "json") {
    const items = [
      ...certs.map((r) => ({
        type: "certificate",
        source: r.source,
        namespace: r.namespace,
        name: r.name,
        key: r.key,
        index: r.index,
        subjectCN: r.subjectCN,
        issuerCN: r.issuerCN,
        notAfter: new Date(r.notAfter * 1000).toISOString(),
        daysLeft: Number(r.daysLeft.toFixed(3)),
        state: r.state,
      })),
      ...errors.map((e) => ({ type: "error", ...e })),
    ];
    return { output: `${JSON.stringify(items, null, 2)}\n`, exitCode };
  }

  const table = formatTable(
    ["DAYS LEFT", "STATE", "SOURCE", "LOCATION", "INDEX", "SUBJECT CN", "NOT AFTER"],
    certs.map((r) => [r.daysLeft.toFixed(1), r.state, r.source, locationText(r), String(r.index), printable(r.subjectCN), new Date(r.notAfter * 1000).toISOString()]),
  );
  let output = certs.length ? `${table}\n` : "No certificates found.\n";
  if (errors.length) {
    output += `\n${formatTable(["SOURCE", "LOCATION", "REASON"], errors.map((e) => [e.source, locationText(e), e.reason]))}\n`;
  }
  const dueCount = certs.filter(due).length;
  output += `\n${certs.length} certificates, ${dueCount} expired or expiring within ${options.warnDays} days, ${errors.length} errors.\n`;
  return { output, exitCode };
}
