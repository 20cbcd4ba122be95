import type { Effect, Stream } from "effect"
import type { SyncRecord, SyncUnavailable, Update } from "../../protocols/sync.js"

// Where a topic's history lives. The hub only fans out what a source holds, so a hub restart
// loses nothing a source kept: the durable source (PostgreSQL change log, for mdb and udb) keeps
// history across restarts; the in-memory source (presence, tests) starts a new epoch.

export interface StoredBatch {
  readonly revision: number
  readonly updates: ReadonlyArray<Update>
}

export interface TopicSnapshot {
  readonly revision: number
  readonly records: ReadonlyArray<SyncRecord>
}

export interface TopicSource {
  readonly topic: string
  /** The record field that identifies a record (`mac`, `login`). */
  readonly keyField: string
  /**
   * Names this history. Revisions are comparable only within one epoch: a subscriber holding
   * another epoch's revision gets a snapshot.
   */
  readonly epoch: string
  /** Stores one batch (already validated) under the next revision and returns that revision. */
  readonly append: (updates: ReadonlyArray<Update>) => Effect.Effect<number, SyncUnavailable>
  /** The last stored revision (0 before the first batch). */
  readonly head: Effect.Effect<number, SyncUnavailable>
  /** The smallest `since` from which `readSince` still returns every later batch. */
  readonly floor: Effect.Effect<number, SyncUnavailable>
  /** Up to `limit` batches with revision > `after`, in revision order. */
  readonly readSince: (after: number, limit: number) => Effect.Effect<ReadonlyArray<StoredBatch>, SyncUnavailable>
  /** Every current record and the revision they reflect. */
  readonly snapshot: Effect.Effect<TopicSnapshot, SyncUnavailable>
  /**
   * Hints that the head moved (a revision at least as new as the one emitted exists). Hints may
   * be coalesced or lost; the hub also re-reads the head periodically.
   */
  readonly changes: Stream.Stream<number>
}
