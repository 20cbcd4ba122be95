import * as NodeContext from "@effect/platform-node/NodeContext"
import { PgMigrator } from "@effect/sql-pg"
import { Migrator } from "@effect/sql"
import type { PgClient } from "@effect/sql-pg"
import type { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Effect, Layer } from "effect"
import { migrations } from "./migrations/index.js"

const loader = Migrator.fromRecord(migrations)

/** Applies the pending migrations (all in one transaction, under a table lock). */
export const runMigrations: Effect.Effect<
  ReadonlyArray<readonly [id: number, name: string]>,
  Migrator.MigrationError | SqlError,
  PgClient.PgClient | SqlClient.SqlClient
> = PgMigrator.run({ loader }).pipe(Effect.provide(NodeContext.layer))

export const MigrationsLayer: Layer.Layer<never, Migrator.MigrationError | SqlError, PgClient.PgClient | SqlClient.SqlClient> =
  Layer.effectDiscard(
    Effect.tap(runMigrations, (done) =>
      done.length === 0 ? Effect.void : Effect.logInfo(`applied migrations: ${done.map(([id, name]) => `${id}_${name}`).join(", ")}`)
    )
  )
