import { SqlClient, SqlSchema } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { PgClient } from "@effect/sql-pg"
import { Context, Effect, Layer, Option, Schema, Stream } from "effect"
import type { ParseError } from "effect/ParseResult"

/**
 * The shared, revisioned change log. Writers (mdb, udb, …) call `append` inside the
 * transaction that makes the change; the sync hub reads `readSince` / `snapshot` and wakes
 * on `listen`. Revisions per topic are consecutive: the counter is a row updated in the
 * writer's transaction, so a rolled-back write leaves no gap and the row lock makes a
 * later revision commit only after the earlier one did.
 */

export const CHANGES_CHANNEL = "prolo_changes"

export const JsonObject = Schema.Record({ key: Schema.String, value: Schema.Unknown })
export type JsonObject = typeof JsonObject.Type

export const ChangeOp = Schema.Literal("update", "delete")
export type ChangeOp = typeof ChangeOp.Type

export const ChangeEntry = Schema.Struct({ op: ChangeOp, key: Schema.String, record: JsonObject })
export type ChangeEntry = typeof ChangeEntry.Type

export const ChangeBatch = Schema.Struct({ revision: Schema.Number, entries: Schema.Array(ChangeEntry) })
export type ChangeBatch = typeof ChangeBatch.Type

export const SnapshotRecord = Schema.Struct({ key: Schema.String, record: JsonObject })
export type SnapshotRecord = typeof SnapshotRecord.Type

/** Every current record of a topic as of `revision` (0 for a topic never written). */
export const Snapshot = Schema.Struct({ revision: Schema.Number, records: Schema.Array(SnapshotRecord) })
export type Snapshot = typeof Snapshot.Type

export const ChangeNotice = Schema.Struct({ topic: Schema.String, revision: Schema.Number })
export type ChangeNotice = typeof ChangeNotice.Type

export interface ChangeLogService {
  /**
   * Appends one revision holding `entries` (seq 0..n-1) and returns it. Joins the caller's
   * transaction (opens one when there is none); the notification goes out at commit.
   */
  readonly append: (topic: string, entries: ReadonlyArray<ChangeEntry>) => Effect.Effect<number, SqlError>
  /** Up to `limit` revisions after `afterRevision`, oldest first. */
  readonly readSince: (topic: string, afterRevision: number, limit: number) => Effect.Effect<ReadonlyArray<ChangeBatch>, SqlError>
  readonly snapshot: (topic: string) => Effect.Effect<Snapshot, SqlError>
  /** Latest committed revision of the topic (0 when never written). */
  readonly head: (topic: string) => Effect.Effect<number, SqlError>
  /** Oldest revision still readable with `readSince`; none when the log holds nothing for the topic. */
  readonly oldestRetained: (topic: string) => Effect.Effect<Option.Option<number>, SqlError>
  /** Drops all but the newest `keepRevisions` revisions; returns how many revisions were dropped. */
  readonly prune: (topic: string, keepRevisions: number) => Effect.Effect<number, SqlError>
  /** Commit notices of every topic, from LISTEN; a notice means "read past your revision". */
  readonly listen: Stream.Stream<ChangeNotice, SqlError>
}

export class ChangeLog extends Context.Tag("prolo/ChangeLog")<ChangeLog, ChangeLogService>() {}

const LogRow = Schema.Struct({ revision: Schema.Number, key: Schema.String, op: ChangeOp, record: JsonObject })
const StateRow = Schema.Struct({
  revision: Schema.Number,
  key: Schema.NullOr(Schema.String),
  record: Schema.NullOr(JsonObject)
})

// Rows we wrote ourselves failing their schema is a bug, not an input error.
const orDieParse = <A, R>(self: Effect.Effect<A, SqlError | ParseError, R>) =>
  Effect.catchTag(self, "ParseError", (e) => Effect.die(e))

const parseNotice = (payload: string): Option.Option<ChangeNotice> => {
  const at = payload.lastIndexOf(":")
  const revision = Number(payload.slice(at + 1))
  return at > 0 && Number.isSafeInteger(revision) ? Option.some({ topic: payload.slice(0, at), revision }) : Option.none()
}

export const make = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const pg = yield* PgClient.PgClient

  // One statement (data-modifying CTEs): one round trip whatever the batch size. The counter
  // row's lock is held until the caller commits, which orders revisions by commit.
  const appendInTx = (topic: string, entries: ReadonlyArray<ChangeEntry>) => {
    // Only the last entry per key decides the materialised state (so the two sets are disjoint).
    const last = new Map<string, ChangeEntry>()
    for (const e of entries) last.set(e.key, e)
    const deleted = [...last.values()].filter((e) => e.op === "delete").map((e) => e.key)
    const updated = [...last.values()].filter((e) => e.op === "update").map((e) => ({ key: e.key, record: e.record }))
    const log = entries.map((e, seq) => ({ seq, op: e.op, key: e.key, record: e.record }))
    return Effect.map(
      sql<{ revision: number }>`
        WITH rev AS (
          INSERT INTO sync_revision (topic, revision) VALUES (${topic}, 1)
          ON CONFLICT (topic) DO UPDATE SET revision = sync_revision.revision + 1
          RETURNING revision),
        log AS (
          INSERT INTO change_log (topic, revision, seq, key, op, record)
          SELECT ${topic}, rev.revision, e.seq, e.key, e.op, e.record
          FROM rev, jsonb_to_recordset(${JSON.stringify(log)}::jsonb) AS e(seq int, op text, key text, record jsonb)),
        gone AS (
          DELETE FROM sync_state WHERE topic = ${topic} AND key = ANY (${deleted}::text[])),
        kept AS (
          INSERT INTO sync_state (topic, key, record, revision)
          SELECT ${topic}, u.key, u.record, rev.revision
          FROM rev, jsonb_to_recordset(${JSON.stringify(updated)}::jsonb) AS u(key text, record jsonb)
          ON CONFLICT (topic, key) DO UPDATE SET record = EXCLUDED.record, revision = EXCLUDED.revision)
        -- PgClient.notify is broken in Effect 3 (effect-notes §4); pg_notify is delivered at commit.
        SELECT revision, pg_notify(${CHANGES_CHANNEL}, ${topic} || ':' || revision) FROM rev`,
      (rows) => rows[0]!.revision
    )
  }

  const append: ChangeLogService["append"] = (topic, entries) =>
    Effect.flatMap(Effect.serviceOption(SqlClient.TransactionConnection), (tx) =>
      Option.isSome(tx) ? appendInTx(topic, entries) : sql.withTransaction(appendInTx(topic, entries))
    )

  const readLog = SqlSchema.findAll({
    Request: Schema.Struct({ topic: Schema.String, after: Schema.Number, limit: Schema.Number }),
    Result: LogRow,
    execute: ({ topic, after, limit }) => sql`
      SELECT revision, key, op, record FROM change_log
      WHERE topic = ${topic} AND revision > ${after} AND revision <= ${after + limit}
      ORDER BY revision, seq`
  })

  const readSince: ChangeLogService["readSince"] = (topic, afterRevision, limit) =>
    orDieParse(readLog({ topic, after: afterRevision, limit: Math.max(0, Math.floor(limit)) })).pipe(
      Effect.map((rows) => {
        const batches: Array<{ revision: number; entries: Array<ChangeEntry> }> = []
        for (const row of rows) {
          const current = batches[batches.length - 1]
          const entry = { op: row.op, key: row.key, record: row.record }
          if (current?.revision === row.revision) current.entries.push(entry)
          else batches.push({ revision: row.revision, entries: [entry] })
        }
        return batches
      })
    )

  // One statement, hence one MVCC snapshot: the revision matches the records exactly.
  const readState = SqlSchema.findAll({
    Request: Schema.String,
    Result: StateRow,
    execute: (topic) => sql`
      WITH head AS (SELECT coalesce((SELECT revision FROM sync_revision WHERE topic = ${topic}), 0) AS revision)
      SELECT head.revision, s.key, s.record
      FROM head LEFT JOIN sync_state s ON s.topic = ${topic}
      ORDER BY s.key`
  })

  const snapshot: ChangeLogService["snapshot"] = (topic) =>
    orDieParse(readState(topic)).pipe(
      Effect.map((rows) => ({
        revision: rows[0]?.revision ?? 0,
        records: rows.flatMap((r) => (r.key !== null && r.record !== null ? [{ key: r.key, record: r.record }] : []))
      }))
    )

  const head: ChangeLogService["head"] = (topic) =>
    Effect.map(
      sql<{ revision: number }>`SELECT revision FROM sync_revision WHERE topic = ${topic}`,
      (rows) => rows[0]?.revision ?? 0
    )

  const oldestRetained: ChangeLogService["oldestRetained"] = (topic) =>
    Effect.map(
      sql<{ revision: number | null }>`SELECT min(revision) AS revision FROM change_log WHERE topic = ${topic}`,
      (rows) => Option.fromNullable(rows[0]?.revision)
    )

  const prune: ChangeLogService["prune"] = (topic, keepRevisions) =>
    Effect.map(
      sql<{ dropped: number }>`
        WITH gone AS (
          DELETE FROM change_log
          WHERE topic = ${topic}
            AND revision <= (SELECT revision FROM sync_revision WHERE topic = ${topic}) - ${Math.max(0, Math.floor(keepRevisions))}
          RETURNING revision)
        SELECT count(DISTINCT revision) AS dropped FROM gone`,
      (rows) => rows[0]?.dropped ?? 0
    )

  const listen: ChangeLogService["listen"] = pg.listen(CHANGES_CHANNEL).pipe(Stream.filterMap(parseNotice))

  return ChangeLog.of({ append, readSince, snapshot, head, oldestRetained, prune, listen })
})

export const layer: Layer.Layer<ChangeLog, never, SqlClient.SqlClient | PgClient.PgClient> = Layer.effect(ChangeLog, make)
