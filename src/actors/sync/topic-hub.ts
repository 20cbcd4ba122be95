import { Chunk, Deferred, Duration, Effect, Exit, Mailbox, Metric, Option, Queue, Schedule, Stream } from "effect"
import {
  type Frame,
  type Position,
  SyncLagging,
  SyncUnavailable,
  type Update
} from "../../protocols/sync.js"
import { supervisedLoop } from "../../runtime/supervised-loop.js"
import { hubMetrics } from "./metrics.js"
import type { StoredBatch, TopicSource } from "./topic-source.js"

// One topic's fan-out. A single pump fiber reads new batches from the source in revision order
// and offers each to every subscriber's bounded mailbox without ever waiting: a subscriber whose
// mailbox is full is ended with `SyncLagging` (it resumes from its revision) and nobody else
// notices. A new subscriber registers under the same lock as the fan-out, so the batches after
// the registration point arrive through its mailbox while it catches up (from the source) on
// the ones before it: no gap, no duplicate.

export interface TopicHubOptions {
  /** Frames a subscriber may have unread before it is detached as lagging. */
  readonly bufferSize: number
  /** Idle keep-alive: a progress frame to every subscriber this often. */
  readonly progressInterval: Duration.DurationInput
  /** Batches read from the source per query (catch-up and pump). */
  readonly pageSize: number
  /** The pump re-reads the source this often even without a change hint (lost NOTIFY). */
  readonly pollInterval: Duration.DurationInput
}

export const defaultTopicHubOptions: TopicHubOptions = {
  bufferSize: 1024,
  progressInterval: "10 seconds",
  pageSize: 500,
  pollInterval: "5 seconds"
}

interface Subscriber {
  readonly id: number
  readonly mailbox: Mailbox.Mailbox<Frame, SyncLagging | SyncUnavailable>
}

export interface SubscriberInfo {
  readonly id: number
  readonly depth: number
}

/** Why a subscription starts the way it does; exposed for metrics and tests. */
export type StartKind = "resume" | "snapshot-new" | "snapshot-epoch" | "snapshot-retention" | "snapshot-ahead"

export interface TopicHub {
  readonly topic: string
  readonly keyField: string
  readonly source: TopicSource
  /** Appends a validated batch and wakes the pump; returns the batch's revision. */
  readonly publish: (updates: ReadonlyArray<Update>) => Effect.Effect<number, SyncUnavailable>
  /** The frames for a subscriber resuming from `since` (none: snapshot first). */
  readonly subscribe: (
    since: Option.Option<Position>,
    onStart?: (kind: StartKind) => void
  ) => Stream.Stream<Frame, SyncLagging | SyncUnavailable>
  /** Last revision fanned out to live subscribers. */
  readonly delivered: Effect.Effect<number>
  readonly subscribers: Effect.Effect<ReadonlyArray<SubscriberInfo>>
}

const depthOf = (s: Subscriber): number => Option.getOrElse(s.mailbox.unsafeSize(), () => 0)

/**
 * Runs until its scope closes; then every subscriber's stream ends (they resume elsewhere or
 * later). Its fan-out is the supervised loop `<supervisor>/<topic>` in `/__actors`: mailbox =
 * frames queued for all subscribers, handled = revision delivered, children = live subscribers.
 */
export const makeTopicHub = (
  source: TopicSource,
  options: TopicHubOptions = defaultTopicHubOptions
) =>
  Effect.gen(function* () {
    const topic = source.topic
    const metrics = hubMetrics(topic)
    const lock = yield* Effect.makeSemaphore(1)
    const subscribers = new Set<Subscriber>()
    let nextId = 1
    // The source may be down at start (database restarting): wait for it, as the original
    // waited for its backlog, but without blocking the layer.
    let delivered = -1
    const loaded = yield* Deferred.make<void>()
    const wake = yield* Queue.sliding<void>(1)

    const lagging = (s: Subscriber) => {
      subscribers.delete(s)
      s.mailbox.unsafeDone(Exit.fail(new SyncLagging({ topic, buffered: depthOf(s) })))
      metrics.lagging.unsafeUpdate(1, [])
    }

    const fanOut = (frame: Frame) => {
      for (const s of subscribers) {
        if (!s.mailbox.unsafeOffer(frame)) lagging(s)
      }
    }

    const deliver = (batches: ReadonlyArray<StoredBatch>) =>
      lock.withPermits(1)(
        Effect.sync(() => {
          for (const b of batches) {
            if (b.revision <= delivered) continue
            fanOut({ _tag: "Batch", revision: b.revision, updates: b.updates })
            delivered = b.revision
          }
          return delivered
        })
      )

    const pumpOnce: Effect.Effect<void, SyncUnavailable> = Effect.gen(function* () {
      if (delivered < 0) {
        const head = yield* source.head
        yield* lock.withPermits(1)(Effect.sync(() => {
          delivered = head
        }))
        yield* Deferred.succeed(loaded, undefined)
        yield* Effect.logInfo(`sync ${topic}: serving from revision ${head} (epoch ${source.epoch})`)
      }
      while (true) {
        const batches = yield* source.readSince(delivered, options.pageSize)
        if (batches.length === 0) break
        yield* deliver(batches)
        yield* Metric.set(metrics.revision, delivered)
        if (batches.length < options.pageSize) break
      }
    })

    const pump = Effect.gen(function* () {
      yield* Queue.take(wake)
      yield* Queue.takeAll(wake)
      yield* pumpOnce
    }).pipe(
      Effect.tapError((e) => Effect.logWarning(`sync ${topic}: ${e.message}; retrying`)),
      Effect.retry(Schedule.exponential("200 millis").pipe(Schedule.union(Schedule.spaced("5 seconds")))),
      Effect.forever
    )

    // The pump, the change listener and the two timers are one supervised loop: a defect in any
    // of them restarts all four from the delivered revision; subscribers stay attached.
    const fanOutLoop = Effect.all(
      [
        Effect.zipRight(Queue.offer(wake, undefined), pump),
        Stream.runForEach(source.changes, (r) => (r > delivered ? Queue.offer(wake, undefined) : Effect.void)),
        Effect.sleep(options.pollInterval).pipe(Effect.zipRight(Queue.offer(wake, undefined)), Effect.forever),
        Effect.sleep(options.progressInterval).pipe(
          Effect.zipRight(
            lock.withPermits(1)(Effect.sync(() => {
              if (delivered >= 0) fanOut({ _tag: "Progress", revision: delivered })
            }))
          ),
          Effect.forever
        )
      ],
      { concurrency: "unbounded", discard: true }
    )
    yield* supervisedLoop(topic, fanOutLoop, {
      probe: Effect.sync(() => {
        let queued = 0
        for (const s of subscribers) queued += depthOf(s)
        return { mailboxDepth: queued, handled: Math.max(0, delivered), children: subscribers.size }
      })
    })
    yield* Effect.addFinalizer(() =>
      lock.withPermits(1)(Effect.sync(() => {
        for (const s of subscribers) {
          s.mailbox.unsafeDone(Exit.fail(new SyncUnavailable({ topic, reason: "hub stopping" })))
        }
        subscribers.clear()
      }))
    )

    const publish = (updates: ReadonlyArray<Update>) =>
      source.append(updates).pipe(
        Effect.tap(() => Queue.offer(wake, undefined)),
        Effect.tap(() => Metric.increment(metrics.published))
      )

    // Batches (after, upTo] from the source, checked to be contiguous.
    const catchUp = (after: number, upTo: number): Stream.Stream<Frame, SyncUnavailable> =>
      Stream.paginateChunkEffect(after, (cursor) =>
        cursor >= upTo
          ? Effect.succeed([Chunk.empty<Frame>(), Option.none<number>()] as const)
          : Effect.flatMap(source.readSince(cursor, options.pageSize), (batches) => {
            const frames: Array<Frame> = []
            let at = cursor
            for (const b of batches) {
              if (b.revision > upTo) break
              if (b.revision !== at + 1) {
                return Effect.fail(
                  new SyncUnavailable({ topic, reason: `history after revision ${at} was pruned while resuming` })
                )
              }
              frames.push({ _tag: "Batch", revision: b.revision, updates: b.updates })
              at = b.revision
            }
            if (at < upTo && frames.length === 0) {
              return Effect.fail(new SyncUnavailable({ topic, reason: `revisions ${at + 1}..${upTo} missing from the store` }))
            }
            return Effect.succeed([Chunk.unsafeFromArray(frames), at < upTo ? Option.some(at) : Option.none()] as const)
          })
      )

    const subscribe = (
      since: Option.Option<Position>,
      onStart?: (kind: StartKind) => void
    ): Stream.Stream<Frame, SyncLagging | SyncUnavailable> =>
      Stream.unwrapScoped(
        Effect.gen(function* () {
          // Until the source answered once there is no registration point: wait for it.
          yield* Deferred.await(loaded)
          const mailbox = yield* Mailbox.make<Frame, SyncLagging | SyncUnavailable>(options.bufferSize)
          const sub: Subscriber = { id: nextId++, mailbox }
          const registeredAt = yield* lock.withPermits(1)(Effect.sync(() => {
            subscribers.add(sub)
            return delivered
          }))
          yield* Effect.addFinalizer(() => Effect.sync(() => subscribers.delete(sub)))

          let kind: StartKind = "snapshot-new"
          let cursor = -1
          if (Option.isSome(since)) {
            if (since.value.epoch !== source.epoch) kind = "snapshot-epoch"
            else {
              const floor = yield* source.floor
              const head = Math.max(registeredAt, yield* source.head)
              if (since.value.revision > head) kind = "snapshot-ahead"
              else if (since.value.revision < floor) kind = "snapshot-retention"
              else {
                kind = "resume"
                cursor = since.value.revision
              }
            }
          }
          onStart?.(kind)
          let initial: Stream.Stream<Frame, SyncUnavailable> = Stream.empty
          if (kind !== "resume") {
            const snap = yield* source.snapshot
            cursor = snap.revision
            yield* Metric.increment(metrics.snapshots)
            initial = Stream.make<Array<Frame>>({
              _tag: "Snapshot",
              epoch: source.epoch,
              revision: snap.revision,
              records: snap.records
            })
          }
          // Tells the subscriber it is current (and connected) before anything new happens.
          const caughtUp = Stream.suspend(() => Stream.make<Array<Frame>>({ _tag: "Progress", revision: cursor }))
          const live = Stream.mapChunksEffect(
            Mailbox.toStream(mailbox),
            (chunk): Effect.Effect<Chunk.Chunk<Frame>, SyncUnavailable> => {
              const out: Array<Frame> = []
              for (const frame of chunk) {
                if (frame._tag === "Batch") {
                  if (frame.revision <= cursor) continue
                  if (frame.revision !== cursor + 1) {
                    return Effect.fail(new SyncUnavailable({ topic, reason: `gap after revision ${cursor}; resume` }))
                  }
                  cursor = frame.revision
                  out.push(frame)
                } else if (frame._tag === "Progress") {
                  // The shared object when it is right for this subscriber: encoded once for all.
                  out.push(frame.revision === cursor ? frame : { _tag: "Progress", revision: cursor })
                } else {
                  out.push(frame)
                }
              }
              return Effect.succeed(Chunk.unsafeFromArray(out))
            }
          )
          const upTo = registeredAt
          return initial.pipe(
            Stream.concat(
              Stream.suspend(() => {
                const from = cursor
                return catchUp(from, upTo).pipe(
                  Stream.tap((f) =>
                    Effect.sync(() => {
                      if (f._tag === "Batch") cursor = f.revision
                    })
                  )
                )
              })
            ),
            Stream.concat(caughtUp),
            Stream.concat(live)
          )
        })
      )

    const hub: TopicHub = {
      topic,
      keyField: source.keyField,
      source,
      publish,
      subscribe,
      delivered: Effect.sync(() => delivered),
      subscribers: Effect.sync(() => [...subscribers].map((s) => ({ id: s.id, depth: depthOf(s) })))
    }
    return hub
  })
