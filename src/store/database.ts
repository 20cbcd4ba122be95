import type { FileSystem } from "@effect/platform/FileSystem"
import type { SqlClient } from "@effect/sql"
import type { PgClient } from "@effect/sql-pg"
import { Config, Duration, Effect, Layer, Option, type Redacted, Schema } from "effect"
import * as path from "node:path"
import type { ConfigDir, ConfigError } from "../runtime/config.js"
import { loadNodeProfile } from "../runtime/node-profile.js"
import * as ChangeLog from "./change-log.js"
import { startEmbeddedPostgres, SYSTEM_DIR } from "./embedded-postgres.js"
import type { DatabaseSettings } from "./database-settings.js"
import { runMigrations } from "./migrate.js"
import { pgClientLayer } from "./pg-client.js"

/** The database could not be reached, started or migrated; `message` is the operator's line. */
export class DatabaseError extends Schema.TaggedError<DatabaseError>()("DatabaseError", {
  message: Schema.String
}) {}

export type DatabaseServices = PgClient.PgClient | SqlClient.SqlClient | ChangeLog.ChangeLog

const EMBEDDED_DB = "postgres"

const describe = (e: unknown): string => {
  if (typeof e === "object" && e !== null && "message" in e && typeof e.message === "string") {
    const cause = "cause" in e && e.cause instanceof Error ? `: ${e.cause.message}` : ""
    return `${e.message}${cause}`
  }
  return String(e)
}

/** Connects to `url`, applies pending migrations, and provides the change log. */
export const connect = (url: Redacted.Redacted<string>, maxConnections?: number): Layer.Layer<DatabaseServices, DatabaseError> =>
  Layer.merge(
    ChangeLog.layer,
    Layer.effectDiscard(
      runMigrations.pipe(Effect.mapError((e) => new DatabaseError({ message: `database migration failed: ${describe(e)}` })))
    )
  ).pipe(
    Layer.provideMerge(
      pgClientLayer(url, maxConnections === undefined ? {} : { maxConnections }).pipe(
        Layer.mapError((e) => new DatabaseError({ message: `cannot connect to the database (fix: database.url in node.yml, or is the server up?): ${describe(e)}` }))
      )
    )
  )

/**
 * Where the embedded cluster lives: `database.data_dir`, else `$PROLO_DATA_DIR/db`, else
 * `./var/db` — or `/var/lib/prolo/db` as root: PostgreSQL then runs as the `postgres` user,
 * which cannot enter a checkout in a private directory (`/root/prolo`).
 */
export const embeddedDataDir = (settings: DatabaseSettings, isRoot = process.getuid?.() === 0): Effect.Effect<string> =>
  settings.data_dir !== undefined
    ? Effect.succeed(path.resolve(settings.data_dir))
    : Config.option(Config.string("PROLO_DATA_DIR")).pipe(
        Effect.orElseSucceed(() => Option.none<string>()),
        Effect.map((root) => path.resolve(Option.getOrElse(root, () => (isRoot ? SYSTEM_DIR : "var")), "db"))
      )

/** The node's database from explicit settings: external when `url` is set, embedded otherwise. */
export const fromSettings = (settings: DatabaseSettings): Layer.Layer<DatabaseServices, DatabaseError> =>
  settings.url !== undefined
    ? connect(settings.url, settings.max_connections)
    : Layer.unwrapScoped(
        Effect.gen(function* () {
          const dataDir = yield* embeddedDataDir(settings)
          const [elapsed, pg] = yield* Effect.timed(
            startEmbeddedPostgres({ dataDir }).pipe(
              Effect.mapError((e) => new DatabaseError({ message: `embedded PostgreSQL (${e.step}) in ${e.dataDir}: ${e.message}` }))
            )
          )
          yield* Effect.logInfo(`embedded PostgreSQL up in ${Math.round(Duration.toMillis(elapsed))} ms (pid ${pg.pid}, ${pg.dataDir})`)
          return connect(pg.url(EMBEDDED_DB), settings.max_connections)
        })
      )

/**
 * The node's database, configured by `node.yml` → `database`. One value shared by every
 * subsystem that needs it, so a node builds (and, embedded, starts) it once.
 */
export const DatabaseLive: Layer.Layer<DatabaseServices, DatabaseError | ConfigError, ConfigDir | FileSystem> = Layer.unwrapEffect(
  Effect.map(loadNodeProfile, (profile) => fromSettings(profile.database ?? {}))
)
