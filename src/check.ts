import type { Inventory } from "./inventory.js";
import { countOf, DEFAULT_THRESHOLDS, selectCertificates, selectErrors, visibleText, type CertificateRow } from "./report.js";

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

function locationText(row: { namespace: string; name: string; key: string }): string {
  return visibleText([row.namespace, row.name, row.key].filter(Boolean).join("/"));
}

const isoTime = (unixSeconds: number): string => new Date(unixSeconds * 1000).toISOString();

/** Builds `check`'s report from a scanned inventory, and the exit code its findings call for. */
export function checkReport(inventory: Inventory, options: CheckOptions, now = Date.now() / 1000): CheckReport {
  const defaults = { warningDays: options.warnDays, criticalDays: Math.min(DEFAULT_THRESHOLDS.criticalDays, options.warnDays) };
  const { rows: certs, stateCounts } = selectCertificates(inventory, { now, defaults });
  const { rows: errors } = selectErrors(inventory);
  // A certificate that is not valid yet fails today just as an expired one does.
  const expiring = (row: CertificateRow) => row.state !== "not_yet_valid" && row.daysLeft <= options.warnDays;
  const expiringCount = certs.filter(expiring).length;
  const failing = expiringCount > 0 || stateCounts.not_yet_valid > 0 || (options.failOnError && errors.length > 0);
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
        notBefore: isoTime(r.notBefore),
        notAfter: isoTime(r.notAfter),
        daysLeft: Number(r.daysLeft.toFixed(3)),
        state: r.state,
      })),
      ...errors.map((e) => ({ type: "error", ...e })),
    ];
    return { output: `${JSON.stringify(items, null, 2)}\n`, exitCode };
  }

  const table = formatTable(
    ["DAYS LEFT", "STATE", "SOURCE", "LOCATION", "INDEX", "SUBJECT CN", "NOT AFTER"],
    certs.map((r) => [r.daysLeft.toFixed(1), r.state, r.source, locationText(r), String(r.index), visibleText(r.subjectCN), isoTime(r.notAfter)]),
  );
  let output = certs.length ? `${table}\n` : "No certificates found.\n";
  if (errors.length) {
    output += `\n${formatTable(["SOURCE", "LOCATION", "REASON"], errors.map((e) => [e.source, locationText(e), e.reason]))}\n`;
  }
  output +=
    `\n${countOf(certs.length, "certificate")}, ${expiringCount} expired or expiring within ${countOf(options.warnDays, "day")}, ` +
    `${stateCounts.not_yet_valid} not yet valid, ${countOf(errors.length, "error")}.\n`;
  return { output, exitCode };
}
