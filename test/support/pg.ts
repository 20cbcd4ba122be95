import type { SqlClient } from "@effect/sql"
import type { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Redacted } from "effect"
import { randomBytes } from "node:crypto"
import pg from "pg"
import { inject } from "vitest"
import { connect, type DatabaseError, type DatabaseServices } from "../../src/store/database.js"
import { socketUrl } from "../../src/store/embedded-postgres.js"
import { pgClientLayer } from "../../src/store/pg-client.js"

/** URL of `database` on the run's throwaway cluster (started by test/global-setup.ts). */
export const testDatabaseUrl = (database: string): Redacted.Redacted<string> => {
  const { dir, port } = inject("pgSocket")
  return socketUrl(dir, port, database)
}

/** Creates an empty database with a fresh name on the test cluster and returns its URL. */
export const createTestDatabase: Effect.Effect<Redacted.Redacted<string>> = Effect.promise(async () => {
  const name = `t_${randomBytes(6).toString("hex")}`
  const admin = new pg.Client({ connectionString: Redacted.value(testDatabaseUrl("postgres")) })
  await admin.connect()
  try {
    await admin.query(`CREATE DATABASE ${name}`)
  } finally {
    await admin.end()
  }
  return testDatabaseUrl(name)
})

/** A fresh, migrated database per layer build (use once per test file): pool + change log. */
export const PgTest: Layer.Layer<DatabaseServices, DatabaseError> = Layer.unwrapEffect(
  Effect.map(createTestDatabase, (url) => connect(url))
)

/** A fresh database with NO migrations applied, for the migration tests. */
export const PgEmpty: Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, never> = Layer.unwrapEffect(
  Effect.map(createTestDatabase, (url) => pgClientLayer(url))
).pipe(Layer.orDie)
