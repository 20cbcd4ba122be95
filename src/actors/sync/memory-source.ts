import { Effect, Random, Stream, SubscriptionRef } from "effect"
import type { SyncRecord } from "../../protocols/sync.js"
import { applyUpdates } from "./apply-updates.js"
import type { StoredBatch, TopicSource } from "./topic-source.js"

// A topic held in process memory: the presence topic (rebuilt from heartbeats after a restart,
// as the original) and the hub's tests. It keeps the last `retention` batches.

export interface MemorySourceOptions {
  readonly topic: string
  readonly keyField: string
  /** Batches kept for resuming subscribers; older ones are answered with a snapshot. */
  readonly retention: number
  /** Defaults to a random name, so that revisions of a previous process never match. */
  readonly epoch?: string
}

export const makeMemorySource = (options: MemorySourceOptions): Effect.Effect<TopicSource> =>
  Effect.gen(function* () {
    const epoch = options.epoch ?? `mem-${(yield* Random.nextIntBetween(0, 2 ** 30)).toString(36)}`
    const state = new Map<string, SyncRecord>()
    const batches: Array<StoredBatch> = []
    let head = 0
    const headRef = yield* SubscriptionRef.make(0)

    // Appends are synchronous (no yield between reading and bumping `head`), hence atomic.
    const append = (updates: StoredBatch["updates"]) =>
      Effect.suspend(() => {
        head += 1
        applyUpdates(options.keyField, state, updates)
        batches.push({ revision: head, updates })
        if (batches.length > options.retention) batches.splice(0, batches.length - options.retention)
        return Effect.as(SubscriptionRef.set(headRef, head), head)
      })

    const floor = () => (batches.length === 0 ? head : batches[0]!.revision - 1)

    const source: TopicSource = {
      topic: options.topic,
      keyField: options.keyField,
      epoch,
      append,
      head: Effect.sync(() => head),
      floor: Effect.sync(floor),
      readSince: (after, limit) =>
        Effect.sync(() => {
          const first = batches[0]
          if (first === undefined) return []
          const start = Math.max(0, after + 1 - first.revision)
          return batches.slice(start, start + limit)
        }),
      snapshot: Effect.sync(() => ({ revision: head, records: [...state.values()] })),
      changes: Stream.map(headRef.changes, (r) => r)
    }
    return source
  })
