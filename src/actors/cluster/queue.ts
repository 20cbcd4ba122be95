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
  /** Up to `limit` queued tasks of each kind: compilations by id, matches by priority DESC, id. */
  readonly queued: (limit: number) => Effect.Effect<ReadonlyArray<Queued>, QueueUnavailable>
  /** `new` -> `pending` for `worker`, attempt + 1; none when the row is no longer `new`. */
  readonly claim: (task: TaskRef, worker: string, expiry: number) => Effect.Effect<Option.Option<number>, QueueUnavailable>
  readonly compileInput: (id: number) => Effect.Effect<Option.Option<CompileInput>, QueueUnavailable>
  readonly matchInput: (id: number) => Effect.Effect<Option.Option<MatchInput>, QueueUnavailable>
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
  const afterRelease = (max: number) => sql`CASE WHEN attempt >= ${max} THEN 'failed' ELSE 'new' END`

  const release: TaskQueueService["release"] = (lease, maxTries, now, failure) =>
    sql<{ status: "new" | "failed" }>`
      UPDATE ${table(lease.kind)} SET status = ${afterRelease(maxTries)}, lease_worker = NULL, lease_expiry = NULL,
        released_at = ${now}, updated_at = now(),
        failure = CASE WHEN attempt >= ${maxTries} THEN ${`${failure} (after ${maxTries} tries)`} ELSE failure END
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
                failure = CASE WHEN attempt >= ${maxTries} THEN ${`master restarted (after ${maxTries} tries)`} ELSE failure END
              WHERE status = 'pending' RETURNING status`
            for (const r of rows) r.status === "new" ? requeued++ : failed++
          }
          return { requeued, failed }
        })
      ).pipe(unavailable("resume pending tasks")),
    queued: (limit) =>
      Effect.map(
        Effect.all([
          sql<{ id: number; last_worker: string | null; released_at: string | null }>`
            SELECT id, last_worker, released_at FROM champion WHERE status = 'new' ORDER BY id LIMIT ${limit}`,
          sql<{ id: number; last_worker: string | null; released_at: string | null }>`
            SELECT id, last_worker, released_at FROM match WHERE status = 'new' ORDER BY priority DESC, id LIMIT ${limit}`
        ]),
        ([c, m]): ReadonlyArray<Queued> => [
          ...c.map((r) => ({ kind: "compile" as const, id: r.id, lastWorker: r.last_worker, releasedAt: r.released_at === null ? null : Number(r.released_at) })),
          ...m.map((r) => ({ kind: "match" as const, id: r.id, lastWorker: r.last_worker, releasedAt: r.released_at === null ? null : Number(r.released_at) }))
        ]
      ).pipe(unavailable("read the queue")),
    claim: (task, worker, expiry) =>
      sql<{ attempt: number }>`
        UPDATE ${table(task.kind)} SET status = 'pending', attempt = attempt + 1, lease_worker = ${worker}, last_worker = ${worker},
          lease_expiry = ${expiry}, released_at = NULL, updated_at = now()
        WHERE id = ${task.id} AND status = 'new' RETURNING attempt`.pipe(
        Effect.map((rows) => Option.map(Option.fromNullable(rows[0]), (r) => r.attempt)),
        unavailable(`claim ${taskKey(task)}`)
      ),
    compileInput: (id) =>
      sql<{ author: string; name: string; sources_digest: string }>`SELECT author, name, sources_digest FROM champion WHERE id = ${id}`.pipe(
        Effect.map((rows) => Option.map(Option.fromNullable(rows[0]), (r) => ({ author: r.author, name: r.name, sourcesDigest: r.sources_digest }))),
        unavailable(`read champion ${id}`)
      ),
    matchInput: (id) =>
      Effect.gen(function* () {
        const [m] = yield* sql<{ options: unknown; contents: string | null }>`
          SELECT match.options, map.contents FROM match LEFT JOIN map ON map.id = match.map_id WHERE match.id = ${id}`
        if (m === undefined) return Option.none()
        const players = yield* sql<{ id: number; champion_id: number; compiled_digest: string | null }>`
          SELECT match_player.id, champion_id, champion.compiled_digest FROM match_player
          JOIN champion ON champion.id = match_player.champion_id WHERE match_id = ${id} ORDER BY match_player.id`
        return Option.some({
          map: m.contents,
          options: m.options,
          players: players.map((p) => ({ playerId: p.id, championId: p.champion_id, compiledDigest: p.compiled_digest }))
        })
      }).pipe(unavailable(`read match ${id}`)),
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
    finishMatch: (lease, o) =>
      sql.withTransaction(
        Effect.gen(function* () {
          const won = yield* sql<{ id: number }>`
            UPDATE match SET status = ${o.status}, server_log_digest = ${o.serverLogDigest}, dump_digest = ${o.dumpDigest},
              replay_digest = ${o.replayDigest}, stats_digest = ${o.statsDigest}, failure = ${o.failure},
              lease_worker = NULL, lease_expiry = NULL, updated_at = now()
            WHERE id = ${lease.id} AND status = 'pending' AND attempt = ${lease.attempt} AND lease_worker = ${lease.worker}
            RETURNING id`
          if (won.length !== 1) return false
          for (const p of o.players) {
            // Only rows of this match, and only once: a score already set means a bug upstream.
            const set = yield* sql`
              UPDATE match_player SET score = ${p.score}, nb_timeout = ${p.nbTimeout}, log_digest = ${p.logDigest}
              WHERE id = ${p.playerId} AND match_id = ${lease.id} AND score IS NULL RETURNING id`
            if (set.length !== 1) return yield* Effect.dieMessage(`match ${lease.id}: player ${p.playerId} is not one of its players or already scored`)
          }
          return true
        })
      ).pipe(unavailable(`record the result of match ${lease.id}`)),
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
            yield* sql`UPDATE ${table(task.kind)} SET status = 'new', attempt = 0, lease_worker = NULL, lease_expiry = NULL,
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
