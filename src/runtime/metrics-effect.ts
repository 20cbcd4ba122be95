import { MetricState, Option } from "effect"
import type { MetricPair } from "effect"

// Renders Effect `Metric.snapshot` in the Prometheus text format (0.0.4), grouping all tag
// sets of one name under a single HELP/TYPE, and leaving out any family whose sample names
// are already taken (by prom-client or by an earlier Effect metric of another type).

type Kind = "counter" | "gauge" | "histogram" | "summary"

interface Family {
  readonly name: string
  readonly kind: Kind
  readonly help: string
  readonly lines: Array<string>
}

export interface RenderedEffectMetrics {
  readonly text: string
  /** Names left out because they clash; the caller reports them. */
  readonly skipped: ReadonlyArray<string>
}

const sanitize = (name: string): string => {
  const clean = name.replace(/[^a-zA-Z0-9_:]/g, "_")
  return /^[0-9]/.test(clean) ? `_${clean}` : clean
}
const sanitizeLabel = (name: string): string => sanitize(name).replace(/:/g, "_")

const escapeLabel = (v: string): string => v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")
const escapeHelp = (v: string): string => v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")

const num = (v: number | bigint): string => {
  if (typeof v === "bigint") return v.toString()
  if (Number.isNaN(v)) return "NaN"
  if (v === Infinity) return "+Inf"
  if (v === -Infinity) return "-Inf"
  return String(v)
}

const labels = (pairs: ReadonlyArray<readonly [string, string]>): string =>
  pairs.length === 0 ? "" : `{${pairs.map(([k, v]) => `${sanitizeLabel(k)}="${escapeLabel(v)}"`).join(",")}}`

/** Every sample name a family of this kind writes. */
export const sampleNames = (name: string, kind: Kind): ReadonlyArray<string> => {
  switch (kind) {
    case "counter":
    case "gauge":
      return [name]
    case "histogram":
      return [name, `${name}_bucket`, `${name}_sum`, `${name}_count`]
    case "summary":
      return [name, `${name}_sum`, `${name}_count`]
  }
}

const familyOf = (pair: MetricPair.MetricPair.Untyped): { name: string; kind: Kind; lines: Array<string> } => {
  const key = pair.metricKey
  const state: unknown = pair.metricState
  const tags = key.tags.map((t) => [t.key, t.value] as const)
  const base = sanitize(key.name)
  if (MetricState.isCounterState(state)) {
    // Prometheus lints require counters to end in _total; Effect names often do not.
    const name = base.endsWith("_total") ? base : `${base}_total`
    return { name, kind: "counter", lines: [`${name}${labels(tags)} ${num(state.count)}`] }
  }
  if (MetricState.isFrequencyState(state)) {
    const name = base.endsWith("_total") ? base : `${base}_total`
    const lines = [...state.occurrences].map(([value, count]) => `${name}${labels([...tags, ["key", value]])} ${num(count)}`)
    return { name, kind: "counter", lines }
  }
  if (MetricState.isGaugeState(state)) {
    return { name: base, kind: "gauge", lines: [`${base}${labels(tags)} ${num(state.value)}`] }
  }
  if (MetricState.isHistogramState(state)) {
    const lines = state.buckets.map(
      ([le, count]) => `${base}_bucket${labels([...tags, ["le", num(le)]])} ${num(count)}`
    )
    if (!state.buckets.some(([le]) => le === Infinity)) {
      lines.push(`${base}_bucket${labels([...tags, ["le", "+Inf"]])} ${num(state.count)}`)
    }
    lines.push(`${base}_sum${labels(tags)} ${num(state.sum)}`, `${base}_count${labels(tags)} ${num(state.count)}`)
    return { name: base, kind: "histogram", lines }
  }
  if (MetricState.isSummaryState(state)) {
    const lines = state.quantiles.map(
      ([q, v]) => `${base}${labels([...tags, ["quantile", num(q)]])} ${num(Option.getOrElse(v, () => NaN))}`
    )
    lines.push(`${base}_sum${labels(tags)} ${num(state.sum)}`, `${base}_count${labels(tags)} ${num(state.count)}`)
    return { name: base, kind: "summary", lines }
  }
  return { name: base, kind: "gauge", lines: [] }
}

export const renderEffectMetrics = (
  snapshot: ReadonlyArray<MetricPair.MetricPair.Untyped>,
  taken: ReadonlySet<string>
): RenderedEffectMetrics => {
  const families = new Map<string, Family>()
  const used = new Set(taken)
  const skipped = new Set<string>()
  for (const pair of snapshot) {
    const { name, kind, lines } = familyOf(pair)
    const existing = families.get(name)
    if (existing !== undefined && existing.kind === kind) {
      existing.lines.push(...lines)
      continue
    }
    if (existing !== undefined || sampleNames(name, kind).some((n) => used.has(n))) {
      skipped.add(pair.metricKey.name)
      continue
    }
    sampleNames(name, kind).forEach((n) => used.add(n))
    const help = Option.getOrElse(pair.metricKey.description, () => `Effect metric ${pair.metricKey.name}`)
    families.set(name, { name, kind, help, lines: [...lines] })
  }
  const text = [...families.values()]
    .filter((f) => f.lines.length > 0)
    .map((f) => [`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.kind}`, ...f.lines].join("\n") + "\n")
    .join("")
  return { text, skipped: [...skipped] }
}
