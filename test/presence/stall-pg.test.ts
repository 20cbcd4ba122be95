import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Either, Fiber, Layer, TestClock } from "effect"
import { Directory } from "../../src/actors/presence/directory.js"
import { LeaseStore } from "../../src/actors/presence/lease-store.js"
import type { MachineFacts, UserFacts } from "../../src/actors/presence/rules.js"
import { Presence } from "../../src/actors/presence/service.js"
import { connect } from "../../src/store/database.js"
import { stoppablePostgres } from "../support/stoppable-pg.js"
import { LEASE_MS, makeHarness, promptly } from "./support.js"

// Issue 17 item 5 as reported, on a real PostgreSQL of its own (the run's shared cluster must
// not be stopped): ten users heartbeating, every PostgreSQL process SIGSTOPped, a new login
// blocked on its write, 16 s of (virtual) stall, SIGCONT. Before the fix the heartbeats waited
// behind the write, every lease expired, all ten users were deleted and re-added, and a
// second login of a heartbeating user was accepted.

const host = (i: number) => `host${i}`
const user = (i: number) => `user${i}`
const machines: Record<string, MachineFacts> = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [host(i), { mtype: "user" }]))
const users: Record<string, UserFacts> = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [user(i), { group: "user" }]))

describe("presence under a SIGSTOPped PostgreSQL", () => {
  it.scoped(
    "no user on two hosts, no delete/re-add on the topic, no accepted login deleted at once",
    () =>
      Effect.gen(function* () {
        const { pg, stop } = yield* stoppablePostgres("prolo-stall-")
        const storeCtx = yield* Layer.build(LeaseStore.sql.pipe(Layer.provideMerge(connect(pg.url("postgres")))))
        const h = yield* makeHarness({
          storeLayer: Layer.succeedContext(Context.pick(LeaseStore)(storeCtx)),
          directory: Directory.fromRecords(machines, users)
        })
        const presence = Context.get(yield* h.start, Presence)
        for (let i = 0; i < 10; i++) yield* presence.requestLogin(user(i), host(i))
        const added = h.published.batches.length
        const beat = Effect.forEach(Array.from({ length: 10 }, (_, i) => i), (i) => presence.heartbeat(user(i), host(i)), {
          discard: true
        })

        const resume = yield* stop
        const blocked = yield* Effect.fork(Effect.either(presence.requestLogin(user(10), host(10))))
        yield* promptly("heartbeats at the start of the stall", beat)
        for (let t = 0; t < 8; t++) {
          yield* TestClock.adjust(LEASE_MS / 5)
          yield* promptly(`heartbeats after ${(t + 1) * (LEASE_MS / 5)} ms of stall`, beat)
        }
        const first = yield* Fiber.join(blocked)
        expect(Either.isLeft(first) && first.left._tag).toBe("PresenceUnavailable")
        yield* resume

        // user9 still heartbeats from host9: a login elsewhere is refused
        expect(yield* Effect.flip(presence.requestLogin(user(9), host(19)))).toMatchObject({ _tag: "LoginRefused", reason: "already_logged" })
        // the login refused during the stall is accepted now, and not deleted in the same instant
        yield* presence.requestLogin(user(10), host(10))
        yield* TestClock.adjust(LEASE_MS - 1)
        const list = yield* presence.list
        expect(list).toEqual(Object.fromEntries(Array.from({ length: 11 }, (_, i) => [user(i), host(i)])))
        // the topic saw exactly one change since the ten logins: user10's arrival
        expect(h.published.batches.slice(added)).toEqual([[{ type: "update", data: { login: user(10), hostname: host(10) } }]])
        const stored = yield* Effect.flatMap(LeaseStore, (s) => s.load).pipe(Effect.provide(storeCtx))
        expect(Object.fromEntries(stored.map((r) => [r.login, r.hostname]))).toEqual(list)
      }),
    120_000
  )
})
