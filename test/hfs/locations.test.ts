import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Layer, Option } from "effect"
import { Locations } from "../../src/actors/hfs/locations.js"
import { ChangeLog } from "../../src/store/change-log.js"
import { PgTest } from "../support/pg.js"

// hfs_location on a real PostgreSQL: every change is a compare-and-set on the generation,
// logged on the `hfs` (or `hfscontest`) topic in the same transaction.


describe("Locations.sql", () => {
  it.layer(PgTest)((it) => {
    const normal = Effect.provide(Locations, Locations.sql({ contest: false }))
    const contest = Effect.provide(Locations, Locations.sql({ contest: true }))

    it.effect("create at generation 0, CAS moves it on, a stale CAS is refused and changes nothing; every change logged", () =>
      Effect.gen(function* () {
        const locations = yield* normal
        const log = yield* ChangeLog
        const created = yield* locations.create("alice", 0)
        expect(created).toEqual({ login: "alice", hfs: 0, generation: 0, state: "ready", migrate_to: null, contest: false })
        const dup = yield* Effect.flip(locations.create("alice", 1))
        expect(dup).toMatchObject({ _tag: "LocationConflict", current: 0, expected: null })

        const granted = yield* locations.compareAndSet("alice", 0, { hfs: 0, generation: 1, state: "ready", migrate_to: null })
        expect(granted.generation).toBe(1)
        const stale = yield* Effect.flip(locations.compareAndSet("alice", 0, { hfs: 1, generation: 1, state: "ready", migrate_to: null }))
        expect(stale).toMatchObject({ _tag: "LocationConflict", expected: 0, current: 1 })
        expect(Option.getOrThrow(yield* locations.get("alice"))).toMatchObject({ hfs: 0, generation: 1 })

        const missing = yield* Effect.flip(locations.compareAndSet("nobody", 0, { hfs: 0, generation: 1, state: "ready", migrate_to: null }))
        expect(missing).toMatchObject({ _tag: "LocationConflict", current: null })

        const snap = yield* log.snapshot("hfs")
        expect(snap.records).toEqual([
          { key: "alice", record: { login: "alice", hfs: 0, generation: 1, state: "ready", migrate_to: null } }
        ])
        expect(snap.revision).toBe(2)
      })
    )

    it.effect("the contest set is separate: same login, its own row and topic", () =>
      Effect.gen(function* () {
        const a = yield* normal
        const c = yield* contest
        yield* a.create("bob", 0)
        expect(Option.isNone(yield* c.get("bob"))).toBe(true)
        yield* c.create("bob", 1)
        expect(Option.getOrThrow(yield* c.get("bob"))).toMatchObject({ hfs: 1, contest: true })
        expect(Option.getOrThrow(yield* a.get("bob"))).toMatchObject({ hfs: 0, contest: false })
        expect((yield* c.list).map((l) => l.login)).toEqual(["bob"])
        const log = yield* ChangeLog
        expect((yield* log.snapshot("hfscontest")).records.map((r) => r.key)).toEqual(["bob"])
      })
    )

    it.effect("concurrent compare-and-set on one generation: exactly one winner, the generation grows by one", () =>
      Effect.gen(function* () {
        const locations = yield* normal
        yield* locations.create("carol", 0)
        const attempts = Array.from({ length: 16 }, (_, i) =>
          Effect.either(locations.compareAndSet("carol", 0, { hfs: i % 2, generation: 1, state: "ready", migrate_to: null }))
        )
        const results = yield* Effect.all(attempts, { concurrency: "unbounded" })
        const winners = results.filter(Either.isRight)
        expect(winners).toHaveLength(1)
        for (const r of results.filter(Either.isLeft)) expect(r.left).toMatchObject({ _tag: "LocationConflict", current: 1 })
        expect(Option.getOrThrow(yield* locations.get("carol"))).toMatchObject({ generation: 1, hfs: winners[0]!.right.hfs })
      })
    )

    it.effect("concurrent creation of one login: exactly one row", () =>
      Effect.gen(function* () {
        const locations = yield* normal
        const results = yield* Effect.all(
          Array.from({ length: 8 }, (_, i) => Effect.either(locations.create("dave", i))),
          { concurrency: "unbounded" }
        )
        expect(results.filter(Either.isRight)).toHaveLength(1)
        expect((yield* locations.list).filter((l) => l.login === "dave")).toHaveLength(1)
      })
    )

    it.effect("the table refuses what the repo must never write: a bad login, a migrating row without a target", () =>
      Effect.gen(function* () {
        const locations = yield* normal
        expect(yield* Effect.flip(locations.create("../etc", 0))).toMatchObject({ _tag: "HfsUnavailable" })
        yield* locations.create("erin", 0)
        expect(
          yield* Effect.flip(locations.compareAndSet("erin", 0, { hfs: 0, generation: 1, state: "migrating", migrate_to: null }))
        ).toMatchObject({ _tag: "HfsUnavailable" })
        expect(Option.getOrThrow(yield* locations.get("erin")).generation).toBe(0)
      })
    )
  })
})
