/** One measured figure. `baseline` names the row this one is compared with, when there is one. */
export interface BenchRow {
  name: string;
  value: number;
  unit: string;
  baseline?: string;
  /** Lowest and highest of the runs `value` is the median of. */
  range?: [number, number];
  /** The 90th percentile of those runs (nearest rank). */
  p90?: number;
}

/** The middle value of `values` (the mean of the two middle ones for an even count). */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? (sorted[middle] as number) : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

function formatValue(value: number): string {
  if (value >= 100) return Math.round(value).toLocaleString("en-US");
  return value.toPrecision(3);
}

/** Prints rows as an aligned table; a row with a baseline also shows its ratio to that row. */
export function printTable(title: string, rows: BenchRow[]): void {
  const byName = new Map(rows.map((r) => [r.name, r]));
  const lines = rows.map((r) => {
    const base = r.baseline === undefined ? undefined : byName.get(r.baseline);
    const ratio = base && base.value > 0 && base.unit === r.unit ? `${(r.value / base.value).toFixed(2)}x ${base.name}` : "";
    const range = r.range ? `(${formatValue(r.range[0])}–${formatValue(r.range[1])})` : "";
    const p90 = r.p90 === undefined ? "" : `p90 ${formatValue(r.p90)}`;
    return [r.name, formatValue(r.value), r.unit, [p90, range, ratio].filter(Boolean).join("  ")];
  });
  const widths = [0, 1, 2].map((i) => Math.max(...lines.map((l) => l[i]!.length), 0));
  console.log(`\n${title}`);
  console.log("-".repeat(title.length));
  for (const l of lines) {
    console.log(`${l[0]!.padEnd(widths[0]!)}  ${l[1]!.padStart(widths[1]!)} ${l[2]!.padEnd(widths[2]!)}  ${l[3]}`.trimEnd());
  }
}
