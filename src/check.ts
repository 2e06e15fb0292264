import type { ScanFailure } from "./app.js";
import { EXIT_CODES } from "./exit-codes.js";
import type { Inventory } from "./inventory.js";
import type { SourceKind } from "./model.js";
import { countOf, DEFAULT_THRESHOLDS, selectCertificates, selectErrors, selectHealthProblems, visibleText, type CertificateRow } from "./report.js";

export interface CheckReport {
  output: string;
  exitCode: typeof EXIT_CODES.ok | typeof EXIT_CODES.failed | typeof EXIT_CODES.unscanned;
  /** Sources that could not be scanned at all: their scan failed, or all they hold are refusals. */
  unscanned: ScanFailure[];
}

export interface CheckOptions {
  warnDays: number;
  format: "table" | "json";
  /** A location that could not be read fails the check (the default). */
  failOnReadErrors: boolean;
  /** Sources whose scan failed (Exporter.scanOnce). */
  scanFailures?: readonly ScanFailure[];
  /**
   * A superseded certificate (a newer one for the same thing is at its location) fails the check as
   * any other; off when the configuration marks them (metrics.markSuperseded), as the alerts do.
   */
  countSuperseded?: boolean;
}

/**
 * Sources refused everything they asked for: every location they hold is a `forbidden` error (a
 * 403 on every namespace, or at the cluster scope), so there is nothing they could read.
 */
function refusedSources(inventory: Inventory): ScanFailure[] {
  const refusals = new Map<SourceKind, string | null>();
  for (const { location, error } of inventory.entries()) {
    const refused = error?.reason === "forbidden";
    if (!refused) refusals.set(location.source, null);
    else if (!refusals.has(location.source)) refusals.set(location.source, error.message);
  }
  return [...refusals].flatMap(([source, message]) => (message === null ? [] : [{ source, message: `every request was refused: ${message}` }]));
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

/**
 * Builds `check`'s report from a scanned inventory, and the exit code its findings call for: a source
 * that could not be scanned at all (3) before anything due or unreadable (1).
 */
export function checkReport(inventory: Inventory, options: CheckOptions, now = Date.now() / 1000): CheckReport {
  const defaults = { warningDays: options.warnDays, criticalDays: Math.min(DEFAULT_THRESHOLDS.criticalDays, options.warnDays) };
  const { rows: certs, stateCounts } = selectCertificates(inventory, { now, defaults });
  const { rows: errors } = selectErrors(inventory);
  // A certificate that is not valid yet fails today just as an expired one does.
  const expiring = (row: CertificateRow) => row.state !== "not_yet_valid" && row.daysLeft <= options.warnDays && (options.countSuperseded !== false || !row.superseded);
  const expiringCount = certs.filter(expiring).length;
  const scanFailures = options.scanFailures ?? [];
  const unscanned = [...scanFailures, ...refusedSources(inventory).filter((refused) => !scanFailures.some((failure) => failure.source === refused.source))];
  const problems = selectHealthProblems(inventory, now);
  // A key that is not the certificate's, or a broken chain, fails clients today; a key that cannot be
  // compared, or a self-signed certificate (trusted by pinning), is shown only.
  const broken = problems.filter((p) => p.keyPair === "mismatch" || (p.chain !== undefined && p.chain !== "self_signed")).length;
  const failing = expiringCount > 0 || stateCounts.not_yet_valid > 0 || broken > 0 || (options.failOnReadErrors && errors.length > 0);
  const exitCode = unscanned.length > 0 ? EXIT_CODES.unscanned : failing ? EXIT_CODES.failed : EXIT_CODES.ok;

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
        superseded: r.superseded,
      })),
      ...errors.map((e) => ({ type: "error", ...e })),
      ...problems.map((p) => ({ type: "health", ...p })),
    ];
    return { output: `${JSON.stringify(items, null, 2)}\n`, exitCode, unscanned };
  }

  const table = formatTable(
    ["DAYS LEFT", "STATE", "SOURCE", "LOCATION", "INDEX", "SUBJECT CN", "NOT AFTER"],
    certs.map((r) => [r.daysLeft.toFixed(1), r.superseded ? `${r.state} (superseded)` : r.state, r.source, locationText(r), String(r.index), visibleText(r.subjectCN), isoTime(r.notAfter)]),
  );
  let output = certs.length ? `${table}\n` : "No certificates found.\n";
  if (errors.length) {
    output += `\n${formatTable(["SOURCE", "LOCATION", "REASON"], errors.map((e) => [e.source, locationText(e), e.reason]))}\n`;
  }
  if (problems.length) {
    output += `\n${formatTable(["SOURCE", "LOCATION", "PRIVATE KEY", "CHAIN"], problems.map((p) => [p.source, locationText(p), p.keyPair ?? "", p.chain ?? ""]))}\n`;
  }
  output +=
    `\n${countOf(certs.length, "certificate")}, ${expiringCount} expired or expiring within ${countOf(options.warnDays, "day")}, ` +
    `${stateCounts.not_yet_valid} not yet valid, ${countOf(errors.length, "error")}, ${broken} with a mismatched key or a broken chain.\n`;
  return { output, exitCode, unscanned };
}
