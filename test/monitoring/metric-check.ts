import * as path from "node:path"
import { checkout } from "../e2e/node-process.js"
import { exportedSamples, type Scan } from "./exported-metrics.js"
import { pendingMetrics } from "./pending-metrics.js"
import { metricNames } from "./promql-names.js"

// Which metric names a query may read: what prolo's code exports (scanned from src/), the
// names of `pendingMetrics`, and the series Prometheus writes itself.

/** Series Prometheus itself writes for every target and alert (not scraped from anybody). */
export const prometheusOwn: ReadonlySet<string> = new Set([
  "up",
  "scrape_duration_seconds",
  "scrape_samples_scraped",
  "scrape_samples_post_metric_relabeling",
  "scrape_series_added",
  "ALERTS",
  "ALERTS_FOR_STATE"
])

export const pendingNames: ReadonlySet<string> = new Set(Object.values(pendingMetrics).flat())

export interface Known {
  readonly exported: ReadonlySet<string>
  readonly scan: Scan
}

export const knownMetrics = async (): Promise<Known> => {
  const { names, scan } = await exportedSamples(path.join(checkout, "src"))
  return { exported: names, scan }
}

export interface Unknown {
  readonly name: string
  readonly where: string
}

/**
 * The names `exprs` read that nobody exports. `external` accepts names of another exporter
 * (the node exporter's `node_*` in the host rules).
 */
export const unknownNames = (
  known: Known,
  exprs: ReadonlyArray<{ readonly expr: string; readonly where: string }>,
  external: (name: string) => boolean = () => false
): ReadonlyArray<Unknown> =>
  exprs.flatMap(({ expr, where }) =>
    metricNames(expr)
      .filter((name) => !known.exported.has(name) && !pendingNames.has(name) && !prometheusOwn.has(name) && !external(name))
      .map((name) => ({ name, where }))
  )
