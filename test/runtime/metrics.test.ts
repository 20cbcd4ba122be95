import { describe, expect, it } from "@effect/vitest"
import { Effect, Metric, MetricBoundaries } from "effect"
import { spawnSync } from "node:child_process"
import * as Prom from "prom-client"
import { Metrics, promCounter } from "../../src/runtime/metrics.js"

// Names are unique to this file: Effect's metric registry is global to the process.
const calls = Metric.counter("prolo_test_rpc_calls", { description: "rpc calls\nby tag", incremental: true })
const depth = Metric.gauge("prolo_test_mailbox_depth", { description: "mailbox depth" })
const latency = Metric.histogram(
  "prolo_test_latency_seconds",
  MetricBoundaries.fromIterable([0.005, 0.05, 0.5]),
  "rpc latency"
)
const outcomes = Metric.frequency("prolo_test_outcome", { description: "outcomes" })
const sizes = Metric.summary({
  name: "prolo_test_payload_bytes",
  maxAge: "1 minute",
  maxSize: 100,
  error: 0.01,
  quantiles: [0.5, 0.9],
  description: "payload sizes"
})
// Clashes with a prom-client metric registered below: must be left out, not duplicated.
const clash = Metric.gauge("prolo_test_clash", { description: "effect side of a clash" })
// Same name as the counter above but another type: left out too.
const clash2 = Metric.gauge("prolo_test_rpc_calls_total")

const promtool = (text: string) => spawnSync("/usr/bin/promtool", ["check", "metrics"], { input: text, encoding: "utf8" })

describe("metrics", () => {
  it.scoped("serves prom-client and Effect metrics together, and promtool accepts it", () =>
    Effect.gen(function* () {
      const { registry } = yield* Metrics
      new Prom.Counter({ name: "prolo_test_prom_total", help: "a prom-client counter", registers: [registry] }).inc(3)
      new Prom.Gauge({ name: "prolo_test_clash", help: "prom side of a clash", registers: [registry] }).set(7)

      yield* Metric.increment(Metric.tagged(calls, "rpc", "Stat"))
      yield* Metric.incrementBy(Metric.tagged(calls, "rpc", 'We"ird\\'), 2)
      yield* Metric.set(Metric.tagged(depth, "actor", "hfs/alice"), 4)
      for (const v of [0.001, 0.01, 0.2, 3]) yield* Metric.update(Metric.tagged(latency, "rpc", "Stat"), v)
      for (const v of ["ok", "ok", "refused"]) yield* Metric.update(outcomes, v)
      for (const v of [10, 20, 30]) yield* Metric.update(sizes, v)
      yield* Metric.set(clash, 1)
      yield* Metric.set(clash2, 1)

      const { body, contentType } = yield* Metrics.render
      expect(contentType).toBe("text/plain; version=0.0.4; charset=utf-8")
      // prom-client part with default process metrics
      expect(body).toContain("process_cpu_user_seconds_total")
      expect(body).toContain("prolo_test_prom_total 3")
      // Effect part
      expect(body).toContain('prolo_test_rpc_calls_total{rpc="Stat"} 1')
      expect(body).toContain('prolo_test_rpc_calls_total{rpc="We\\"ird\\\\"} 2')
      expect(body).toContain("# HELP prolo_test_rpc_calls_total rpc calls\\nby tag")
      expect(body).toContain('prolo_test_mailbox_depth{actor="hfs/alice"} 4')
      expect(body).toContain('prolo_test_latency_seconds_bucket{rpc="Stat",le="0.005"} 1')
      expect(body).toContain('prolo_test_latency_seconds_bucket{rpc="Stat",le="0.5"} 3')
      expect(body).toContain('prolo_test_latency_seconds_bucket{rpc="Stat",le="+Inf"} 4')
      expect(body).toContain('prolo_test_latency_seconds_count{rpc="Stat"} 4')
      expect(body).toContain('prolo_test_outcome_total{key="ok"} 2')
      expect(body).toMatch(/^prolo_test_payload_bytes\{quantile="0\.5"\} \d+$/m)
      expect(body).toContain("prolo_test_payload_bytes_sum 60")
      expect(body).toContain("prolo_test_payload_bytes_count 3")
      // one HELP/TYPE per family, the prom-client side wins a clash
      for (const family of ["prolo_test_rpc_calls_total", "prolo_test_clash", "prolo_test_latency_seconds"]) {
        expect(body.split("\n").filter((l) => l.startsWith(`# TYPE ${family} `))).toHaveLength(1)
      }
      expect(body).toContain("prolo_test_clash 7")
      expect(body).not.toContain("prolo_test_clash 1")
      expect(body).not.toMatch(/^prolo_test_rpc_calls_total 1$/m)

      const checked = promtool(body)
      expect(checked.stderr + checked.stdout).toBe("")
      expect(checked.status).toBe(0)
    }).pipe(Effect.provide(Metrics.layer))
  )

  it.scoped("promCounter shares one counter between users of the same name", () =>
    Effect.gen(function* () {
      const spec = { name: "prolo_test_shared_total", help: "shared", labelNames: ["service"] } as const
      const a = yield* promCounter(spec)
      const b = yield* promCounter(spec)
      expect(b).toBe(a)
      a.inc({ service: "mdb" })
      b.inc({ service: "mdb" })
      expect((yield* Metrics.render).body).toContain('prolo_test_shared_total{service="mdb"} 2')
    }).pipe(Effect.provide(Metrics.layer))
  )

  it("promtool really rejects a broken exposition (the check above can fail)", () => {
    const bad = promtool("# TYPE x counter\nx{a=\"1\" 2\n")
    expect(bad.status).not.toBe(0)
  })
})
