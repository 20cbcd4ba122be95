import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Redacted, TestClock } from "effect"
import { Metric } from "effect"
import {
  accept,
  acceptAt,
  check,
  generate,
  generateOriginal,
  type RejectReason,
  remember,
  replaysRefused
} from "../../src/runtime/timeauth.js"

const secret = Redacted.make("secret42")
const T0 = 1_700_000_000

// spec/rpc-and-auth.md "Test vectors": secret `secret42`, timestamp 1700000000.
const vectors: ReadonlyArray<readonly [string | undefined, string]> = [
  ["return_number", "1700000000:b2e0ce4546e1e325b8a93b8326e075d8627bf226ba46ce822aa449552e1da393"],
  [undefined, "1700000000:871ad6ffe5a4d6e9354ee3b6d42fc68f1f5f1d7c330c00ae764fa0e5ad74d189"],
  ["{}", "1700000000:8803f81ebf6085184008cb80d42f708a8905d5bd27e582e39460d7fdb2507f95"],
  [
    '[{"type": "update", "data": {"mac": "aa:bb:cc:dd:ee:ff"}}]',
    "1700000000:025bc9110ef17741ed3c5945e4455fe4ec487f3da67a15ac2c878cae903f4a56"
  ]
]

const reason = (token: string | null | undefined, message: string | null | undefined) =>
  check(token, secret, message).pipe(
    Effect.either,
    Effect.map(Either.match({ onLeft: (e): RejectReason | "ok" => e.reason, onRight: () => "ok" as const }))
  )

describe("timeauth", () => {
  it.effect("generates the spec's four test vectors byte for byte", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(T0 * 1000 + 999) // sub-second part is floored
      for (const [message, token] of vectors) {
        expect(yield* generateOriginal(secret, message)).toBe(token)
        expect(yield* reason(token, message)).toBe("ok")
      }
      expect(yield* generateOriginal(secret, null)).toBe(vectors[1]![1])
    })
  )

  it.effect("accepts up to 120 s of age, then says expired", () =>
    Effect.gen(function* () {
      const token = vectors[0]![1]
      yield* TestClock.setTime((T0 + 120) * 1000)
      expect(yield* reason(token, "return_number")).toBe("ok")
      yield* TestClock.setTime((T0 + 121) * 1000)
      expect(yield* reason(token, "return_number")).toBe("expired")
    })
  )

  it.effect("refuses a token stamped more than 120 s in the future", () =>
    Effect.gen(function* () {
      const token = vectors[0]![1]
      yield* TestClock.setTime((T0 - 120) * 1000)
      expect(yield* reason(token, "return_number")).toBe("ok")
      yield* TestClock.setTime((T0 - 121) * 1000)
      expect(yield* reason(token, "return_number")).toBe("future")
    })
  )

  it.effect("gives a distinct reason for every kind of bad token", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(T0 * 1000)
      const [, good] = vectors[0]!
      const mac = good.split(":")[1]!
      expect(yield* reason(undefined, "return_number")).toBe("missing")
      expect(yield* reason(null, "return_number")).toBe("missing")
      expect(yield* reason("", "return_number")).toBe("missing")
      for (const bad of [
        "1700000000",
        `1700000000:${mac}:x`,
        `abc:${mac}`,
        `-1700000000:${mac}`,
        ` 1700000000:${mac}`,
        `1700000000:${mac.toUpperCase()}`,
        `1700000000:${mac.slice(1)}`,
        `99999999999999999999:${mac}`
      ]) {
        expect(yield* reason(bad, "return_number")).toBe("malformed")
      }
      // right shape, wrong signature: other message, other secret, other stamp
      expect(yield* reason(good, "return_numbers")).toBe("bad_signature")
      expect(yield* reason(good, undefined)).toBe("bad_signature")
      const other = yield* generate(Redacted.make("secret43"), "return_number")
      expect(yield* reason(other, "return_number")).toBe("bad_signature")
      expect(yield* reason(`1700000001:${mac}`, "return_number")).toBe("bad_signature")
    })
  )

  it.effect("signs the received text of the seconds part", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(T0 * 1000)
      // "01700000000" is the same instant but other text: its HMAC differs from the vector's.
      const mac = vectors[0]![1].split(":")[1]!
      expect(yield* reason(`01700000000:${mac}`, "return_number")).toBe("bad_signature")
    })
  )

  it.effect("our tokens carry a nonce in the stamp: two for one message in one second differ, and both verify", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(T0 * 1000)
      const a = yield* generate(secret, "return_number")
      const b = yield* generate(secret, "return_number")
      expect(a).not.toBe(b)
      expect(a).toMatch(/^1700000000\.[0-9A-Za-z_-]{12}:[0-9a-f]{64}$/)
      expect(yield* reason(a, "return_number")).toBe("ok")
      expect(yield* reason(b, "return_number")).toBe("ok")
      // The nonce is signed: changing it breaks the token.
      expect(yield* reason(a.replace(/\.[^:]+:/, ".x:"), "return_number")).toBe("bad_signature")
      for (const bad of [`1700000000.:${a.split(":")[1]}`, `1700000000.${"n".repeat(33)}:${a.split(":")[1]}`, `1700000000.a.b:${a.split(":")[1]}`]) {
        expect(yield* reason(bad, "return_number")).toBe("malformed")
      }
    })
  )

  it.effect("accept spends a token: the same token again within its window is refused as replayed, and counted", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(T0 * 1000)
      const mine = Redacted.make("replay-secret")
      const outcome = (token: string, message: string) =>
        accept(token, mine, message).pipe(Effect.either, Effect.map(Either.match({ onLeft: (e) => e.reason, onRight: () => "ok" })))
      const before = (yield* Metric.value(replaysRefused)).count
      const original = yield* generateOriginal(mine, "return_number")
      expect(yield* outcome(original, "return_number")).toBe("ok")
      expect(yield* outcome(original, "return_number")).toBe("replayed")
      yield* TestClock.adjust("119 seconds")
      expect(yield* outcome(original, "return_number")).toBe("replayed")
      // A refused token is not remembered: a forgery cannot spend someone else's token.
      const fresh = yield* generate(mine, "return_number")
      expect(yield* outcome(fresh, "other_method")).toBe("bad_signature")
      expect(yield* outcome(fresh, "return_number")).toBe("ok")
      expect((yield* Metric.value(replaysRefused)).count - before).toBe(2)
      // Once its window closed, a token is refused as expired, not remembered forever.
      yield* TestClock.adjust("2 seconds")
      expect(yield* outcome(original, "return_number")).toBe("expired")
      // Another secret has its own cache.
      const other = Redacted.make("replay-secret")
      expect(acceptAt(yield* generateOriginal(other, "m"), other, "m", T0 + 121)).toBeUndefined()
    })
  )

  it("the replay cache is bounded: expired tokens leave it as time passes, a full cache of live ones refuses as busy", () => {
    const cache = { live: new Map<string, number>(), lastFullSweep: -1 }
    expect(remember(cache, "a", 100, 0, 2)).toBeUndefined()
    expect(remember(cache, "b", 300, 0, 2)).toBeUndefined()
    expect(remember(cache, "c", 300, 50, 2)).toBe("busy")
    expect(remember(cache, "a", 100, 50, 2)).toBe("replayed")
    // "a" expired at 100: at 101 it leaves the cache and "c" gets its place.
    expect(remember(cache, "c", 300, 101, 2)).toBeUndefined()
    expect([...cache.live.keys()]).toEqual(["b", "c"])
    // Out-of-order expiry (a token stamped in the future first): the full sweep frees the rest.
    const skewed = { live: new Map<string, number>(), lastFullSweep: -1 }
    remember(skewed, "future", 500, 0, 2)
    remember(skewed, "soon", 10, 0, 2)
    expect(remember(skewed, "next", 200, 20, 2)).toBeUndefined()
    expect([...skewed.live.keys()]).toEqual(["future", "next"])
  })
})
