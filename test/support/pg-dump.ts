import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

/**
 * Every row of every table of the test database (migration bookkeeping aside), in a stable
 * order: compare a dump before and after a refused write to prove it changed nothing.
 */
export const dumpDatabase = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const tables = yield* sql<{ name: string }>`
    SELECT table_name AS name FROM information_schema.tables
    WHERE table_schema = 'public' AND table_type = 'BASE TABLE' AND table_name <> 'effect_sql_migrations'
    ORDER BY 1`
  const dump: Record<string, ReadonlyArray<unknown>> = {}
  for (const { name } of tables) {
    const rows = yield* sql<{ row: unknown }>`SELECT to_jsonb(t) AS row FROM ${sql(name)} t ORDER BY to_jsonb(t)::text`
    dump[name] = rows.map((r) => r.row)
  }
  return dump
})
