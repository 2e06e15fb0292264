import { READ_ERROR_REASONS } from "./errors.js";
import type { Inventory } from "./inventory.js";
import type { SourceKind } from "./model.js";
import {
  CERTIFICATE_STATES,
  DEFAULT_THRESHOLDS,
  SOURCE_KINDS,
  selectCertificates,
  selectErrors,
  visibleText,
  type CertificateRow,
  type CertificateState,
  type ErrorRow,
  type LocationFilter,
  type Window,
} from "./report.js";
import { ANNOTATION_CRITICAL_DAYS, ANNOTATION_WARNING_DAYS } from "./annotations.js";

/** A Kubernetes namespace name (an RFC 1123 label); the same pattern checks the form in the browser. */
const NAMESPACE_PATTERN = "[a-z0-9]([a-z0-9\\-]*[a-z0-9])?";
const NAMESPACE_NAME = new RegExp(`^(?:${NAMESPACE_PATTERN})$`, "u");
const NAMESPACE_MAX_LENGTH = 63;
const PAGE_MAX_DIGITS = 6;
/** Names are cut beyond this: 200 rows of 10 kB names would make the page itself megabytes. */
const SHOWN_MAX_LENGTH = 256;

/** `state=error` shows the read errors alone. */
type StateChoice = CertificateState | "error";
const STATE_CHOICES: readonly StateChoice[] = [...CERTIFICATE_STATES, "error"];

/** What the query string asks for, every value checked. Pages count from 1. */
interface PageQuery {
  state?: StateChoice;
  source?: SourceKind;
  namespace?: string;
  page: number;
  errorsPage: number;
}

/** A query value the page refuses; its message names the parameter and what it takes, never the value. */
class BadQuery extends Error {}

/** A parameter's one value; absent and empty both mean "not given", as an empty form field sends it. */
function single(query: Record<string, unknown>, name: string, maxLength: number): string | undefined {
  const value = query[name];
  if (value === undefined || value === "") return undefined;
  if (typeof value !== "string") throw new BadQuery(`"${name}" may be given once`);
  if (value.length > maxLength) throw new BadQuery(`"${name}" is longer than ${maxLength} characters`);
  return value;
}

function oneOf<T extends string>(query: Record<string, unknown>, name: string, allowed: readonly T[]): T | undefined {
  const value = single(query, name, Math.max(...allowed.map((a) => a.length)));
  if (value !== undefined && !(allowed as readonly string[]).includes(value)) throw new BadQuery(`"${name}" must be one of: ${allowed.join(", ")}`);
  return value as T | undefined;
}

function pageNumber(query: Record<string, unknown>, name: string): number {
  const value = single(query, name, PAGE_MAX_DIGITS);
  if (value === undefined) return 1;
  if (!/^[1-9][0-9]*$/.test(value)) throw new BadQuery(`"${name}" must be a whole number from 1 to ${"9".repeat(PAGE_MAX_DIGITS)}`);
  return Number(value);
}

/** Unknown parameters are ignored; a bad value of a known one is refused, so a typo never silently shows everything. */
function parseQuery(query: Record<string, unknown>): PageQuery {
  const namespace = single(query, "namespace", NAMESPACE_MAX_LENGTH);
  if (namespace !== undefined && !NAMESPACE_NAME.test(namespace)) {
    throw new BadQuery(`"namespace" must be a Kubernetes namespace name: lowercase letters, digits and "-"`);
  }
  return {
    state: oneOf(query, "state", STATE_CHOICES),
    source: oneOf(query, "source", SOURCE_KINDS),
    namespace,
    page: pageNumber(query, "page"),
    errorsPage: pageNumber(query, "errors_page"),
  };
}

const HTML_ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c] as string);
}

/** A name as HTML: cut when long, control and bidi characters made visible, then escaped. */
function shown(text: string): string {
  if (text.length <= SHOWN_MAX_LENGTH) return escapeHtml(visibleText(text));
  // A cut inside a surrogate pair would leave half a character.
  const cut = text.slice(0, /[\ud800-\udbff]/.test(text[SHOWN_MAX_LENGTH - 1] as string) ? SHOWN_MAX_LENGTH - 1 : SHOWN_MAX_LENGTH);
  return `${escapeHtml(visibleText(cut))}…<small> (${text.length} characters)</small>`;
}

function locationCell(row: { namespace: string; name: string; key: string }): string {
  return [row.namespace, row.name, row.key].filter(Boolean).map(shown).join(" / ");
}

const formatCount = (count: number): string => count.toLocaleString("en-US");
const isoTime = (unixSeconds: number): string => new Date(unixSeconds * 1000).toISOString();
const stateLabel = (state: StateChoice): string => (state === "error" ? "read errors" : state.replaceAll("_", " "));

/** A link to this page with some of the query changed; filters and the other table's page are kept. */
function href(query: PageQuery, changes: Partial<PageQuery>): string {
  const next = { ...query, ...changes };
  const params = new URLSearchParams();
  if (next.state) params.set("state", next.state);
  if (next.source) params.set("source", next.source);
  if (next.namespace) params.set("namespace", next.namespace);
  if (next.page > 1) params.set("page", String(next.page));
  if (next.errorsPage > 1) params.set("errors_page", String(next.errorsPage));
  return escapeHtml(`?${params}`);
}

function windowOf(page: number, rows: number): Window {
  return { skip: (page - 1) * rows, take: rows };
}

/** "201–400 of 1,000. Page 2 of 5." and first/previous/next/last links to the table; a page past the end links back into range. */
function pager(query: PageQuery, which: "page" | "errorsPage", matching: number, rows: number, noun: string, tableId: string): string {
  const page = query[which];
  const pages = Math.max(1, Math.ceil(matching / rows));
  const first = (page - 1) * rows + 1;
  let position: string;
  if (matching === 0) position = `No ${noun}s.`;
  else if (page > pages) position = `Page ${formatCount(page)} is past the last page, ${formatCount(pages)}.`;
  else position = `${formatCount(first)}–${formatCount(Math.min(page * rows, matching))} of ${formatCount(matching)}. Page ${formatCount(page)} of ${formatCount(pages)}.`;
  const link = (target: number, label: string, rel = "") => `<a href="${href(query, { [which]: target })}#${tableId}"${rel && ` rel="${rel}"`}>${label}</a>`;
  const links: string[] = [];
  if (page > 1) links.push(link(1, "first"), link(Math.min(page - 1, pages), "previous", "prev"));
  if (page < pages) links.push(link(page + 1, "next", "next"), link(pages, "last"));
  return `<nav class="pager" aria-label="${noun} pages"><span>${position}</span>${links.join("")}</nav>`;
}

function ownThresholds(row: CertificateRow): string {
  const { warningDays, criticalDays } = row.thresholds;
  if (warningDays === DEFAULT_THRESHOLDS.warningDays && criticalDays === DEFAULT_THRESHOLDS.criticalDays) return "";
  return `<br><small>own thresholds: warning ≤ ${warningDays} d, critical ≤ ${criticalDays} d</small>`;
}

function certificateRow(row: CertificateRow): string {
  return (
    `<tr class="${row.state}"><td class="num">${row.daysLeft.toFixed(1)}</td><td>${stateLabel(row.state)}${ownThresholds(row)}</td>` +
    `<td class="name">${shown(row.subjectCN)}</td><td class="name">${locationCell(row)}${row.stale ? ' <small class="stale">(last known: access lost)</small>' : ""}${row.superseded ? ' <small class="superseded">(superseded: a newer one is here)</small>' : ""}</td><td class="more">${row.source}</td><td class="more name">${shown(row.issuerCN)}</td>` +
    `<td class="more">${isoTime(row.notBefore)}</td><td class="more">${isoTime(row.notAfter)}</td><td class="more num">${row.index}</td></tr>`
  );
}

/** The reason's fixed description, never the stored message, which may quote what was read. */
function errorRow(row: ErrorRow): string {
  return `<tr class="error"><td class="more">${row.source}</td><td class="name">${locationCell(row)}</td><td class="name">${row.reason}</td><td>${escapeHtml(READ_ERROR_REASONS[row.reason])}</td></tr>`;
}

function option(value: string, label: string, selected: string | undefined): string {
  return `<option value="${escapeHtml(value)}"${value === (selected ?? "") ? " selected" : ""}>${escapeHtml(label)}</option>`;
}

function filterForm(query: PageQuery): string {
  return `<form class="filters" method="get">
<label>State <select name="state">${option("", "any", query.state)}${STATE_CHOICES.map((s) => option(s, s === "error" ? "read errors only" : stateLabel(s), query.state)).join("")}</select></label>
<label>Source <select name="source">${option("", "any", query.source)}${SOURCE_KINDS.map((s) => option(s, s, query.source)).join("")}</select></label>
<label>Namespace <input name="namespace" value="${escapeHtml(query.namespace ?? "")}" maxlength="${NAMESPACE_MAX_LENGTH}" pattern="${escapeHtml(NAMESPACE_PATTERN)}" size="16" placeholder="any"></label>
<button type="submit">Show</button><a href="?">Clear filters</a>
</form>`;
}

/** The thresholds' legend and the counts in one table; each count links to its rows. */
function summary(query: PageQuery, stateCounts: Record<CertificateState, number>, errorCount: number): string {
  const { warningDays, criticalDays } = DEFAULT_THRESHOLDS;
  const meaning: Record<StateChoice, string> = {
    expired: "notAfter has passed",
    not_yet_valid: "notBefore is still ahead",
    critical: `${criticalDays} days or fewer left`,
    warning: `${warningDays} days or fewer left`,
    ok: `more than ${warningDays} days left`,
    error: "locations that could not be read",
  };
  const counts: Record<StateChoice, number> = { ...stateCounts, error: errorCount };
  const rows = STATE_CHOICES.map((state) => {
    const current = query.state === state ? ' aria-current="true"' : "";
    return `<tr class="${state}"><td>${stateLabel(state)}</td><td>${meaning[state]}</td><td class="num"><a href="${href(query, { state, page: 1, errorsPage: 1 })}"${current}>${formatCount(counts[state])}</a></td></tr>`;
  });
  return `<table class="summary"><thead><tr><th>state</th><th>meaning</th><th class="num">count</th></tr></thead><tbody>
${rows.join("\n")}
</tbody></table>
<p class="note">Secret annotations <code>${ANNOTATION_WARNING_DAYS}</code> and <code>${ANNOTATION_CRITICAL_DAYS}</code> set other thresholds for that Secret's certificates; such rows name their own. Counts follow the source and namespace filters.</p>`;
}

const STYLE = `*{box-sizing:border-box}
body{font-family:system-ui,sans-serif;margin:1rem;color:#222;line-height:1.35}
h1{font-size:1.4rem;margin:0 0 .25rem}h2{font-size:1.1rem;margin:1.25rem 0 .4rem}
table{border-collapse:collapse;width:100%;margin-bottom:.5rem}
th,td{padding:.25rem .5rem;border-bottom:1px solid #ddd;text-align:left;vertical-align:top;font-size:.9rem}
.name{overflow-wrap:anywhere}
th.num,td.num{text-align:right;white-space:nowrap}
table.summary{width:auto}
small{color:#555}
tr.expired td{background:#f8d0d0}tr.not_yet_valid td{background:#e4dcf4}tr.critical td{background:#fbe0c4}tr.warning td{background:#fdf3c0}tr.ok td{background:#e2f4e2}tr.error td{background:#eee}
a[aria-current]{font-weight:bold}
form.filters{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:flex-end;margin:.75rem 0}
form.filters label{display:flex;flex-direction:column;font-size:.85rem}
input,select,button{font:inherit;max-width:100%}
nav.pager{display:flex;flex-wrap:wrap;gap:.3rem .9rem;margin:.4rem 0}
.note{font-size:.85rem;color:#444}
@media (max-width:760px){body{margin:.5rem}.more{display:none}th,td{padding:.25rem .3rem}}`;

function htmlDocument(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>
${STYLE}
</style></head><body>
${body}
</body></html>
`;
}

export interface StatusPageOptions {
  version: string;
  /** The request's parsed query string. */
  query: Record<string, unknown>;
  /** Rows per page, for the certificates and for the errors (http.statusPageRows). */
  rows: number;
  /** Unix seconds; the time the page describes. */
  now?: number;
}

/**
 * The page at `/`: the soonest `rows` certificates of the filtered set and a page of read errors.
 * One pass over the inventory, building rows only for what is shown. Self-contained HTML, no
 * scripts or external assets; a bad query value is a 400 that names the parameter.
 */
export function renderStatusPage(inventory: Inventory, options: StatusPageOptions): { status: number; body: string } {
  let query: PageQuery;
  try {
    query = parseQuery(options.query);
  } catch (err) {
    if (!(err instanceof BadQuery)) throw err;
    return { status: 400, body: htmlDocument("Bad request · cert-expiry-exporter", `<h1>Bad request</h1>\n<p>The query parameter ${escapeHtml(err.message)}.</p>\n<p><a href="?">Status page without filters</a></p>`) };
  }
  const now = options.now ?? Date.now() / 1000;
  const locationFilter: LocationFilter = { source: query.source, namespace: query.namespace };
  const showCertificates = query.state !== "error";
  const showErrors = query.state === undefined || query.state === "error";
  const certificates = selectCertificates(inventory, {
    now,
    filter: { ...locationFilter, state: query.state === "error" ? undefined : query.state },
    window: showCertificates ? windowOf(query.page, options.rows) : { skip: 0, take: 0 },
  });
  const errors = selectErrors(inventory, { filter: locationFilter, window: showErrors ? windowOf(query.errorsPage, options.rows) : { skip: 0, take: 0 } });

  const sections = [
    `<h1>cert-expiry-exporter</h1>
<p>Generated <time datetime="${isoTime(now)}">${isoTime(now)}</time> · version ${escapeHtml(options.version)} · <a href="/metrics">metrics</a> · <a href="/healthz">health</a> · <a href="/readyz">readiness</a></p>`,
    filterForm(query),
    `<h2>States</h2>\n${summary(query, certificates.stateCounts, errors.matching)}`,
  ];
  if (showCertificates) {
    sections.push(`<h2>Certificates, soonest to expire first</h2>
${pager(query, "page", certificates.matching, options.rows, "certificate", "certificates")}
<table class="rows" id="certificates"><thead><tr><th class="num">days left</th><th>state</th><th>subject CN</th><th>location</th><th class="more">source</th><th class="more">issuer CN</th><th class="more">not before</th><th class="more">not after</th><th class="more num">index</th></tr></thead><tbody>
${certificates.rows.map(certificateRow).join("\n")}
</tbody></table>`);
  }
  if (showErrors) {
    sections.push(`<h2>Read errors</h2>
${pager(query, "errorsPage", errors.matching, options.rows, "read error", "read-errors")}
<table class="rows" id="read-errors"><thead><tr><th class="more">source</th><th>location</th><th>reason</th><th>meaning</th></tr></thead><tbody>
${errors.rows.map(errorRow).join("\n")}
</tbody></table>`);
  }
  return { status: 200, body: htmlDocument("cert-expiry-exporter", sections.join("\n")) };
}
