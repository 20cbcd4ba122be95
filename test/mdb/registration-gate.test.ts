import { describe, expect, it } from "@effect/vitest"
import { Effect, TestClock } from "effect"
import { makeBuckets, RegistrationGate } from "../../src/actors/mdb/registration-gate.js"

// Self-registration's gate on TestClock: off unless configured, then token buckets per source
// address and overall, refilled as time passes.

const gate = (perSourcePerMinute: number, perMinute: number, enabled = true) =>
  Effect.provide(RegistrationGate, RegistrationGate.layer({ enabled, perSourcePerMinute, perMinute }))

const outcome = (g: Effect.Effect.Success<ReturnType<typeof gate>>, source: string | undefined) =>
  g.admit(source).pipe(
    Effect.map(() => "ok"),
    Effect.catchAll((e) => Effect.succeed(e._tag === "RegistrationRateLimited" ? `${e.limit}:${e.retryAfterSeconds}` : e._tag))
  )

describe("self-registration gate", () => {
  it.effect("off: every call is refused with a message naming the setting", () =>
    Effect.gen(function* () {
      const g = yield* gate(6, 60, false)
      const refused = yield* Effect.flip(g.admit("192.168.0.7"))
      expect(refused).toMatchObject({
        _tag: "RegistrationDisabled",
        message: "self registration is disabled on this node (mdb-registration.yml: enabled is false)"
      })
    })
  )

  it.effect("per source: a third registration within the minute is refused until a token is back; other sources go on", () =>
    Effect.gen(function* () {
      const g = yield* gate(2, 100)
      expect(yield* outcome(g, "10.0.0.1")).toBe("ok")
      expect(yield* outcome(g, "10.0.0.1")).toBe("ok")
      // Two a minute: one token every 30 s.
      expect(yield* outcome(g, "10.0.0.1")).toBe("source:30")
      const refused = yield* Effect.flip(g.admit("10.0.0.1"))
      expect(refused.message).toBe("too many self registrations from 10.0.0.1 (at most 2 a minute): retry in 30 s")
      expect(yield* outcome(g, "10.0.0.2")).toBe("ok")
      yield* TestClock.adjust("20 seconds")
      expect(yield* outcome(g, "10.0.0.1")).toBe("source:10")
      yield* TestClock.adjust("10 seconds")
      expect(yield* outcome(g, "10.0.0.1")).toBe("ok")
      expect(yield* outcome(g, "10.0.0.1")).toBe("source:30")
    })
  )

  it.effect("overall: many sources together stop at the global limit; a refused source does not spend it", () =>
    Effect.gen(function* () {
      const g = yield* gate(1, 3)
      expect(yield* outcome(g, "10.0.0.1")).toBe("ok")
      // The flooding source is refused by its own limit and leaves the global tokens to others.
      for (let i = 0; i < 10; i++) expect(yield* outcome(g, "10.0.0.1")).toBe("source:60")
      expect(yield* outcome(g, "10.0.0.2")).toBe("ok")
      expect(yield* outcome(g, undefined)).toBe("ok") // the rpc: no address, global only
      expect(yield* outcome(g, "10.0.0.3")).toBe("global:20")
      const refused = yield* Effect.flip(g.admit("10.0.0.4"))
      expect(refused.message).toBe("too many self registrations on this node (at most 3 a minute): retry in 20 s")
      yield* TestClock.adjust("20 seconds")
      expect(yield* outcome(g, "10.0.0.3")).toBe("ok")
    })
  )

  it("remembers a bounded number of sources: refilled ones make room, else a new source waits", () => {
    const buckets = makeBuckets(2, 2)
    expect(buckets.take("a", 0)).toBeUndefined()
    expect(buckets.take("b", 0)).toBeUndefined()
    expect(buckets.take("c", 0)).toBe(60)
    // 30 s later "a" and "b" hold 2 tokens again (full): forgotten, "c" gets in.
    expect(buckets.take("c", 30_000)).toBeUndefined()
    expect(buckets.size()).toBe(1)
  })
})
