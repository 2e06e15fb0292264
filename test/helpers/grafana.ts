/** The bundled Grafana dashboards as the tests read them, and the query substitutions they share. */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { DASHBOARD_DIR, ROOT, dashboardFiles } from "../../scripts/gen-artifacts.js";

export interface Datasource {
  type?: string;
  uid?: string;
}
export interface Target {
  expr?: string;
  refId?: string;
  datasource?: Datasource;
}
export interface Panel {
  id?: number;
  type: string;
  title?: string;
  datasource?: Datasource;
  targets?: Target[];
  gridPos?: { x: number; y: number; w: number; h: number };
  panels?: Panel[];
}
export interface Variable {
  name: string;
  type: string;
  query?: unknown;
  datasource?: Datasource;
  definition?: string;
  includeAll?: boolean;
  allValue?: string;
}
export interface Dashboard {
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: Variable[] };
}

/** Every dashboard in grafana/, by file name, in file-name order. */
export async function readDashboards(): Promise<{ file: string; dashboard: Dashboard }[]> {
  return Promise.all(dashboardFiles().map(async (file) => ({ file, dashboard: JSON.parse(await readFile(join(ROOT, DASHBOARD_DIR, file), "utf8")) as Dashboard })));
}

/** The panels of a dashboard, those nested in rows included. */
export function allPanels(panels: Panel[]): Panel[] {
  return panels.flatMap((panel) => [panel, ...allPanels(panel.panels ?? [])]);
}

/** Replaces the Grafana variables of a panel query by what "All" and a short range select. */
export function substituteVariables(expr: string): string {
  return expr
    .replace(/\$__rate_interval\b/g, "1m")
    .replace(/\$__interval\b/g, "15s")
    .replace(/\$__range\b/g, "5m")
    .replace(/\$\{?(cluster|namespace|source)\}?/g, ".*");
}
