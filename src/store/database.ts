import type { FileSystem } from "@effect/platform/FileSystem"
import { SqlClient } from "@effect/sql"
import type { PgClient } from "@effect/sql-pg"
import { Cause, Config, Duration, Effect, Layer, Option, type Redacted, Schema } from "effect"
import * as path from "node:path"
import type { ConfigDir, ConfigError } from "../runtime/config.js"
import { Health } from "../runtime/health.js"
import { loadNodeProfile } from "../runtime/node-profile.js"
import { ActorSupervisor, childPath } from "../runtime/supervisor.js"
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

export interface ConnectOptions {
  readonly maxConnections?: number | undefined
  readonly queryTimeoutSeconds?: number | undefined
}

// `/__ping` names the database while it does not answer (down, stalled): the node is
// degraded, whatever its other parts say.
const healthProbe = Layer.scopedDiscard(
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const health = yield* Health
    yield* health.register("database", Effect.asVoid(Effect.mapError(sql`SELECT 1`, (e) => describe(e))))
  })
)

/** Connects to `url`, applies pending migrations, and provides the change log. */
export const connect = (url: Redacted.Redacted<string>, options: ConnectOptions = {}): Layer.Layer<DatabaseServices, DatabaseError> =>
  Layer.mergeAll(
    ChangeLog.layer,
    healthProbe,
    Layer.effectDiscard(
      runMigrations.pipe(Effect.mapError((e) => new DatabaseError({ message: `database migration failed: ${describe(e)}` })))
    )
  ).pipe(
    Layer.provideMerge(
      pgClientLayer(url, {
        ...(options.maxConnections === undefined ? {} : { maxConnections: options.maxConnections }),
        ...(options.queryTimeoutSeconds === undefined ? {} : { queryTimeout: Duration.seconds(options.queryTimeoutSeconds) })
      }).pipe(
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

const connectOptions = (settings: DatabaseSettings): ConnectOptions => ({
  maxConnections: settings.max_connections,
  queryTimeoutSeconds: settings.query_timeout_seconds
})

/**
 * The embedded PostgreSQL died under a running node. The node ends (escalation to the root
 * supervisor: code 70) and its service manager starts it again, rather than restarting the
 * cluster in process: every part that holds database state (the pool, the change-log LISTEN
 * connection, the sync hub's followers, presence's table) then rebuilds from one well-trodden
 * path, the node's start, which already recovers a crashed cluster (stale postmaster, stale
 * socket directory, PostgreSQL's own crash recovery). Restarting only the cluster would need
 * each of those parts to notice and resynchronise: a second, rarely run recovery path.
 * Without a supervisor (a tool, a test building the layer alone) the death is only logged.
 */
const embeddedDied = (pid: number, dataDir: string, how: string) =>
  Effect.gen(function* () {
    const message = `embedded PostgreSQL (pid ${pid}, ${dataDir}) died (${how}) while the node runs; the node ends so that its service manager restarts it with its database`
    yield* Effect.logError(message)
    const supervisor = yield* Effect.serviceOption(ActorSupervisor)
    if (Option.isNone(supervisor)) return
    yield* supervisor.value.escalate({
      path: childPath(supervisor.value.path, "embedded-postgres"),
      restarts: 0,
      within: Duration.zero,
      cause: Cause.fail(new DatabaseError({ message }))
    })
  })

/** The node's database from explicit settings: external when `url` is set, embedded otherwise. */
export const fromSettings = (settings: DatabaseSettings): Layer.Layer<DatabaseServices, DatabaseError> =>
  settings.url !== undefined
    ? connect(settings.url, connectOptions(settings))
    : Layer.unwrapScoped(
        Effect.gen(function* () {
          const dataDir = yield* embeddedDataDir(settings)
          const [elapsed, pg] = yield* Effect.timed(
            startEmbeddedPostgres({ dataDir }).pipe(
              Effect.mapError((e) => new DatabaseError({ message: `embedded PostgreSQL (${e.step}) in ${e.dataDir}: ${e.message}` }))
            )
          )
          yield* Effect.logInfo(`embedded PostgreSQL up in ${Math.round(Duration.toMillis(elapsed))} ms (pid ${pg.pid}, ${pg.dataDir})`)
          // Interrupted when the scope closes, before postgres is stopped: only a death while
          // the node runs gets here.
          yield* Effect.forkScoped(Effect.flatMap(pg.exited, (how) => embeddedDied(pg.pid, pg.dataDir, how)))
          return connect(pg.url(EMBEDDED_DB), connectOptions(settings))
        })
      )

/**
 * The node's database, configured by `node.yml` → `database`. One value shared by every
 * subsystem that needs it, so a node builds (and, embedded, starts) it once.
 */
export const DatabaseLive: Layer.Layer<DatabaseServices, DatabaseError | ConfigError, ConfigDir | FileSystem> = Layer.unwrapEffect(
  Effect.map(loadNodeProfile, (profile) => fromSettings(profile.database ?? {}))
)
