import { describe, expect, it } from "@effect/vitest"
import { Effect, TestClock } from "effect"
import { Presence } from "../../src/actors/presence/service.js"
import { LEASE_MS, makeHarness, sample } from "./support.js"

// Every rule, refusal text, lease expiry and refresh, on virtual time.

const withPresence = <A, E>(
  body: (p: {
    readonly presence: typeof Presence.Service
    readonly h: Effect.Effect.Success<ReturnType<typeof makeHarness>>
    readonly metric: (name: string, labels?: Record<string, string>) => Effect.Effect<number>
    readonly restart: Effect.Effect<typeof Presence.Service>
  }) => Effect.Effect<A, E>
) =>
  Effect.gen(function* () {
    const h = yield* makeHarness()
    let ctx = yield* h.start
    const restart = Effect.gen(function* () {
      ctx = yield* h.start
      return ctx.unsafeMap.get(Presence.key) as typeof Presence.Service
    })
    const presence = ctx.unsafeMap.get(Presence.key) as typeof Presence.Service
    const metric = (name: string, labels?: Record<string, string>) => Effect.provide(sample(name, labels), ctx)
    return yield* body({ presence, h, metric, restart })
  })

const refusal = <E extends { readonly _tag: string; readonly message: string }>(e: Effect.Effect<void, E>) =>
  Effect.map(Effect.flip(e), (err) => ({ tag: err._tag, message: err.message }))

describe("PresenceActor rules", () => {
  it.scoped("accepts a contestant on a contestant machine, stores, publishes the original record", () =>
    withPresence(({ presence, h, metric }) =>
      Effect.gen(function* () {
        yield* presence.requestLogin("alice", "pas-r01p01")
        expect(yield* presence.list).toEqual({ alice: "pas-r01p01" })
        expect([...h.store.rows.keys()]).toEqual(["alice"])
        expect(h.published.batches.at(-1)).toEqual([{ type: "update", data: { login: "alice", hostname: "pas-r01p01" } }])
        expect(yield* metric("prolo_presence_logged_users")).toBe(1)
      })
    )
  )

  it.scoped("same-host re-login is accepted without a new publication", () =>
    withPresence(({ presence, h, metric }) =>
      Effect.gen(function* () {
        yield* presence.requestLogin("alice", "pas-r01p01")
        const before = h.published.batches.length
        yield* presence.requestLogin("alice", "pas-r01p01")
        expect(h.published.batches.length).toBe(before)
        expect(yield* metric("presencesync_login_failed_total", { reason: "already_logged" })).toBe(0)
      })
    )
  )

  it.scoped("every refusal has the original text, changes nothing and is counted by reason", () =>
    withPresence(({ presence, h, metric }) =>
      Effect.gen(function* () {
        yield* presence.requestLogin("alice", "pas-r01p01")
        const rows = new Map(h.store.rows)
        const batches = h.published.batches.length
        for (const [login, hostname, message] of [
          ["alice", "pas-r01p02", "alice is already logged somewhere else"],
          ["bob", "pas-r01p01", "pas-r01p01 is busy"],
          ["bob", "pas-r09p09", "pas-r09p09 is not a registered machine"],
          ["mallory", "pas-r01p02", "mallory is not a registered user"],
          ["bob", "orga-pc", "bob is not a kind of user that is allowed to log on orga-pc"],
          ["bob", "gw", "bob is not a kind of user that is allowed to log on gw"]
        ] as const) {
          expect(yield* refusal(presence.requestLogin(login, hostname))).toEqual({ tag: "LoginRefused", message })
        }
        const reason = Effect.flip(presence.requestLogin("bob", "gw"))
        expect(yield* reason).toMatchObject({ reason: "user_not_allowed", login: "bob", hostname: "gw" })
        expect(h.store.rows).toEqual(rows)
        expect(h.published.batches.length).toBe(batches)
        expect(yield* presence.list).toEqual({ alice: "pas-r01p01" })
        for (const [r, n] of [
          ["already_logged", 1],
          ["busy", 1],
          ["machine_not_registered", 1],
          ["user_not_registered", 1],
          ["user_not_allowed", 3]
        ] as const) {
          expect(yield* metric("presencesync_login_failed_total", { reason: r }), r).toBe(n)
        }
      })
    )
  )

  it.scoped("orga and root log on anywhere; an unregistered machine is refused before the user check", () =>
    withPresence(({ presence }) =>
      Effect.gen(function* () {
        yield* presence.requestLogin("olga", "gw")
        yield* presence.requestLogin("rooty", "pas-r01p03")
        expect(yield* presence.list).toEqual({ olga: "gw", rooty: "pas-r01p03" })
        expect(yield* refusal(presence.requestLogin("mallory", "nowhere"))).toEqual({
          tag: "LoginRefused",
          message: "nowhere is not a registered machine"
        })
      })
    )
  )

  it.scoped("a lease expires one period after its last refresh: host and user freed, delete published, row removed", () =>
    withPresence(({ presence, h }) =>
      Effect.gen(function* () {
        yield* presence.requestLogin("alice", "pas-r01p01")
        yield* TestClock.adjust(LEASE_MS - 1)
        expect(yield* presence.list).toEqual({ alice: "pas-r01p01" })
        yield* TestClock.adjust(1)
        // the timer alone, with no request, frees it
        yield* Effect.yieldNow()
        expect(h.store.rows.size).toBe(0)
        expect(h.published.batches.at(-1)).toEqual([{ type: "delete", data: { login: "alice", hostname: null } }])
        expect(yield* presence.list).toEqual({})
        yield* presence.requestLogin("bob", "pas-r01p01")
        yield* presence.requestLogin("alice", "pas-r01p02")
      })
    )
  )

  it.scoped("heartbeats every fifth of the lease keep it for a minute; stopping them frees it", () =>
    withPresence(({ presence, metric }) =>
      Effect.gen(function* () {
        yield* presence.requestLogin("alice", "pas-r01p01")
        for (let t = 0; t < 30; t++) {
          yield* TestClock.adjust(LEASE_MS / 5)
          yield* presence.heartbeat("alice", "pas-r01p01")
        }
        expect(yield* presence.list).toEqual({ alice: "pas-r01p01" })
        expect(yield* metric("prolo_presence_lease_age_seconds_count")).toBe(30)
        yield* TestClock.adjust(LEASE_MS)
        expect(yield* presence.list).toEqual({})
      })
    )
  )

  it.scoped("a heartbeat for a login leased on another host is refused with a reason and counted", () =>
    withPresence(({ presence, h, metric }) =>
      Effect.gen(function* () {
        yield* presence.requestLogin("alice", "pas-r01p01")
        const batches = h.published.batches.length
        const e = yield* Effect.flip(presence.heartbeat("alice", "pas-r01p02"))
        expect(e).toMatchObject({ _tag: "HeartbeatRefused", reason: "already_logged", message: "alice is already logged somewhere else" })
        const busy = yield* Effect.flip(presence.heartbeat("bob", "pas-r01p01"))
        expect(busy).toMatchObject({ _tag: "HeartbeatRefused", reason: "busy", message: "pas-r01p01 is busy" })
        expect(yield* presence.list).toEqual({ alice: "pas-r01p01" })
        expect(h.published.batches.length).toBe(batches)
        expect(yield* metric("prolo_presence_heartbeat_refused_total", { reason: "already_logged" })).toBe(1)
        expect(yield* metric("prolo_presence_heartbeat_refused_total", { reason: "busy" })).toBe(1)
      })
    )
  )

  it.scoped("a heartbeat re-establishes an expired lease when the rules allow it, and only then", () =>
    withPresence(({ presence, h }) =>
      Effect.gen(function* () {
        yield* presence.heartbeat("alice", "pas-r01p01")
        expect(yield* presence.list).toEqual({ alice: "pas-r01p01" })
        expect(h.store.rows.has("alice")).toBe(true)
        yield* TestClock.adjust(LEASE_MS)
        expect(yield* presence.list).toEqual({})
        yield* presence.heartbeat("alice", "pas-r01p01")
        expect(yield* presence.list).toEqual({ alice: "pas-r01p01" })
        expect(yield* Effect.flip(presence.heartbeat("bob", "orga-pc"))).toMatchObject({ reason: "user_not_allowed" })
        expect(yield* Effect.flip(presence.heartbeat("mallory", "pas-r01p02"))).toMatchObject({ reason: "user_not_registered" })
        expect(yield* Effect.flip(presence.heartbeat("bob", "pas-r07"))).toMatchObject({ reason: "machine_not_registered" })
        expect(yield* presence.list).toEqual({ alice: "pas-r01p01" })
      })
    )
  )

  it.scoped("moving: after logout or expiry the user logs on elsewhere and the previous host is free", () =>
    withPresence(({ presence }) =>
      Effect.gen(function* () {
        yield* presence.requestLogin("alice", "pas-r01p01")
        yield* presence.logout("alice", "pas-r01p01")
        yield* presence.requestLogin("alice", "pas-r01p02")
        yield* presence.requestLogin("bob", "pas-r01p01")
        expect(yield* presence.list).toEqual({ alice: "pas-r01p02", bob: "pas-r01p01" })
        // a crashed machine: no more heartbeats from p02
        for (let t = 0; t < 5; t++) {
          yield* TestClock.adjust(LEASE_MS / 5)
          yield* presence.heartbeat("bob", "pas-r01p01")
        }
        yield* presence.requestLogin("alice", "pas-r01p03")
        yield* presence.requestLogin("carol", "pas-r01p02")
        expect(yield* presence.list).toEqual({ alice: "pas-r01p03", bob: "pas-r01p01", carol: "pas-r01p02" })
      })
    )
  )

  it.scoped("logout frees user and host at once; wrong host and unknown login keep the original texts", () =>
    withPresence(({ presence, h }) =>
      Effect.gen(function* () {
        yield* presence.requestLogin("alice", "pas-r01p01")
        expect(yield* refusal(presence.logout("alice", "pas-r01p02"))).toEqual({
          tag: "LogoutRefused",
          message: "Requested logout from the wrong hostname"
        })
        expect(yield* refusal(presence.logout("bob", "pas-r01p01"))).toEqual({
          tag: "LogoutRefused",
          message: "Requested logout but not logged in"
        })
        expect(yield* presence.list).toEqual({ alice: "pas-r01p01" })
        yield* presence.logout("alice", "pas-r01p01")
        expect(h.store.rows.size).toBe(0)
        expect(h.published.batches.at(-1)).toEqual([{ type: "delete", data: { login: "alice", hostname: null } }])
        yield* presence.requestLogin("bob", "pas-r01p01")
      })
    )
  )

  it.scoped("malformed logins and hostnames get a precise error and change nothing", () =>
    withPresence(({ presence, h }) =>
      Effect.gen(function* () {
        for (const [login, hostname, field] of [
          ["", "pas-r01p01", "login"],
          ["alice", "", "hostname"],
          ["al ice", "pas-r01p01", "login"],
          ["alice", "pas\nr01", "hostname"],
          ["x".repeat(300), "pas-r01p01", "login"],
          ["-alice", "pas-r01p01", "login"]
        ] as const) {
          const e = yield* Effect.flip(presence.requestLogin(login, hostname))
          expect(e).toMatchObject({ _tag: "InvalidPresenceRequest", field })
          expect(e.message).toContain(`invalid ${field}`)
          expect(yield* Effect.flip(presence.heartbeat(login, hostname))).toMatchObject({ _tag: "InvalidPresenceRequest" })
          expect(yield* Effect.flip(presence.logout(login, hostname))).toMatchObject({ _tag: "InvalidPresenceRequest" })
        }
        expect(h.store.rows.size).toBe(0)
        expect(h.published.batches.length).toBe(0)
      })
    )
  )

  it.scoped("database down: new logins answer PresenceUnavailable and change nothing; leases are neither lost nor freed", () =>
    withPresence(({ presence, h }) =>
      Effect.gen(function* () {
        yield* presence.requestLogin("alice", "pas-r01p01")
        h.store.down = true
        expect(yield* Effect.flip(presence.requestLogin("bob", "pas-r01p02"))).toMatchObject({ _tag: "PresenceUnavailable" })
        expect(yield* Effect.flip(presence.logout("alice", "pas-r01p01"))).toMatchObject({ _tag: "PresenceUnavailable" })
        // heartbeats of existing leases need no write
        yield* TestClock.adjust(LEASE_MS / 2)
        yield* presence.heartbeat("alice", "pas-r01p01")
        // an expiry that cannot be written keeps the lease: alice cannot be logged in twice
        yield* TestClock.adjust(LEASE_MS * 2)
        expect(yield* presence.list).toEqual({ alice: "pas-r01p01" })
        expect(yield* Effect.flip(presence.requestLogin("alice", "pas-r01p02"))).toMatchObject({ _tag: "LoginRefused" })
        h.store.down = false
        yield* TestClock.adjust(1000) // the timer retries the expiry
        expect(h.store.rows.size).toBe(0)
        expect(yield* presence.list).toEqual({})
        yield* presence.requestLogin("alice", "pas-r01p02")
      })
    )
  )

  it.scoped("a restart loads every lease and extends it a full period: no lost login, no double login, no too-early window", () =>
    withPresence(({ presence, h, restart }) =>
      Effect.gen(function* () {
        yield* presence.requestLogin("alice", "pas-r01p01")
        yield* TestClock.adjust(LEASE_MS - 1000)
        yield* presence.requestLogin("bob", "pas-r01p02")
        const again = yield* restart
        yield* TestClock.adjust(LEASE_MS - 1)
        expect(yield* again.list).toEqual({ alice: "pas-r01p01", bob: "pas-r01p02" })
        yield* again.requestLogin("alice", "pas-r01p01")
        yield* again.requestLogin("carol", "pas-r01p03")
        expect(yield* Effect.flip(again.requestLogin("bob", "pas-r01p04"))).toMatchObject({ reason: "already_logged" })
        expect(h.published.state.size).toBe(3)
        yield* TestClock.adjust(1)
        expect(yield* again.list).toEqual({ alice: "pas-r01p01", carol: "pas-r01p03" })
      })
    )
  )
})
