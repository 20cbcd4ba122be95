import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Layer, Option, Schema } from "effect"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { connect } from "../../src/store/database.js"
import { DatabaseSettings } from "../../src/store/database-settings.js"
import { startEmbeddedPostgres } from "../../src/store/embedded-postgres.js"
import { sqlState } from "../../src/store/pg-errors.js"
import { createTestDatabase } from "../support/pg.js"
import { childrenOf } from "../support/processes.js"

// Issue 17 item 7: every query has a timeout, `node.yml` → `database.query_timeout_seconds`.
// A slow statement is cancelled by the server; a server that does not answer at all (SIGSTOP)
// fails the call on our side instead of holding it forever.

const signalAll = (pids: ReadonlyArray<number>, signal: NodeJS.Signals) =>
  Effect.sync(() => {
    for (const pid of pids) {
      try {
        process.kill(pid, signal)
      } catch {
        // already gone
      }
    }
  })

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
        const root = yield* Effect.acquireRelease(
          Effect.promise(async () => {
            const dir = await fs.mkdtemp(path.join(os.tmpdir(), "prolo-qt-"))
            await fs.chmod(dir, 0o755) // the postgres OS user must reach data/ inside
            return dir
          }),
          (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
        )
        const pg = yield* startEmbeddedPostgres({ dataDir: path.join(root, "data"), settings: { fsync: "off" } })
        const sql = yield* Effect.provide(SqlClient.SqlClient, yield* Layer.build(connect(pg.url("postgres"), { queryTimeoutSeconds: 0.5 })))
        expect((yield* sql<{ one: number }>`SELECT 1 AS one`)[0]?.one).toBe(1)
        const pids = [pg.pid, ...(yield* Effect.promise(() => childrenOf(pg.pid)))]
        yield* Effect.acquireRelease(signalAll(pids, "SIGSTOP"), () => signalAll(pids, "SIGCONT"))
        const e = yield* Effect.flip(sql`SELECT 1 AS one`)
        expect(e._tag).toBe("SqlError")
        expect(String(e.cause)).toMatch(/timeout/i)
        yield* signalAll(pids, "SIGCONT")
        expect((yield* sql<{ one: number }>`SELECT 1 AS one`)[0]?.one).toBe(1)
      }).pipe(Effect.scoped),
    120_000
  )
})
