import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Logger, TestClock } from "effect"
import { lineLogger } from "../../src/runtime/logging.js"

const capture = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.gen(function* () {
    const lines: Array<string> = []
    yield* effect.pipe(Effect.provide(Logger.replace(Logger.defaultLogger, lineLogger((l) => lines.push(l)))))
    return lines
  })

describe("lineLogger", () => {
  // Issue 16 item 12: lines had no time.
  it.effect("one line: UTC time from the Clock, level, message parts, annotations", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(Date.UTC(2026, 11, 5, 3, 50, 0, 123))
      const lines = yield* capture(
        Effect.logWarning("disk", "almost full").pipe(Effect.annotateLogs({ node: "rhfs0", free: 3 }))
      )
      expect(lines).toEqual(["2026-12-05T03:50:00.123Z [WARN] disk almost full node=rhfs0 free=3"])
    })
  )

  it.effect("an Error part reads as name and message", () =>
    Effect.gen(function* () {
      expect(yield* capture(Effect.logError("boom", new Error("kaput")))).toEqual(["1970-01-01T00:00:00.000Z [ERROR] boom Error: kaput"])
    })
  )

  it.effect("a cause follows the line, with its stack", () =>
    Effect.gen(function* () {
      const lines = yield* capture(Effect.logError("boom", Cause.die(new Error("kaput"))))
      expect(lines).toHaveLength(1)
      expect(lines[0]).toMatch(/^1970-01-01T00:00:00\.000Z \[ERROR\] boom\nError: kaput\n\s+at /)
    })
  )
})
