import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { LeaseStore } from "../../src/actors/presence/lease-store.js"
import { PgTest } from "../support/pg.js"

// The presence_lease table on a real PostgreSQL.

const Store = LeaseStore.sql.pipe(Layer.provideMerge(PgTest))

describe("LeaseStore.sql", () => {
  it.layer(Store)((it) => {
    it.effect("stores membership: put, move, replace a stale holder of a host, remove; load reads it back", () =>
      Effect.gen(function* () {
        const store = yield* LeaseStore
        const sql = yield* SqlClient.SqlClient
        yield* sql`TRUNCATE presence_lease`
        yield* store.put({ login: "alice", hostname: "h1", since: 1_700_000_000_000 })
        yield* store.put({ login: "bob", hostname: "h2", since: 1_700_000_001_000 })
        expect(yield* store.load).toEqual(
          expect.arrayContaining([
            { login: "alice", hostname: "h1", since: 1_700_000_000_000 },
            { login: "bob", hostname: "h2", since: 1_700_000_001_000 }
          ])
        )
        yield* store.put({ login: "alice", hostname: "h3", since: 1_700_000_002_000 })
        // The actor only asks for hosts its table has free: a row still holding one is left by
        // a write that timed out and committed later, and gives way (one holder per host).
        yield* store.put({ login: "carol", hostname: "h2", since: 1_700_000_003_000 })
        const rows = yield* store.load
        expect(rows.map((r) => [r.login, r.hostname]).sort()).toEqual([
          ["alice", "h3"],
          ["carol", "h2"]
        ])
        yield* store.remove(["alice", "nobody"])
        yield* store.remove([])
        expect((yield* store.load).map((r) => r.login)).toEqual(["carol"])
      })
    )

    it.effect("the table itself refuses a second holder of a host", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        yield* sql`TRUNCATE presence_lease`
        yield* sql`INSERT INTO presence_lease (login, hostname, since) VALUES ('a', 'h', now())`
        const e = yield* Effect.flip(sql`INSERT INTO presence_lease (login, hostname, since) VALUES ('b', 'h', now())`)
        expect(String(e.cause)).toContain("presence_lease_hostname_key")
      })
    )
  })

  it.effect("a database that cannot be reached answers PresenceUnavailable", () =>
    Effect.gen(function* () {
      const store = yield* LeaseStore
      const sql = yield* SqlClient.SqlClient
      yield* sql`DROP TABLE presence_lease`
      const e = yield* Effect.flip(store.put({ login: "alice", hostname: "h1", since: 0 }))
      expect(e._tag).toBe("PresenceUnavailable")
      expect(e.message).toContain("cannot record alice on h1")
      expect((yield* Effect.flip(store.load))._tag).toBe("PresenceUnavailable")
    }).pipe(Effect.provide(LeaseStore.sql.pipe(Layer.provideMerge(PgTest))))
  )
})
