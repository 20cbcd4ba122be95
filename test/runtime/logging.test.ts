import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Logger } from "effect"
import { lineLogger } from "../../src/runtime/logging.js"

const capture = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.gen(function* () {
    const lines: Array<string> = []
    yield* effect.pipe(Effect.provide(Logger.replace(Logger.defaultLogger, lineLogger((l) => lines.push(l)))))
    return lines
  })

describe("lineLogger", () => {
  it.effect("one line: level, message parts, annotations", () =>
    Effect.gen(function* () {
      const lines = yield* capture(
        Effect.logWarning("disk", "almost full").pipe(Effect.annotateLogs({ node: "rhfs0", free: 3 }))
      )
      expect(lines).toEqual(["[WARN] disk almost full node=rhfs0 free=3"])
    })
  )

  it.effect("an Error part reads as name and message", () =>
    Effect.gen(function* () {
      expect(yield* capture(Effect.logError("boom", new Error("kaput")))).toEqual(["[ERROR] boom Error: kaput"])
    })
  )

  it.effect("a cause follows the line, with its stack", () =>
    Effect.gen(function* () {
      const lines = yield* capture(Effect.logError("boom", Cause.die(new Error("kaput"))))
      expect(lines).toHaveLength(1)
      expect(lines[0]).toMatch(/^\[ERROR\] boom\nError: kaput\n\s+at /)
    })
  )
})
