import type { SqlError } from "@effect/sql/SqlError"
import { Effect, Option, Schedule, Stream } from "effect"
import { type SyncRecord, SyncUnavailable, type Update } from "../../protocols/sync.js"
import type { ChangeLogService } from "../../store/change-log.js"
import { recordKey } from "./apply-updates.js"
import type { StoredBatch, TopicSource } from "./topic-source.js"
import type { TopicDefinition } from "./topics.js"

// A topic whose history is the PostgreSQL change log (mdb, udb). Writers append in their own
// transactions; a publish through the hub appends in a transaction of its own. The history
// survives hub restarts, so the epoch is fixed: a subscriber's revision stays valid.

export const DURABLE_EPOCH = "pg"

export interface ChangeLogSourceOptions {
  readonly topic: string
  readonly keyField: string
  /** Field order of records read back (jsonb keeps its own): these first, the others after. */
  readonly fieldOrder?: ReadonlyArray<string>
}

const reorder = (order: ReadonlyArray<string>) => (record: SyncRecord): SyncRecord => {
  const out: Record<string, unknown> = {}
  for (const k of order) if (Object.hasOwn(record, k)) out[k] = record[k]
  for (const k of Object.keys(record)) if (!Object.hasOwn(out, k)) out[k] = record[k]
  return out
}

export const makeChangeLogSource = (log: ChangeLogService, options: ChangeLogSourceOptions): TopicSource => {
  const { topic, keyField } = options
  const ordered = options.fieldOrder === undefined ? (r: SyncRecord) => r : reorder(options.fieldOrder)
  const unavailable = (e: SqlError) => new SyncUnavailable({ topic, reason: `database: ${e.message}` })
  const guard = <A>(self: Effect.Effect<A, SqlError>) => Effect.mapError(self, unavailable)

  return {
    topic,
    keyField,
    epoch: DURABLE_EPOCH,
    append: (updates: ReadonlyArray<Update>) =>
      guard(
        log.append(
          topic,
          // The hub validated every key before calling append.
          updates.map((u) => ({ op: u.type, key: recordKey(keyField, u.data) ?? "", record: u.data }))
        )
      ),
    head: guard(log.head(topic)),
    floor: guard(
      Effect.flatMap(log.oldestRetained(topic), (oldest) =>
        Option.match(oldest, { onNone: () => log.head(topic), onSome: (r) => Effect.succeed(r - 1) })
      )
    ),
    readSince: (after, limit) =>
      guard(log.readSince(topic, after, limit)).pipe(
        Effect.map((batches): ReadonlyArray<StoredBatch> =>
          batches.map((b) => ({
            revision: b.revision,
            updates: b.entries.map((e) => ({ type: e.op, data: ordered(e.record) }))
          }))
        )
      ),
    snapshot: guard(log.snapshot(topic)).pipe(
      Effect.map((s) => ({ revision: s.revision, records: s.records.map((r) => ordered(r.record)) }))
    ),
    // A dropped LISTEN connection is re-opened; the hub's periodic re-read covers the gap.
    changes: log.listen.pipe(
      Stream.filter((n) => n.topic === topic),
      Stream.map((n) => n.revision),
      Stream.tapError((e) => Effect.logWarning(`sync ${topic}: LISTEN failed (${e.message}); re-listening`)),
      Stream.retry(Schedule.exponential("500 millis").pipe(Schedule.union(Schedule.spaced("10 seconds")))),
      Stream.catchAll(() => Stream.empty)
    )
  }
}

/** The source of a durable topic, as its definition says. */
export const changeLogSourceFor = (log: ChangeLogService, definition: TopicDefinition): TopicSource =>
  makeChangeLogSource(log, {
    topic: definition.name,
    keyField: definition.keyField,
    ...(definition.fieldOrder === undefined ? {} : { fieldOrder: definition.fieldOrder })
  })
