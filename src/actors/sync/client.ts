import {
  Cause,
  Clock,
  Context,
  Duration,
  Effect,
  Layer,
  Metric,
  Option,
  Random,
  type Redacted,
  Schedule,
  Schema,
  type Scope,
  Stream
} from "effect"
import {
  type Frame,
  type Position,
  type PublishError,
  publishMessage,
  subscribeMessage,
  type SyncRecord,
  type Update
} from "../../protocols/sync.js"
import { generate } from "../../runtime/timeauth.js"
import { applySnapshot, applyUpdates, type Metadata, type State } from "./apply-updates.js"
import type { SyncConnector, SyncTransportError } from "./connection.js"
import { followerMetrics } from "./metrics.js"
import { validateUpdates } from "./parse-batch.js"
import { DEFAULT_TOPICS } from "./topics.js"

// The subscriber side (the original's `poll_updates`): keeps the topic's materialised state,
// calls the handler after every applied snapshot or batch, and never gives up: whatever ends a
// stream (hub restart, lagging, network), it waits a jittered backoff and resumes from the last
// revision it applied. Frames that do not follow that revision end the stream too (resume), so a
// batch is never applied twice nor skipped. Only a handler's defect ends it, for its supervisor
// to restart it (`follower` + `supervisedLoop`) from that same revision.

export interface FrameInfo {
  readonly kind: "snapshot" | "batch"
  readonly revision: number
  readonly epoch: string
}

export type FollowHandler = (
  state: ReadonlyMap<string, SyncRecord>,
  metadata: Metadata,
  info: FrameInfo
) => Effect.Effect<void, unknown>

export interface FollowOptions {
  /** Fields whose change counts as `updated` (the original's `watch`); every change when absent. */
  readonly watch?: ReadonlyArray<string>
  /** Key field of the topic; known topics (mdb, udb, presence) need none. */
  readonly keyField?: string
}

export interface BackoffOptions {
  readonly initial: Duration.DurationInput
  readonly max: Duration.DurationInput
  /** No frame for this long (3 progress intervals) means a dead connection: reconnect. */
  readonly idleTimeout: Duration.DurationInput
  /** How often the staleness gauge is refreshed. */
  readonly stalenessInterval: Duration.DurationInput
}

export const defaultBackoff: BackoffOptions = {
  initial: "200 millis",
  max: "10 seconds",
  idleTimeout: "35 seconds",
  stalenessInterval: "1 second"
}

/** The caller holds no secret for this topic and action (the original: "No secret provided"). */
export class NoSecret extends Schema.TaggedError<NoSecret>()("NoSecret", {
  topic: Schema.String,
  action: Schema.Literal("publish", "subscribe")
}) {
  override get message(): string {
    return `no ${this.action} secret configured for sync topic ${this.topic}`
  }
}

/** A frame that does not continue the follower's revision: the stream is dropped and resumed. */
class OutOfSequence extends Schema.TaggedError<OutOfSequence>()("OutOfSequence", { reason: Schema.String }) {}

export interface TopicCredentials {
  /** Signs Subscribe (subscriber secret, or the topic's hash secret for the `hashes` audience). */
  readonly subscribe?: Redacted.Redacted<string>
  readonly publish?: Redacted.Redacted<string>
}

export interface SyncClientConfig {
  readonly connect: SyncConnector
  readonly credentials: (topic: string) => TopicCredentials
  readonly backoff?: Partial<BackoffOptions>
  /** Key field per topic, for topics other than mdb, udb and presence. */
  readonly keyFields?: Readonly<Record<string, string>>
}

/**
 * A follower of one topic that holds its position and materialised state between runs of `run`:
 * run it under `supervisedLoop` and a restart resumes from the revision it last applied, first
 * calling the handler again for a frame whose handler call died.
 */
export interface Follower {
  /**
   * Follows until the handler dies (a defect), which ends the run with that defect; the
   * handler's typed failures are logged and ignored. Anything else (hub restart, lagging,
   * network) is resumed from the revision held, after a jittered backoff.
   */
  readonly run: Effect.Effect<never, never, Scope.Scope>
  /**
   * `Clock` time of the last frame received (progress frames included: the hub sends one every
   * progress interval even when nothing changes); undefined before the first. Synchronous, so a
   * hot path (SSO's whois) can refuse to answer from a state nobody vouches for any more.
   */
  readonly lastFrameAt: () => number | undefined
}

export interface SyncClientService {
  /** Follows `topic` forever (fork it): `follower` run once, so a handler's defect ends it. */
  readonly follow: (topic: string, handler: FollowHandler, options?: FollowOptions) => Effect.Effect<never, NoSecret>
  /** A follower to run under supervision (see `Follower`); fails at once without a subscribe secret. */
  readonly follower: (topic: string, handler: FollowHandler, options?: FollowOptions) => Effect.Effect<Follower, NoSecret>
  /** Publishes one update message; returns its revision. */
  readonly publish: (
    topic: string,
    updates: ReadonlyArray<Update>
  ) => Effect.Effect<number, PublishError | SyncTransportError | NoSecret>
}

export class SyncClient extends Context.Tag("prolo/SyncClient")<SyncClient, SyncClientService>() {
  static readonly layer = (config: SyncClientConfig): Layer.Layer<SyncClient> => Layer.succeed(SyncClient, makeSyncClient(config))
}

const keyFieldOf = (config: SyncClientConfig, topic: string, options: FollowOptions | undefined): string =>
  options?.keyField ?? config.keyFields?.[topic] ?? DEFAULT_TOPICS.find((t) => t.name === topic)?.keyField ?? "key"

/** "Equal jitter": each delay becomes a random one between half and all of it. */
const equalJitter = <Out, In, R>(schedule: Schedule.Schedule<Out, In, R>) => Schedule.jitteredWith(schedule, { min: 0.5, max: 1 })

/**
 * Between subscriptions. After one that delivered frames: `initial` (jittered). After n that
 * delivered nothing in a row: `initial * 2^n`, at most `max` (jittered).
 */
export const reconnectSchedules = (options: BackoffOptions) => ({
  afterFrames: equalJitter(Schedule.spaced(options.initial)),
  afterNothing: equalJitter(
    Schedule.exponential(Duration.times(Duration.decode(options.initial), 2)).pipe(Schedule.union(Schedule.spaced(options.max)))
  )
})

export const makeSyncClient = (config: SyncClientConfig): SyncClientService => {
  const backoff: BackoffOptions = { ...defaultBackoff, ...config.backoff }

  const follower = (topic: string, handler: FollowHandler, options?: FollowOptions): Effect.Effect<Follower, NoSecret> =>
    Effect.gen(function* () {
      const secret = config.credentials(topic).subscribe
      if (secret === undefined) return yield* new NoSecret({ topic, action: "subscribe" })
      const keyField = keyFieldOf(config, topic, options)
      const metrics = followerMetrics(topic)
      // Kept across runs: the state applied so far, its position, and the handler call a defect
      // cut short (the state is already applied; the handler still has to see it).
      const state: State = new Map()
      let position: Option.Option<Position> = Option.none()
      let lastFrameAt = yield* Clock.currentTimeMillis
      let heard = false
      let owed: { readonly metadata: Metadata; readonly info: FrameInfo } | undefined

      const deliver = (metadata: Metadata, info: FrameInfo) =>
        Effect.suspend(() => {
          owed = { metadata, info }
          return handler(state, metadata, info)
        }).pipe(
          Effect.catchAll((e) => Effect.logError(`sync ${topic}: handler failed at revision ${info.revision}`, e)),
          Effect.tap(() => {
            owed = undefined
          })
        )

      const onFrame = (frame: Frame): Effect.Effect<void, OutOfSequence> =>
        Effect.gen(function* () {
          lastFrameAt = yield* Clock.currentTimeMillis
          heard = true
          yield* Metric.set(metrics.staleness, 0)
          switch (frame._tag) {
            case "Snapshot": {
              if (Option.isSome(position)) yield* Metric.increment(metrics.resyncs)
              const metadata = applySnapshot(keyField, state, frame.records, options?.watch)
              position = Option.some({ epoch: frame.epoch, revision: frame.revision })
              return yield* deliver(metadata, { kind: "snapshot", revision: frame.revision, epoch: frame.epoch })
            }
            case "Batch": {
              if (Option.isNone(position) || frame.revision !== position.value.revision + 1) {
                return yield* new OutOfSequence({
                  reason: `batch ${frame.revision} after ${Option.match(position, { onNone: () => "nothing", onSome: (p) => String(p.revision) })}`
                })
              }
              const metadata = applyUpdates(keyField, state, frame.updates, options?.watch)
              const epoch = position.value.epoch
              position = Option.some({ epoch, revision: frame.revision })
              return yield* deliver(metadata, { kind: "batch", revision: frame.revision, epoch })
            }
            case "Progress": {
              if (Option.isNone(position) || frame.revision !== position.value.revision) {
                return yield* new OutOfSequence({ reason: `progress ${frame.revision} does not match our revision` })
              }
              return
            }
          }
        })

      // One subscription: true when it delivered at least one frame (the backoff restarts). A
      // handler that died ends the run with its defect (the supervisor restarts the follower);
      // everything else ends only this subscription.
      const attempt = Effect.gen(function* () {
        let received = false
        const token = yield* generate(secret, subscribeMessage(topic))
        const since = Option.getOrUndefined(position)
        const exit = yield* Effect.scoped(
          Effect.flatMap(config.connect, (connection) =>
            connection.subscribe(since === undefined ? { topic, token } : { topic, since, token }).pipe(
              Stream.timeoutFail(() => new OutOfSequence({ reason: `no frame for ${Duration.format(backoff.idleTimeout)}` }), backoff.idleTimeout),
              Stream.runForEach((frame) => {
                received = true
                return onFrame(frame)
              })
            )
          )
        ).pipe(Effect.exit)
        if (exit._tag === "Failure" && owed !== undefined && Cause.isDie(exit.cause)) {
          return yield* Effect.die(Cause.squash(exit.cause))
        }
        const why = exit._tag === "Success" ? "stream ended" : Cause.pretty(exit.cause).split("\n", 1)[0]
        yield* Effect.logInfo(`sync ${topic}: subscription ended (${why}); resuming`)
        return received
      })

      const { afterFrames, afterNothing } = reconnectSchedules(backoff)
      const delivered = attempt.pipe(
        Effect.filterOrFail(
          (received) => received,
          () => "no frame" as const
        ),
        Effect.retry(afterNothing),
        Effect.orDie // afterNothing never ends: only a defect gets out
      )
      const run = Effect.gen(function* () {
        yield* Effect.forkScoped(
          Effect.flatMap(Clock.currentTimeMillis, (now) => Metric.set(metrics.staleness, (now - lastFrameAt) / 1000)).pipe(
            Effect.repeat(Schedule.spaced(backoff.stalenessInterval))
          )
        )
        if (owed !== undefined) yield* deliver(owed.metadata, owed.info)
        return yield* Effect.repeat(delivered, afterFrames).pipe(Effect.zipRight(Effect.never))
      })
      return { run, lastFrameAt: () => (heard ? lastFrameAt : undefined) }
    })

  const follow = (topic: string, handler: FollowHandler, options?: FollowOptions): Effect.Effect<never, NoSecret> =>
    Effect.flatMap(follower(topic, handler, options), (f) => Effect.scoped(f.run))

  const publish = (topic: string, updates: ReadonlyArray<Update>) =>
    Effect.gen(function* () {
      const secret = config.credentials(topic).publish
      if (secret === undefined) return yield* new NoSecret({ topic, action: "publish" })
      const keyField = keyFieldOf(config, topic, undefined)
      // Same checks as the hub: a bad message fails here with the hub's error, before sending.
      const valid = validateUpdates(topic, keyField, updates)
      if (valid._tag === "Left") return yield* valid.left
      const data = JSON.stringify(updates)
      const token = yield* generate(secret, publishMessage(topic, data))
      return yield* Effect.scoped(Effect.flatMap(config.connect, (c) => c.publish({ topic, data, token })))
    })

  return { follow, follower, publish }
}
