import { describe, expect, it } from "@effect/vitest"
import { Context, Deferred, Effect, Either, Fiber, Option, TestClock } from "effect"
import { Directory } from "../../src/actors/presence/directory.js"
import type { MachineFacts, UserFacts } from "../../src/actors/presence/rules.js"
import { Presence } from "../../src/actors/presence/service.js"
import { LEASE_MS, makeHarness, promptly } from "./support.js"

// Issue 17 item 5 at the unit level: a lease store that stalls (every call waits on a gate,
// as a SIGSTOPped PostgreSQL), on virtual time. A stall longer than the lease must not expire
// anybody, heartbeats must not wait behind the blocked write, the blocked write answers
// PresenceUnavailable after its bound (a fifth of the lease), and a lease starts when its
// write is done.

const N = 20
const host = (i: number) => `host${i}`
const user = (i: number) => `user${i}`
const machines: Record<string, MachineFacts> = Object.fromEntries(Array.from({ length: N }, (_, i) => [host(i), { mtype: "user" }]))
const users: Record<string, UserFacts> = Object.fromEntries(Array.from({ length: N }, (_, i) => [user(i), { group: "user" }]))
const HEARTBEAT_MS = LEASE_MS / 5
const WRITE_TIMEOUT_MS = LEASE_MS / 5

const setup = Effect.gen(function* () {
  const h = yield* makeHarness({ directory: Directory.fromRecords(machines, users) })
  const presence = Context.get(yield* h.start, Presence)
  return { h, presence }
})

describe("presence under a stalled database", () => {
  it.scoped("ten users heartbeat through a 16 s stall: none expires, none is deleted, a second login of one is refused", () =>
    Effect.gen(function* () {
      const { h, presence } = yield* setup
      for (let i = 0; i < 10; i++) yield* presence.requestLogin(user(i), host(i))
      const added = h.published.batches.length

      const entered = yield* Deferred.make<void>()
      const resume = yield* Deferred.make<void>()
      h.store.before = Effect.zipRight(Deferred.succeed(entered, undefined), Deferred.await(resume))
      // Eight new logins queue in the actor, each blocked on its write until the bound:
      // the actor itself sees nothing for 16 s.
      const logins = yield* Effect.forEach(Array.from({ length: 8 }, (_, k) => 10 + k), (i) =>
        Effect.fork(Effect.either(presence.requestLogin(user(i), host(i))))
      )
      yield* Deferred.await(entered)
      const beat = Effect.forEach(Array.from({ length: 10 }, (_, i) => i), (i) => presence.heartbeat(user(i), host(i)), { discard: true })
      yield* promptly("heartbeats while the store is stalled", beat)
      for (let t = 0; t < 8; t++) {
        yield* TestClock.adjust(HEARTBEAT_MS)
        yield* promptly(`heartbeats at ${(t + 1) * HEARTBEAT_MS} ms of stall`, beat)
      }
      // every blocked login answered "retry", none was accepted
      for (const fiber of logins) {
        const result = yield* Fiber.join(fiber)
        expect(Either.isLeft(result) && result.left._tag).toBe("PresenceUnavailable")
      }
      h.store.before = undefined
      yield* Deferred.succeed(resume, undefined)

      const list = yield* presence.list
      expect(list).toEqual(Object.fromEntries(Array.from({ length: 10 }, (_, i) => [user(i), host(i)])))
      expect(yield* Effect.flip(presence.requestLogin(user(9), host(19)))).toMatchObject({ _tag: "LoginRefused", reason: "already_logged" })
      // no spurious delete and re-add on the topic
      expect(h.published.batches.slice(added)).toEqual([])
      expect([...h.store.rows.keys()].sort()).toEqual(Object.keys(list).sort())
    })
  )

  it.scoped("a blocked write answers PresenceUnavailable after a fifth of the lease and changes nothing", () =>
    Effect.gen(function* () {
      const { h, presence } = yield* setup
      const entered = yield* Deferred.make<void>()
      h.store.before = Effect.zipRight(Deferred.succeed(entered, undefined), Effect.never)
      const login = yield* Effect.fork(presence.requestLogin(user(1), host(1)))
      yield* Deferred.await(entered)
      yield* TestClock.adjust(WRITE_TIMEOUT_MS - 1)
      expect(Option.isNone(yield* Fiber.poll(login))).toBe(true)
      yield* TestClock.adjust(1)
      const e = yield* Effect.flip(promptly("the blocked login after its bound", Fiber.join(login)))
      expect(e).toMatchObject({ _tag: "PresenceUnavailable" })
      expect(e.message).toContain(`no answer within ${WRITE_TIMEOUT_MS} ms to record user1 on host1`)
      h.store.before = undefined
      expect(yield* presence.list).toEqual({})
      expect(h.published.batches).toEqual([])
    })
  )

  it.scoped("a lease starts when its write is done: a slow write does not hand out a lease already over", () =>
    Effect.gen(function* () {
      const { h, presence } = yield* setup
      const slow = WRITE_TIMEOUT_MS - 500
      h.store.before = Effect.sleep(slow)
      const login = yield* Effect.fork(presence.requestLogin(user(1), host(1)))
      yield* TestClock.adjust(slow)
      yield* Fiber.join(login)
      h.store.before = undefined
      yield* TestClock.adjust(LEASE_MS - 1)
      expect(yield* presence.list).toEqual({ [user(1)]: host(1) })
      yield* TestClock.adjust(1)
      expect(yield* presence.list).toEqual({})
      expect(h.published.batches.map((b) => b.map((u) => u.type))).toEqual([["update"], ["delete"]])
    })
  )

  // Not a reproduction (it held before): the heartbeat path beside the actor keeps the
  // original lease semantics, a lease lasts one period after the last heartbeat received.
  it.scoped("a lease is judged on heartbeat receipt: heartbeats that never reach the actor still keep it", () =>
    Effect.gen(function* () {
      const { h, presence } = yield* setup
      yield* presence.requestLogin(user(1), host(1))
      for (let t = 0; t < 20; t++) {
        yield* TestClock.adjust(HEARTBEAT_MS)
        yield* presence.heartbeat(user(1), host(1))
      }
      expect(yield* presence.list).toEqual({ [user(1)]: host(1) })
      yield* TestClock.adjust(LEASE_MS - 1)
      expect(yield* presence.list).toEqual({ [user(1)]: host(1) })
      yield* TestClock.adjust(1)
      expect(yield* presence.list).toEqual({})
      expect(h.published.batches.map((b) => b.map((u) => u.type))).toEqual([["update"], ["delete"]])
    })
  )
})
