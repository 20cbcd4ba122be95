import { Clock, Context, Effect, Either, Layer, Metric, Option, type Redacted, Stream } from "effect"
import * as Prom from "prom-client"
import {
  type Frame,
  InvalidBatch,
  type Position,
  type PublishError,
  type SubscribeError,
  SyncUnauthorized,
  type SyncRecord,
  type SyncUnavailable,
  publishMessage,
  subscribeMessage,
  TopicNotWritable,
  UnknownTopic,
  type Update
} from "../../protocols/sync.js"
import type { ActorTree } from "../../runtime/actor-tree.js"
import { Metrics, promCounter } from "../../runtime/metrics.js"
import type { ActorSupervisor } from "../../runtime/supervisor.js"
import { accept, acceptAt, type RejectReason, TokenRejected } from "../../runtime/timeauth.js"
import { outsidePublishesRefused } from "./metrics.js"
import { parseUpdates, validateUpdates } from "./parse-batch.js"
import { defaultTopicHubOptions, makeTopicHub, type StartKind, type TopicHub, type TopicHubOptions } from "./topic-hub.js"
import type { TopicSource } from "./topic-source.js"
import type { Audience, RecordFilter, TopicDefinition, TopicSecrets } from "./topics.js"

// The gateway's sync hub: one TopicHub per topic, plus the per-topic authorisation that a
// single rpc group serving topics with different secrets needs (tokens are checked here, not by
// group middleware).

export interface HubTopic {
  readonly definition: TopicDefinition
  readonly secrets: TopicSecrets
  readonly source: TopicSource
}

export interface SyncHubConfig {
  readonly topics: ReadonlyArray<HubTopic>
  readonly options?: Partial<TopicHubOptions>
  /** Sees how each subscription starts (metrics label and tests). */
  readonly onStart?: (topic: string, kind: StartKind) => void
}


export interface SyncHubService {
  readonly topicNames: ReadonlyArray<string>
  readonly topic: (name: string) => Effect.Effect<TopicHub, UnknownTopic>
  /** In-process publishing by a trusted actor (presence): no token. */
  readonly publish: (name: string, updates: unknown) => Effect.Effect<number, UnknownTopic | InvalidBatch | SyncUnavailable>
  /**
   * As the original `POST /update`: `token` signs `publishMessage(name, data)` with the publisher
   * secret. A topic with a single writer (mdb, udb, presence) refuses it whatever the token.
   */
  readonly publishSigned: (name: string, data: string, token: string) => Effect.Effect<number, PublishError>
  /**
   * Which audience `token` (over `message`) proves for `name`: the topic's hash secret gives the
   * `hashes` audience, its subscriber or publisher secret the `public` one. The token is spent:
   * the same token again is refused as replayed.
   */
  readonly authorize: (name: string, token: string, message: string | null) => Effect.Effect<Audience, SyncUnauthorized | UnknownTopic>
  /** Frames for an audience already authorised (`authorize`). */
  readonly subscribeAs: (name: string, since: Option.Option<Position>, audience: Audience) => Stream.Stream<Frame, SubscribeError>
  /** Frames for a subscriber authorised as `authorize` does. */
  readonly subscribeSigned: (
    name: string,
    since: Option.Option<Position>,
    token: string,
    message: string | null
  ) => Stream.Stream<Frame, SubscribeError>
}

export class SyncHub extends Context.Tag("prolo/SyncHub")<SyncHub, SyncHubService>() {
  /** Each topic's fan-out is a supervised loop named after the topic, under the current supervisor. */
  static readonly layer = (config: SyncHubConfig): Layer.Layer<SyncHub, never, Metrics | ActorTree | ActorSupervisor> =>
    Layer.scoped(SyncHub, make(config))
}

/** The message a `Subscribe` rpc token signs (the `/poll` route signs `None`, as the original). */
export { subscribeMessage }

const BUFFER_DEPTH = "prolo_sync_subscriber_buffer_depth"

const filterFrame = (filter: RecordFilter, audience: Audience, frame: Frame): Frame => {
  switch (frame._tag) {
    case "Snapshot":
      return { ...frame, records: frame.records.map((r) => filter(audience, r)) }
    case "Batch":
      return { ...frame, updates: frame.updates.map((u) => ({ type: u.type, data: filter(audience, u.data) })) }
    case "Progress":
      return frame
  }
}

const recordsOf = (frame: Frame): ReadonlyArray<SyncRecord> =>
  frame._tag === "Snapshot" ? frame.records : frame._tag === "Batch" ? frame.updates.map((u) => u.data) : []

/**
 * Shapes frames for an audience once per frame: the topic hub hands every subscriber the same
 * batch object, and every subscriber of one audience gets the same shaped object back, so the
 * follow route's per-object encoding cache encodes each batch once per audience, not once per
 * subscriber.
 *
 * The `hashes` audience's filter computes a SHA-512-crypt hash per new password (15-50 ms in
 * JS, then remembered by the filter): before a frame is shaped for it, its records go through
 * the filter one at a time with a yield between them, so that a first snapshot of hundreds of
 * users does not hold the event loop (presence decisions, other subscribers) for seconds; the
 * shaping proper then finds every hash remembered and runs in one go.
 */
const audienceShaper = (filter: RecordFilter) => {
  const shaped: Record<Audience, WeakMap<Frame, Frame>> = { public: new WeakMap(), hashes: new WeakMap() }
  return (audience: Audience) => {
    const cache = shaped[audience]
    const shape = (frame: Frame): Frame => {
      if (frame._tag === "Progress") return frame
      let out = cache.get(frame)
      if (out === undefined) {
        out = filterFrame(filter, audience, frame)
        cache.set(frame, out)
      }
      return out
    }
    if (audience === "public") return (frame: Frame): Effect.Effect<Frame> => Effect.sync(() => shape(frame))
    return (frame: Frame): Effect.Effect<Frame> =>
      cache.has(frame) || frame._tag === "Progress"
        ? Effect.sync(() => shape(frame))
        : Effect.forEach(recordsOf(frame), (r) => Effect.zipRight(Effect.sync(() => filter(audience, r)), Effect.yieldNow()), {
            discard: true
          }).pipe(Effect.zipRight(Effect.sync(() => shape(frame))))
  }
}

const subscriptions = Metric.counter("prolo_sync_subscriptions_total", {
  description: "Subscriptions by how they started (resume, or snapshot and why)",
  incremental: true
})

export const make = (config: SyncHubConfig) =>
  Effect.gen(function* () {
    const options: TopicHubOptions = { ...defaultTopicHubOptions, ...config.options }
    const entries = new Map<
      string,
      { readonly topic: HubTopic; readonly hub: TopicHub; readonly shape: ((audience: Audience) => (frame: Frame) => Effect.Effect<Frame>) | undefined }
    >()
    for (const topic of config.topics) {
      const filter = topic.definition.filter
      entries.set(topic.definition.name, {
        topic,
        hub: yield* makeTopicHub(topic.source, options),
        shape: filter === undefined ? undefined : audienceShaper(filter(topic.secrets))
      })
    }
    const topicNames = [...entries.keys()]

    const { registry } = yield* Metrics
    const rejected = yield* promCounter({
      name: "prolo_auth_rejected_total",
      help: "RPC calls refused by time-auth, by service and reason",
      labelNames: ["service", "reason"]
    })
    // Filled at scrape time, so that departed subscribers leave no stale series.
    registry.removeSingleMetric(BUFFER_DEPTH)
    const depthGauge = new Prom.Gauge({
      name: BUFFER_DEPTH,
      help: "Frames queued for each live subscriber (it is detached as lagging when its buffer is full)",
      labelNames: ["topic", "subscriber"],
      registers: [registry],
      collect() {
        this.reset()
        for (const [name, { hub }] of entries) {
          for (const s of Effect.runSync(hub.subscribers)) this.set({ topic: name, subscriber: String(s.id) }, s.depth)
        }
      }
    })
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        if (registry.getSingleMetric(BUFFER_DEPTH) === depthGauge) registry.removeSingleMetric(BUFFER_DEPTH)
      })
    )

    const entry = (name: string) => {
      const found = entries.get(name)
      return found === undefined ? Effect.fail(new UnknownTopic({ topic: name, known: topicNames })) : Effect.succeed(found)
    }

    const refuse = (topic: string, action: "publish" | "subscribe") => (e: TokenRejected) =>
      Effect.zipRight(
        Effect.sync(() => rejected.inc({ service: `sync/${topic}`, reason: e.reason })),
        Effect.fail(new SyncUnauthorized({ topic, action, reason: e.reason }))
      )

    const publishChecked = (
      name: string,
      updates: Either.Either<ReadonlyArray<Update>, InvalidBatch>
    ): Effect.Effect<number, UnknownTopic | InvalidBatch | SyncUnavailable> =>
      Effect.flatMap(entry(name), ({ hub }) =>
        Either.match(updates, {
          onLeft: (e): Effect.Effect<number, InvalidBatch | SyncUnavailable> => Effect.fail(e),
          onRight: (u) => hub.publish(u)
        })
      )

    // Time, shape and replays are checked per secret; a refusal names the most telling reason
    // (a token replayed under the subscriber secret is `replayed`, not `bad_signature` for the others).
    const authorize = (name: string, token: string, message: string | null) =>
      Effect.flatMap(entry(name), ({ topic }) =>
        Effect.flatMap(Clock.currentTimeMillis, (ms) => {
          const now = Math.floor(ms / 1000)
          const { hashes, subscriber, publisher } = topic.secrets
          const tries: ReadonlyArray<readonly [Audience, Redacted.Redacted<string>]> = [
            ...(hashes === undefined ? [] : [["hashes", hashes] as const]),
            ["public", subscriber],
            ["public", publisher]
          ]
          let reason: RejectReason = "bad_signature"
          for (const [audience, secret] of tries) {
            const refused = acceptAt(token, secret, message, now)
            if (refused === undefined) return Effect.succeed(audience)
            if (refused !== "bad_signature") reason = refused
          }
          return refuse(name, "subscribe")(new TokenRejected({ reason }))
        })
      )

    const subscribeAs = (name: string, since: Option.Option<Position>, audience: Audience) =>
      Stream.unwrap(
        Effect.map(entry(name), ({ hub, shape }) => {
          const frames = hub.subscribe(since, (kind) => {
            Metric.tagged(Metric.tagged(subscriptions, "topic", name), "start", kind).unsafeUpdate(1, [])
            config.onStart?.(name, kind)
          })
          return shape === undefined ? frames : Stream.mapEffect(frames, shape(audience))
        })
      )

    const service: SyncHubService = {
      topicNames,
      topic: (name) => Effect.map(entry(name), (e) => e.hub),
      publish: (name, updates) =>
        Effect.flatMap(entry(name), ({ topic }) => publishChecked(name, validateUpdates(name, topic.definition.keyField, updates))),
      publishSigned: (name, data, token) =>
        Effect.gen(function* () {
          const { topic } = yield* entry(name)
          const writer = topic.definition.writer
          if (writer !== undefined) {
            yield* Metric.increment(outsidePublishesRefused(name))
            yield* Effect.logWarning(`sync ${name}: outside publish refused (the topic is written only by ${writer})`)
            return yield* new TopicNotWritable({ topic: name, writer })
          }
          yield* accept(token, topic.secrets.publisher, publishMessage(name, data)).pipe(Effect.catchAll(refuse(name, "publish")))
          return yield* publishChecked(name, parseUpdates(name, topic.definition.keyField, data))
        }),
      authorize,
      subscribeAs,
      subscribeSigned: (name, since, token, message) =>
        Stream.unwrap(Effect.map(authorize(name, token, message), (audience) => subscribeAs(name, since, audience)))
    }
    return service
  })
