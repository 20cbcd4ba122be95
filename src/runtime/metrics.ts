import { Context, Effect, Layer, Metric } from "effect"
import * as Prom from "prom-client"
import { renderEffectMetrics, sampleNames } from "./metrics-effect.js"

export interface RenderedMetrics {
  readonly contentType: string
  readonly body: string
}

export interface MetricsService {
  /** Register prom-client metrics here (or use Effect `Metric`s): both are served at /metrics. */
  readonly registry: Prom.Registry
  /** prom-client's exposition followed by Effect's `Metric.snapshot` in the same text format. */
  readonly render: Effect.Effect<RenderedMetrics>
}

// Every sample name a prom-client family may write, whatever its type.
const promSampleNames = (name: string): ReadonlyArray<string> =>
  [...sampleNames(name, "histogram"), `${name}_total`, `${name}_created`]

const LINT_BREAKING_DEFAULTS = [
  "nodejs_active_handles_total",
  "nodejs_active_requests_total",
  "nodejs_active_resources_total"
]

export class Metrics extends Context.Tag("prolo/Metrics")<Metrics, MetricsService>() {
  /** One registry per process, with node's default process metrics. */
  static readonly layer: Layer.Layer<Metrics> = Layer.scoped(
    Metrics,
    Effect.gen(function* () {
      const registry = new Prom.Registry()
      Prom.collectDefaultMetrics({ register: registry })
      // These three prom-client gauges break Prometheus' naming lint (`_total` on a gauge) and
      // only sum the per-type `nodejs_active_{handles,requests,resources}` gauges that stay.
      for (const name of LINT_BREAKING_DEFAULTS) registry.removeSingleMetric(name)
      yield* Effect.addFinalizer(() => Effect.sync(() => registry.clear()))
      const warned = new Set<string>()
      const render = Effect.gen(function* () {
        const promText = yield* Effect.promise(() => registry.metrics())
        const taken = new Set(
          registry.getMetricsAsArray().flatMap((m) => promSampleNames(m.name))
        )
        const effect = renderEffectMetrics(yield* Metric.snapshot, taken)
        // Warn once per name, not on every scrape.
        const fresh = effect.skipped.filter((name) => !warned.has(name))
        if (fresh.length > 0) {
          fresh.forEach((name) => warned.add(name))
          yield* Effect.logWarning(`Effect metrics left out of /metrics (name already used): ${fresh.join(", ")}`)
        }
        const sep = promText === "" || promText.endsWith("\n") ? "" : "\n"
        return { contentType: registry.contentType, body: promText + sep + effect.text }
      })
      return { registry, render }
    })
  )

  static readonly render: Effect.Effect<RenderedMetrics, never, Metrics> = Effect.flatMap(Metrics, (m) => m.render)
}

/**
 * The prom-client counter `name` on the registry, created on first use: several layers
 * (one TimeAuth server per service) share one counter without "already registered" errors.
 */
export const promCounter = <L extends string>(
  config: { readonly name: string; readonly help: string; readonly labelNames: ReadonlyArray<L> }
): Effect.Effect<Prom.Counter<L>, never, Metrics> =>
  Effect.map(Metrics, ({ registry }) => {
    const existing = registry.getSingleMetric(config.name)
    if (existing instanceof Prom.Counter) return existing as Prom.Counter<L>
    return new Prom.Counter<L>({ name: config.name, help: config.help, labelNames: config.labelNames, registers: [registry] })
  })
