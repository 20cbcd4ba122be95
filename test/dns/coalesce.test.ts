import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, TestClock } from "effect"
import { makeCoalescer } from "../../src/runtime/coalesce.js"

// Bursts of changes become one action per 100 ms window, driven by the Clock.

describe("reload coalescer", () => {
  it.scoped("a burst within the window is one action with every key; the next burst waits a full window", () =>
    Effect.gen(function* () {
      const actions: Array<Array<string>> = []
      const c = yield* makeCoalescer<string>("100 millis", (keys) => Effect.sync(() => void actions.push([...keys].sort())))
      const loop = yield* Effect.fork(c.run)
      yield* c.mark(["a"])
      yield* TestClock.adjust("50 millis")
      yield* c.mark(["b", "a"])
      expect(actions).toEqual([])
      yield* TestClock.adjust("50 millis")
      expect(actions).toEqual([["a", "b"]])
      yield* c.mark(["c"])
      yield* TestClock.adjust("99 millis")
      expect(actions).toHaveLength(1)
      yield* TestClock.adjust("1 millis")
      expect(actions).toEqual([["a", "b"], ["c"]])
      expect(yield* c.handled).toBe(2)
      yield* c.mark([])
      yield* TestClock.adjust("1 second")
      expect(actions).toHaveLength(2)
      yield* Fiber.interrupt(loop)
    })
  )

  it.scoped("keys of an action that died are kept for the restarted loop", () =>
    Effect.gen(function* () {
      let calls = 0
      const seen: Array<Array<string>> = []
      const c = yield* makeCoalescer<string>("100 millis", (keys) =>
        Effect.suspend(() => (calls++ === 0 ? Effect.die("boom") : Effect.sync(() => void seen.push([...keys])))))
      const first = yield* Effect.fork(c.run)
      yield* c.mark(["z"])
      yield* TestClock.adjust("100 millis")
      expect((yield* Fiber.await(first))._tag).toBe("Failure")
      expect(yield* c.pending).toBe(1)
      const second = yield* Effect.fork(c.run)
      yield* TestClock.adjust("100 millis")
      expect(seen).toEqual([["z"]])
      yield* Fiber.interrupt(second)
    })
  )
})
