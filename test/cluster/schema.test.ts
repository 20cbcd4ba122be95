import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { PgTest } from "../support/pg.js"

// Migration 0007: the concours task tables and their guards.
const D = "a".repeat(64)

describe("concours task tables (0007)", () => {
  it.layer(PgTest)((it) => {
    it.effect("a champion name is unique per author among non-deleted champions; defaults as the original", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        yield* sql`INSERT INTO champion (name, author, sources_digest) VALUES ('bot', 'alice', ${D})`
        const dup = yield* Effect.either(sql`INSERT INTO champion (name, author, sources_digest) VALUES ('bot', 'alice', ${D})`)
        expect(dup._tag).toBe("Left")
        yield* sql`INSERT INTO champion (name, author, sources_digest) VALUES ('bot', 'bob', ${D})`
        yield* sql`UPDATE champion SET deleted = true WHERE author = 'alice'`
        yield* sql`INSERT INTO champion (name, author, sources_digest) VALUES ('bot', 'alice', ${D})`
        const [row] = yield* sql<{ status: string; attempt: number }>`SELECT status, attempt FROM champion WHERE author = 'bob'`
        expect(row).toEqual({ status: "new", attempt: 0 })
        const long = yield* Effect.either(sql`INSERT INTO champion (name, author, sources_digest) VALUES (${"x".repeat(26)}, 'bob', ${D})`)
        expect(long._tag).toBe("Left")
        const badDigest = yield* Effect.either(sql`INSERT INTO champion (name, author, sources_digest) VALUES ('c', 'bob', 'nope')`)
        expect(badDigest._tag).toBe("Left")
        // pending needs a lease; a lease needs pending
        const noLease = yield* Effect.either(sql`UPDATE champion SET status = 'pending' WHERE author = 'bob'`)
        expect(noLease._tag).toBe("Left")
        const [m] = yield* sql<{ id: number; priority: number; status: string }>`INSERT INTO match (author) VALUES ('bob') RETURNING id, priority, status`
        expect(m).toMatchObject({ priority: 700, status: "new" })
        const [c] = yield* sql<{ id: number }>`SELECT id FROM champion WHERE author = 'bob'`
        yield* sql`INSERT INTO match_player (match_id, champion_id) VALUES (${m!.id}, ${c!.id}), (${m!.id}, ${c!.id})`
        const players = yield* sql`SELECT score, nb_timeout FROM match_player WHERE match_id = ${m!.id}`
        expect(players).toEqual([{ score: null, nb_timeout: null }, { score: null, nb_timeout: null }])
      })
    )
  })
})
