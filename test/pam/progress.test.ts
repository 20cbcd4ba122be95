import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, TestClock } from "effect"
import type { PamContext } from "../../src/actors/pam/stages.js"
import { withProgress } from "../../src/actors/pam/stages.js"

// While getHome runs (it may move the home first), the greeter gets a line every 3 s; none
// after the answer. TestClock: no sleeping.

describe("prolo-pam: progress lines while the home is prepared", () => {
  it.effect("one line every 3 s while waiting, none once answered", () =>
    Effect.gen(function* () {
      const said: Array<string> = []
      const ctx = { say: (line: string) => Effect.sync(() => void said.push(line)) } as unknown as PamContext
      const answer = yield* Deferred.make<string>()
      const waiting = yield* Effect.fork(withProgress(ctx, Deferred.await(answer)))
      yield* TestClock.adjust("7 seconds")
      expect(said).toEqual([
        "Still preparing your home (it may be moving from another home server)… 3 s",
        "Still preparing your home (it may be moving from another home server)… 6 s"
      ])
      yield* Deferred.succeed(answer, "grant")
      expect(yield* Fiber.join(waiting)).toBe("grant")
      yield* TestClock.adjust("10 seconds")
      expect(said).toHaveLength(2)
    })
  )
})
