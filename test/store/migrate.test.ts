import { SqlClient } from "@effect/sql"
import { describe, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { runMigrations } from "../../src/store/migrate.js"
import { migrations } from "../../src/store/migrations/index.js"
import { PgEmpty } from "../support/pg.js"

describe("migrations", () => {
  layer(PgEmpty)((it) => {
    it.effect("apply on an empty database, then are a no-op when re-run", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const first = yield* runMigrations
        // Every registered migration ran, in id order (other subsystems add theirs to the list).
        expect(first.map(([id, name]) => `${String(id).padStart(4, "0")}_${name}`)).toEqual(Object.keys(migrations).sort())
        expect(first.slice(0, 2)).toEqual([[1, "change_log"], [2, "mdb"]])
        const tables = yield* sql<{ name: string }>`
          SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1`
        expect(tables.map((t) => t.name)).toEqual(expect.arrayContaining([
          "change_log",
          "effect_sql_migrations",
          "ip_pool",
          "machine",
          "machine_name",
          "setting",
          "switch",
          "sync_revision",
          "sync_state"
        ]))
        const pools = yield* sql`SELECT mtype, network::text AS network FROM ip_pool ORDER BY mtype`
        expect(pools).toEqual([
          { mtype: "cluster", network: "192.168.2.0/24" },
          { mtype: "service", network: "192.168.1.0/24" },
          { mtype: "user", network: "192.168.0.0/24" }
        ])
        expect(yield* runMigrations).toEqual([])
        // Re-running did not duplicate the seeded rows.
        const [seeded] = yield* sql<{ pools: number; settings: number }>`
          SELECT (SELECT count(*) FROM ip_pool) AS pools, (SELECT count(*) FROM setting) AS settings`
        expect(seeded).toEqual({ pools: 3, settings: 1 })
      })
    )
  })
})
