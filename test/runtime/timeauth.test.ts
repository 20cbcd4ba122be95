import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Redacted, TestClock } from "effect"
import { check, generate, type RejectReason } from "../../src/runtime/timeauth.js"

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
        expect(yield* generate(secret, message)).toBe(token)
        expect(yield* reason(token, message)).toBe("ok")
      }
      expect(yield* generate(secret, null)).toBe(vectors[1]![1])
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
})
