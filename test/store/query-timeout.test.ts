import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Layer, Option, Schema } from "effect"
import { connect } from "../../src/store/database.js"
import { DatabaseSettings } from "../../src/store/database-settings.js"
import { sqlState } from "../../src/store/pg-errors.js"
import { createTestDatabase } from "../support/pg.js"
import { stoppablePostgres } from "../support/stoppable-pg.js"

// Issue 17 item 7: every query has a timeout, `node.yml` → `database.query_timeout_seconds`.
// A slow statement is cancelled by the server; a server that does not answer at all (SIGSTOP)
// fails the call on our side instead of holding it forever.

describe("query timeout", () => {
  it("is a node.yml setting with a checked range", () => {
    const decode = Schema.decodeUnknownEither(DatabaseSettings.pick("query_timeout_seconds"))
    expect(Either.isRight(decode({ query_timeout_seconds: 2.5 }))).toBe(true)
    const bad = decode({ query_timeout_seconds: 0 })
    expect(Either.isLeft(bad) && bad.left.message).toContain("a number of seconds between 0.1 and 3600")
  })

  it.live("a statement longer than the timeout is cancelled by the server (57014)", () =>
    Effect.gen(function* () {
      const url = yield* createTestDatabase
      const sql = yield* Effect.provide(SqlClient.SqlClient, yield* Layer.build(connect(url, { queryTimeoutSeconds: 0.3 })))
      const e = yield* Effect.flip(sql`SELECT pg_sleep(60)`)
      expect(e._tag).toBe("SqlError")
      expect(sqlState(e)).toEqual(Option.some("57014"))
      expect((yield* sql<{ one: number }>`SELECT 1 AS one`)[0]?.one).toBe(1)
    }).pipe(Effect.scoped)
  )

  it.live(
    "a server that does not answer (SIGSTOP) fails the call; it works again once resumed",
    () =>
      Effect.gen(function* () {
        const { pg, stop } = yield* stoppablePostgres("prolo-qt-")
        const sql = yield* Effect.provide(SqlClient.SqlClient, yield* Layer.build(connect(pg.url("postgres"), { queryTimeoutSeconds: 0.5 })))
        expect((yield* sql<{ one: number }>`SELECT 1 AS one`)[0]?.one).toBe(1)
        const resume = yield* stop
        const e = yield* Effect.flip(sql`SELECT 1 AS one`)
        expect(e._tag).toBe("SqlError")
        expect(String(e.cause)).toMatch(/timeout/i)
        yield* resume
        expect((yield* sql<{ one: number }>`SELECT 1 AS one`)[0]?.one).toBe(1)
      }).pipe(Effect.scoped),
    120_000
  )
})
