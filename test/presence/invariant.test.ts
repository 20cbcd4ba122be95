import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Either, Layer, Random, TestClock } from "effect"
import { LeaseStore, type LeaseStoreService } from "../../src/actors/presence/lease-store.js"
import type { MachineFacts, UserFacts } from "../../src/actors/presence/rules.js"
import { Directory } from "../../src/actors/presence/directory.js"
import { Presence } from "../../src/actors/presence/service.js"
import type { Update } from "../../src/protocols/sync.js"
import { PgTest } from "../support/pg.js"
import { LEASE_MS, makeHarness } from "./support.js"

// Invariant 3 under load: random concurrent RequestLogin / Heartbeat / Logout by 100 users on
// 100 hosts, virtual time passing (leases expire), presence restarted at random (sometimes with
// requests in flight), over a real PostgreSQL. Every published batch is replayed in order: no
// prefix of the topic ever shows a user on two hosts or a host held by two users.

// The operations come from this seed (printed; replay with PRESENCE_SEED=<seed>). Fibers still
// interleave as the scheduler and the database decide, so a replay repeats the operations,
// not necessarily their interleaving.
const SEED = Number(process.env["PRESENCE_SEED"] ?? Math.floor(Math.random() * 2 ** 31))

const USERS = 100
const HOSTS = 100
const OPS = 1000

const machines: Record<string, MachineFacts> = Object.fromEntries(
  Array.from({ length: HOSTS }, (_, i) => [`h${i}`, { mtype: i % 10 === 0 ? "orga" : "user" }])
)
const users: Record<string, UserFacts> = Object.fromEntries(
  Array.from({ length: USERS }, (_, i) => [`u${i}`, { group: i % 20 === 0 ? "orga" : "user" }])
)

// Every write takes a few real milliseconds more, as on a loaded database: the expiry timer's
// writes then outlast what TestClock.adjust waits for, as they did in CI under load (with the
// replay taken before the list, PRESENCE_SEED=1253373627 failed 3 runs of 3: 21 logins only on the topic).
const WRITE_DELAY_MS = 10
const realDelay = Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, WRITE_DELAY_MS)))
const slowWrites = (store: LeaseStoreService): LeaseStoreService => ({
  load: store.load,
  put: (lease) => Effect.zipRight(realDelay, store.put(lease)),
  remove: (logins) => Effect.zipRight(realDelay, store.remove(logins))
})

/** Replays the batches; returns the violations (empty when the invariant held at every step). */
const replay = (batches: ReadonlyArray<ReadonlyArray<Update>>) => {
  const byLogin = new Map<string, string>()
  const byHost = new Map<string, string>()
  const violations: Array<string> = []
  batches.forEach((batch, revision) => {
    for (const u of batch) {
      const login = u.data["login"] as string
      if (u.type === "delete") {
        const host = byLogin.get(login)
        if (host !== undefined) byHost.delete(host)
        byLogin.delete(login)
        continue
      }
      const host = u.data["hostname"] as string
      const had = byLogin.get(login)
      if (had !== undefined && had !== host) violations.push(`rev ${revision}: ${login} on ${had} and ${host}`)
      const holder = byHost.get(host)
      if (holder !== undefined && holder !== login) violations.push(`rev ${revision}: ${host} held by ${holder} and ${login}`)
      if (had !== undefined) byHost.delete(had)
      byLogin.set(login, host)
      byHost.set(host, login)
    }
  })
  return { violations, byLogin }
}

describe("presence invariant under random load and restarts", () => {
  it.scoped(`${OPS} random operations, ${USERS} users, ${HOSTS} hosts: never a double login`, () =>
    Effect.gen(function* () {
      console.log(`presence invariant: seed ${SEED} (replay: PRESENCE_SEED=${SEED})`)
      const storeCtx = yield* Layer.build(Layer.merge(LeaseStore.sql, PgTest).pipe(Layer.provideMerge(PgTest)))
      const h = yield* makeHarness({
        storeLayer: Layer.succeed(LeaseStore, slowWrites(Context.get(storeCtx, LeaseStore))),
        directory: Directory.fromRecords(machines, users)
      })
      let presence = Context.get(yield* h.start, Presence)
      let done = 0
      let accepted = 0
      let restarts = 0
      const pick = (n: number) => Random.nextIntBetween(0, n)
      while (done < OPS) {
        const size = 1 + (yield* pick(40))
        const restartAt = (yield* pick(5)) === 0 ? yield* pick(size) : -1
        const ops = Array.from({ length: size }, (_, k) =>
          Effect.gen(function* () {
            if (k === restartAt) {
              restarts++
              presence = Context.get(yield* h.start, Presence)
              return
            }
            const login = `u${yield* pick(USERS)}`
            const hostname = `h${yield* pick(HOSTS)}`
            const kind = yield* pick(10)
            const call: Effect.Effect<void, { readonly _tag: string }> = kind < 5 ? presence.requestLogin(login, hostname) : kind < 8 ? presence.heartbeat(login, hostname) : presence.logout(login, hostname)
            const result = yield* Effect.either(call)
            if (Either.isRight(result)) accepted++
            else expect(["LoginRefused", "HeartbeatRefused", "LogoutRefused", "PresenceUnavailable"]).toContain(result.left._tag)
          })
        )
        yield* Effect.all(ops, { concurrency: "unbounded", discard: true })
        done += size
        yield* TestClock.adjust((yield* pick(LEASE_MS / 2)) + 1)
      }
      // The list first: it is answered after every message already queued, such as an Expire
      // from the timer, whose deletes are then on the topic (issue 16 item 4: replayed before
      // that Expire was handled, the topic still held the logins whose leases had just expired).
      const list = yield* presence.list
      const { violations, byLogin } = replay(h.published.batches)
      expect(violations, `seed ${SEED}`).toEqual([])
      // the topic, the table and the database agree at the end
      expect(Object.fromEntries(byLogin), `seed ${SEED}`).toEqual(list)
      const stored = yield* Effect.flatMap(LeaseStore, (s) => s.load).pipe(Effect.provide(storeCtx))
      expect(Object.fromEntries(stored.map((r) => [r.login, r.hostname]))).toEqual(list)
      expect(accepted).toBeGreaterThan(OPS / 10)
      expect(restarts).toBeGreaterThan(3)
      expect(h.published.batches.length).toBeGreaterThan(50)
    }).pipe(Effect.withRandom(Random.make(SEED)))
  , 120_000)
})
