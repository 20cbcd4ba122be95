import { SqlClient } from "@effect/sql"
import { Context, Effect, Layer, Option, Schema } from "effect"
import { TaskKind } from "../../protocols/cluster.js"

// The task queue is the database (migration 0007): compilations are `champion` rows, matches
// are `match` rows. The master is the only writer of their status after `new`, and every
// transition is a compare-and-set on the row's lease: (status, attempt, lease_worker).
// Timestamps of leases are epoch millis from the master's Clock, passed in by the caller.

export { TaskKind }

export interface TaskRef {
  readonly kind: TaskKind
  readonly id: number
}
export const taskKey = (t: TaskRef): string => `${t.kind}:${t.id}`

/** The queue could not be read or written (database down, stalled); nothing was changed. */
export class QueueUnavailable extends Schema.TaggedError<QueueUnavailable>()("QueueUnavailable", {
  message: Schema.String
}) {}

export interface Queued extends TaskRef {
  readonly lastWorker: string | null
  readonly releasedAt: number | null
}

export interface Lease extends TaskRef {
  readonly attempt: number
  readonly worker: string
}

export interface CompileInput {
  readonly author: string
  readonly name: string
  readonly sourcesDigest: string
}

export type Claimed =
  | { readonly kind: "compile"; readonly attempt: number; readonly input: CompileInput }
  | { readonly kind: "match"; readonly attempt: number; readonly input: MatchInput }

export interface MatchInput {
  readonly map: string | null
  readonly options: unknown
  readonly players: ReadonlyArray<{ readonly playerId: number; readonly championId: number; readonly compiledDigest: string | null }>
}

export interface CompileOutcome {
  readonly status: "ready" | "error" | "failed"
  readonly compiledDigest: string | null
  readonly logDigest: string | null
  readonly failure: string | null
}

export interface MatchOutcome {
  readonly status: "done" | "failed"
  readonly serverLogDigest: string | null
  readonly dumpDigest: string | null
  readonly replayDigest: string | null
  readonly statsDigest: string | null
  readonly failure: string | null
  readonly players: ReadonlyArray<{ readonly playerId: number; readonly score: number; readonly nbTimeout: number; readonly logDigest: string | null }>
}

export type ReleaseOutcome = "new" | "failed" | "gone"

export interface RunningTask extends Lease {
  readonly expiry: number
}

export interface TaskQueueService {
  /** At master start: every pending row goes back to `new` (or `failed` past the tries). */
  readonly resume: (maxTries: number, now: number) => Effect.Effect<{ readonly requeued: number; readonly failed: number }, QueueUnavailable>
  /** Queued tasks, up to a limit per kind: compilations by id, matches by priority DESC, id. */
  readonly queued: (limit: Readonly<Record<TaskKind, number>>) => Effect.Effect<ReadonlyArray<Queued>, QueueUnavailable>
  /**
   * `new` -> `pending` for `worker`, attempt + 1, and what the worker needs to run it, in one
   * statement (one round trip per dispatch); none when the row is no longer `new`.
   */
  readonly claim: (task: TaskRef, worker: string, expiry: number) => Effect.Effect<Option.Option<Claimed>, QueueUnavailable>
  /** The lease ends without a result: back to `new` (or `failed` past `maxTries`); "gone" if it was not the current lease. */
  readonly release: (lease: Lease, maxTries: number, now: number, failure: string) => Effect.Effect<ReleaseOutcome, QueueUnavailable>
  /** Leases past their expiry at `now`, each released as `release` does. */
  readonly expire: (now: number, maxTries: number) => Effect.Effect<ReadonlyArray<Lease & { readonly outcome: ReleaseOutcome }>, QueueUnavailable>
  /** Records a compilation's result if `lease` is still current (one transaction); false otherwise. */
  readonly finishCompile: (lease: Lease, outcome: CompileOutcome) => Effect.Effect<boolean, QueueUnavailable>
  /** Records a match's result and its players' scores if `lease` is still current (one transaction); false otherwise. */
  readonly finishMatch: (lease: Lease, outcome: MatchOutcome) => Effect.Effect<boolean, QueueUnavailable>
  /** The row's current status and attempt, none if there is no such row. */
  readonly state: (task: TaskRef) => Effect.Effect<Option.Option<{ readonly status: string; readonly attempt: number; readonly worker: string | null }>, QueueUnavailable>
  /** Operator: a `failed`/`error` task back to `new` with its tries reset; the status it had, none if no such row. */
  readonly requeue: (task: TaskRef) => Effect.Effect<Option.Option<string>, QueueUnavailable>
  readonly depth: Effect.Effect<Readonly<Record<TaskKind, number>>, QueueUnavailable>
  readonly running: Effect.Effect<ReadonlyArray<RunningTask>, QueueUnavailable>
}

export class TaskQueue extends Context.Tag("prolo/cluster/TaskQueue")<TaskQueue, TaskQueueService>() {
  static readonly sql: Layer.Layer<TaskQueue, never, SqlClient.SqlClient> = Layer.effect(
    TaskQueue,
    Effect.map(SqlClient.SqlClient, (sql) => makeSqlQueue(sql))
  )
}

const describe = (e: unknown) => (e instanceof Error ? e.message : String(e))

const makeSqlQueue = (sql: SqlClient.SqlClient): TaskQueueService => {
  const table = (kind: TaskKind) => sql(kind === "compile" ? "champion" : "match")
  const unavailable = (what: string) => <A, E, R>(e: Effect.Effect<A, E, R>) =>
    Effect.mapError(e, (cause) => new QueueUnavailable({ message: `cluster queue: cannot ${what}: ${describe(cause)}; nothing changed` }))
  // The status a lease ending without a result leaves: the tries are counted in `attempt`.
  const afterRelease = (max: number) => sql`CASE WHEN attempt - tries_from >= ${max} THEN 'failed' ELSE 'new' END`

  const release: TaskQueueService["release"] = (lease, maxTries, now, failure) =>
    sql<{ status: "new" | "failed" }>`
      UPDATE ${table(lease.kind)} SET status = ${afterRelease(maxTries)}, lease_worker = NULL, lease_expiry = NULL,
        released_at = ${now}, updated_at = now(),
        failure = CASE WHEN attempt - tries_from >= ${maxTries} THEN ${`${failure} (after ${maxTries} tries)`} ELSE failure END
      WHERE id = ${lease.id} AND status = 'pending' AND attempt = ${lease.attempt} AND lease_worker = ${lease.worker}
      RETURNING status`.pipe(
      Effect.map((rows): ReleaseOutcome => rows[0]?.status ?? "gone"),
      unavailable(`release ${taskKey(lease)}`)
    )

  return {
    resume: (maxTries, now) =>
      sql.withTransaction(
        Effect.gen(function* () {
          let requeued = 0
          let failed = 0
          for (const kind of ["compile", "match"] as const) {
            const rows = yield* sql<{ status: string }>`
              UPDATE ${table(kind)} SET status = ${afterRelease(maxTries)}, lease_worker = NULL, lease_expiry = NULL,
                released_at = ${now}, updated_at = now(),
                failure = CASE WHEN attempt - tries_from >= ${maxTries} THEN ${`master restarted (after ${maxTries} tries)`} ELSE failure END
              WHERE status = 'pending' RETURNING status`
            for (const r of rows) r.status === "new" ? requeued++ : failed++
          }
          return { requeued, failed }
        })
      ).pipe(unavailable("resume pending tasks")),
    queued: (limit) =>
      Effect.map(
        Effect.all([
          limit.compile <= 0
            ? Effect.succeed([])
            : sql<{ id: number; last_worker: string | null; released_at: string | null }>`
            SELECT id, last_worker, released_at FROM champion WHERE status = 'new' ORDER BY id LIMIT ${limit.compile}`,
          limit.match <= 0
            ? Effect.succeed([])
            : sql<{ id: number; last_worker: string | null; released_at: string | null }>`
            SELECT id, last_worker, released_at FROM match WHERE status = 'new' ORDER BY priority DESC, id LIMIT ${limit.match}`
        ]),
        ([c, m]): ReadonlyArray<Queued> => [
          ...c.map((r) => ({ kind: "compile" as const, id: r.id, lastWorker: r.last_worker, releasedAt: r.released_at === null ? null : Number(r.released_at) })),
          ...m.map((r) => ({ kind: "match" as const, id: r.id, lastWorker: r.last_worker, releasedAt: r.released_at === null ? null : Number(r.released_at) }))
        ]
      ).pipe(unavailable("read the queue")),
    claim: (task, worker, expiry) =>
      (task.kind === "compile"
        ? sql<{ attempt: number; author: string; name: string; sources_digest: string }>`
            UPDATE champion SET status = 'pending', attempt = attempt + 1, lease_worker = ${worker}, last_worker = ${worker},
              lease_expiry = ${expiry}, released_at = NULL, updated_at = now()
            WHERE id = ${task.id} AND status = 'new' RETURNING attempt, author, name, sources_digest`.pipe(
            Effect.map((rows): Option.Option<Claimed> =>
              Option.map(Option.fromNullable(rows[0]), (r) => ({
                kind: "compile",
                attempt: r.attempt,
                input: { author: r.author, name: r.name, sourcesDigest: r.sources_digest }
              }))
            )
          )
        : sql<{ attempt: number; options: unknown; map: string | null; players: ReadonlyArray<{ playerId: number; championId: number; compiledDigest: string | null }> }>`
            WITH c AS (
              UPDATE match SET status = 'pending', attempt = attempt + 1, lease_worker = ${worker}, last_worker = ${worker},
                lease_expiry = ${expiry}, released_at = NULL, updated_at = now()
              WHERE id = ${task.id} AND status = 'new' RETURNING id, attempt, options, map_id)
            SELECT c.attempt, c.options, map.contents AS map,
              (SELECT coalesce(json_agg(json_build_object('playerId', mp.id, 'championId', mp.champion_id, 'compiledDigest', ch.compiled_digest) ORDER BY mp.id), '[]')
               FROM match_player mp JOIN champion ch ON ch.id = mp.champion_id WHERE mp.match_id = c.id) AS players
            FROM c LEFT JOIN map ON map.id = c.map_id`.pipe(
            Effect.map((rows): Option.Option<Claimed> =>
              Option.map(Option.fromNullable(rows[0]), (r) => ({ kind: "match", attempt: r.attempt, input: { map: r.map, options: r.options, players: r.players } }))
            )
          )
      ).pipe(unavailable(`claim ${taskKey(task)}`)),
    release,
    expire: (now, maxTries) =>
      Effect.gen(function* () {
        const out: Array<Lease & { outcome: ReleaseOutcome }> = []
        for (const kind of ["compile", "match"] as const) {
          const rows = yield* sql<{ id: number; attempt: number; lease_worker: string }>`
            SELECT id, attempt, lease_worker FROM ${table(kind)} WHERE status = 'pending' AND lease_expiry < ${now}`
          for (const r of rows) {
            const lease = { kind, id: r.id, attempt: r.attempt, worker: r.lease_worker }
            const outcome = yield* release(lease, maxTries, now, `timed out on ${r.lease_worker}`)
            if (outcome !== "gone") out.push({ ...lease, outcome })
          }
        }
        return out
      }).pipe(unavailable("expire leases")),
    finishCompile: (lease, o) =>
      sql<{ id: number }>`
        UPDATE champion SET status = ${o.status}, compiled_digest = ${o.compiledDigest}, log_digest = ${o.logDigest},
          failure = ${o.failure}, lease_worker = NULL, lease_expiry = NULL, updated_at = now()
        WHERE id = ${lease.id} AND status = 'pending' AND attempt = ${lease.attempt} AND lease_worker = ${lease.worker}
        RETURNING id`.pipe(
        Effect.map((rows) => rows.length === 1),
        unavailable(`record the compilation of champion ${lease.id}`)
      ),
    // One statement (atomic, one round trip): the CAS on the match, then its players' scores
    // only if the CAS won. The caller has checked that the players are this match's.
    finishMatch: (lease, o) =>
      sql<{ won: string; scored: string }>`
        WITH won AS (
          UPDATE match SET status = ${o.status}, server_log_digest = ${o.serverLogDigest}, dump_digest = ${o.dumpDigest},
            replay_digest = ${o.replayDigest}, stats_digest = ${o.statsDigest}, failure = ${o.failure},
            lease_worker = NULL, lease_expiry = NULL, updated_at = now()
          WHERE id = ${lease.id} AND status = 'pending' AND attempt = ${lease.attempt} AND lease_worker = ${lease.worker}
          RETURNING id),
        scored AS (
          UPDATE match_player mp SET score = v.score, nb_timeout = v.nb_timeout, log_digest = v.log_digest
          FROM jsonb_to_recordset(${JSON.stringify(o.players.map((p) => ({ id: p.playerId, score: p.score, nb_timeout: p.nbTimeout, log_digest: p.logDigest })))}::jsonb)
            AS v(id integer, score integer, nb_timeout integer, log_digest text)
          WHERE mp.id = v.id AND mp.match_id IN (SELECT id FROM won) AND mp.score IS NULL
          RETURNING mp.id)
        SELECT (SELECT count(*) FROM won) AS won, (SELECT count(*) FROM scored) AS scored`.pipe(
        Effect.flatMap(([r]) => {
          const won = Number(r?.won ?? 0) === 1
          if (won && Number(r?.scored ?? 0) !== o.players.length) {
            return Effect.dieMessage(`match ${lease.id}: ${r?.scored} of ${o.players.length} players scored (not this match's players, or scored before)`)
          }
          return Effect.succeed(won)
        }),
        unavailable(`record the result of match ${lease.id}`)
      ),
    state: (task) =>
      sql<{ status: string; attempt: number; lease_worker: string | null }>`
        SELECT status, attempt, lease_worker FROM ${table(task.kind)} WHERE id = ${task.id}`.pipe(
        Effect.map((rows) => Option.map(Option.fromNullable(rows[0]), (r) => ({ status: r.status, attempt: r.attempt, worker: r.lease_worker }))),
        unavailable(`read ${taskKey(task)}`)
      ),
    requeue: (task) =>
      sql.withTransaction(
        Effect.gen(function* () {
          const [row] = yield* sql<{ status: string }>`SELECT status FROM ${table(task.kind)} WHERE id = ${task.id} FOR UPDATE`
          if (row === undefined) return Option.none()
          if (row.status === "failed" || row.status === "error") {
            // A fresh budget of tries; `attempt` goes on growing, so no old attempt's result can match.
            yield* sql`UPDATE ${table(task.kind)} SET status = 'new', tries_from = attempt, lease_worker = NULL, lease_expiry = NULL,
              failure = NULL, updated_at = now() WHERE id = ${task.id}`
          }
          return Option.some(row.status)
        })
      ).pipe(unavailable(`requeue ${taskKey(task)}`)),
    depth: Effect.map(
      sql<{ kind: TaskKind; n: string }>`
        SELECT 'compile' AS kind, count(*) AS n FROM champion WHERE status = 'new'
        UNION ALL SELECT 'match', count(*) FROM match WHERE status = 'new'`,
      (rows) => {
        const d = { compile: 0, match: 0 }
        for (const r of rows) d[r.kind] = Number(r.n)
        return d
      }
    ).pipe(unavailable("count the queue")),
    running: Effect.map(
      sql<{ kind: TaskKind; id: number; attempt: number; lease_worker: string; lease_expiry: string }>`
        SELECT 'compile' AS kind, id, attempt, lease_worker, lease_expiry FROM champion WHERE status = 'pending'
        UNION ALL SELECT 'match', id, attempt, lease_worker, lease_expiry FROM match WHERE status = 'pending'
        ORDER BY 1, 2`,
      (rows) => rows.map((r) => ({ kind: r.kind, id: r.id, attempt: r.attempt, worker: r.lease_worker, expiry: Number(r.lease_expiry) }))
    ).pipe(unavailable("list running tasks"))
  }
}
