import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Logger, LogLevel, Random } from "effect"
import { Metrics } from "../../src/runtime/metrics.js"
import { schedule } from "./property-schedule.js"
import { makeVirtualClock } from "./virtual-clock.js"

describe("sync property", () => {
  it("random publishes, disconnects, restarts and stalls converge without double application", async () => {
    const metrics = await Effect.runPromise(Effect.scoped(Layer.build(Metrics.layer)))
    const only = process.env["SYNC_SEED"]
    const seeds = only !== undefined ? [Number(only)] : Array.from({ length: Number(process.env["SYNC_SCHEDULES"] ?? 1000) }, (_, i) => i + 1)
    let snapshots = 0
    const failures: Array<string> = []
    for (const seed of seeds) {
      const vclock = makeVirtualClock()
      const result = await Effect.runPromise(
        schedule(seed, metrics, vclock).pipe(
          Effect.withRandom(Random.make(seed)),
          Effect.withClock(vclock.clock),
          Logger.withMinimumLogLevel(LogLevel.None)
        )
      )
      snapshots += result.snapshots
      failures.push(...result.failures)
      if (failures.length > 0) break
      // Let the test runner's own messages through between schedules.
      await new Promise((resolve) => setImmediate(resolve))
    }
    expect(failures).toEqual([])
    expect(snapshots).toBeGreaterThan(seeds.length) // resyncs happened, not only the initial snapshots
  }, 600_000)
})

