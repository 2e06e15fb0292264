import { failureReason, type Inventory } from "./inventory.js";

const SECONDS_PER_DAY = 86_400;

export interface StatusRow {
  source: string;
  namespace: string;
  name: string;
  key: string;
  index: number;
  subjectCN: string;
  issuerCN: string;
  notAfter: number;
  daysLeft: number;
  state: "expired" | "critical" | "warning" | "ok";
}

export interface StatusThresholds {
  warningDays: number;
  criticalDays: number;
}

export const DEFAULT_THRESHOLDS: StatusThresholds = { warningDays: 28, criticalDays: 7 };

/** Every certificate in the inventory with its days left, soonest first; shared by `/` and `check`. */
export function certificateRows(inventory: Inventory, now = Date.now() / 1000, defaults: StatusThresholds = DEFAULT_THRESHOLDS): StatusRow[] {
  const rows: StatusRow[] = [];
  for (const entry of inventory.entries()) {
    const warningDays = entry.thresholds?.warningDays ?? defaults.warningDays;
    const criticalDays = entry.thresholds?.criticalDays ?? defaults.criticalDays;
    entry.certificates.forEach((cert, index) => {
      const daysLeft = (cert.notAfter - now) / SECONDS_PER_DAY;
      const state = daysLeft <= 0 ? "expired" : daysLeft <= criticalDays ? "critical" : daysLeft <= warningDays ? "warning" : "ok";
      rows.push({ ...entry.location, index, subjectCN: cert.subjectCN, issuerCN: cert.issuerCN, notAfter: cert.notAfter, daysLeft, state });
    });
  }
  return rows.sort((a, b) => a.daysLeft - b.daysLeft);
}

export interface ErrorRow {
  source: string;
  namespace: string;
  name: string;
  key: string;
  reason: string;
}

export function errorRows(inventory: Inventory): ErrorRow[] {
  const rows: ErrorRow[] = [];
  for (const entry of inventory.entries()) {
    const reason = failureReason(entry);
    if (reason) rows.push({ ...entry.location, reason });
  }
  return rows.sort((a, b) => `${a.source}/${a.namespace}/${a.name}/${a.key}`.localeCompare(`${b.source}/${b.namespace}/${b.name}/${b.key}`));
}

const HTML_ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c] as string);
}

function location(row: { source: string; namespace: string; name: string; key: string }): string {
  return [row.namespace, row.name, row.key].filter(Boolean).map(escapeHtml).join(" / ");
}

/** The page at `/`: self-contained HTML, no scripts or external assets. */
export function renderStatusPage(inventory: Inventory, version: string, now = Date.now() / 1000): string {
  const certs = certificateRows(inventory, now);
  const errors = errorRows(inventory);
  const certRows = certs
    .map(
      (r) =>
        `<tr class="${r.state}"><td>${r.daysLeft.toFixed(1)}</td><td>${r.state}</td><td>${escapeHtml(r.subjectCN)}</td>` +
        `<td>${escapeHtml(r.issuerCN)}</td><td>${new Date(r.notAfter * 1000).toISOString()}</td><td>${r.source}</td><td>${location(r)}</td><td>${r.index}</td></tr>`,
    )
    .join("\n");
  const errorTable = errors.length
    ? `<table><thead><tr><th>source</th><th>location</th><th>reason</th></tr></thead><tbody>\n${errors
        .map((e) => `<tr class="error"><td>${e.source}</td><td>${location(e)}</td><td>${escapeHtml(e.reason)}</td></tr>`)
        .join("\n")}\n</tbody></table>`
    : "<p>None.</p>";
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>cert-expiry-exporter</title>
<style>
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}
table{border-collapse:collapse;margin-bottom:1.5rem}
th,td{padding:.25rem .6rem;border-bottom:1px solid #ddd;text-align:left;font-size:.9rem}
tr.expired td{background:#f8d0d0}tr.critical td{background:#fbe0c4}tr.warning td{background:#fdf3c0}tr.ok td{background:#e2f4e2}tr.error td{background:#eee}
</style></head><body>
<h1>cert-expiry-exporter</h1>
<p>Version ${escapeHtml(version)}. <a href="/metrics">Metrics</a> · <a href="/healthz">Health</a> · <a href="/readyz">Readiness</a></p>
<h2>Certificates (${certs.length})</h2>
<table><thead><tr><th>days left</th><th>state</th><th>subject CN</th><th>issuer CN</th><th>not after</th><th>source</th><th>location</th><th>index</th></tr></thead><tbody>
${certRows}
</tbody></table>
<h2>Errors (${errors.length})</h2>
${errorTable}
</body></html>
`;
}
