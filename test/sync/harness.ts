import { Context, Effect, Exit, Layer, Option, Redacted, Ref, Scope, Stream } from "effect"
import type { Metrics } from "../../src/runtime/metrics.js"
import { generate } from "../../src/runtime/timeauth.js"
import { SyncHub, type SyncHubConfig, type SyncHubService } from "../../src/actors/sync/hub.js"
import { type SyncConnection, type SyncConnector, SyncTransportError } from "../../src/actors/sync/connection.js"
import { makeMemorySource } from "../../src/actors/sync/memory-source.js"
import type { TopicSource } from "../../src/actors/sync/topic-source.js"
import { publishMessage, subscribeMessage } from "../../src/protocols/sync.js"
import { testSupervision } from "../support/supervision.js"

// In-process hub that tests can stop and start again over the same sources (a hub restart with
// the history kept, as for the durable topics), and a connector that reaches whichever hub is up.

export const PUB = Redacted.make("pub-secret")
export const SUB = Redacted.make("sub-secret")
/** The udb-like topics' `hashes` audience. */
export const HASH = Redacted.make("hash-secret")

export const memoryTopic = (name: string, retention: number, keyField = "login") =>
  Effect.map(makeMemorySource({ topic: name, keyField, retention, epoch: `${name}-epoch` }), (source) => ({
    definition: { name, keyField, durable: false, profile: name },
    secrets: { publisher: PUB, subscriber: SUB },
    source
  }))

export interface RestartableHub {
  readonly current: Effect.Effect<Option.Option<SyncHubService>>
  /** (Re)starts the hub, over new sources when `config` is given. */
  readonly start: (config?: SyncHubConfig) => Effect.Effect<SyncHubService>
  readonly stop: Effect.Effect<void>
  readonly connector: SyncConnector
}

export const restartableHub = (initial: SyncHubConfig, metrics: Context.Context<Metrics>) =>
  Effect.gen(function* () {
    const slot = yield* Ref.make<Option.Option<{ hub: SyncHubService; scope: Scope.CloseableScope }>>(Option.none())
    let config = initial
    const stop = Effect.flatMap(Ref.getAndSet(slot, Option.none()), (old) =>
      Option.match(old, { onNone: () => Effect.void, onSome: ({ scope }) => Scope.close(scope, Exit.void) })
    )
    const start = (next?: SyncHubConfig) => Effect.gen(function* () {
      if (next !== undefined) config = next
      yield* stop
      const scope = yield* Scope.make()
      const ctx = yield* Layer.buildWithScope(SyncHub.layer(config).pipe(Layer.provide(testSupervision)), scope).pipe(Effect.provide(metrics))
      const hub = Context.get(ctx, SyncHub)
      yield* Ref.set(slot, Option.some({ hub, scope }))
      return hub
    })
    yield* Effect.addFinalizer(() => stop)
    const connector: SyncConnector = Effect.flatMap(Ref.get(slot), (s) =>
      Option.match(s, {
        onNone: () => Effect.fail(new SyncTransportError({ reason: "hub down" })),
        onSome: ({ hub }): Effect.Effect<SyncConnection> =>
          Effect.succeed({
            subscribe: (r) => hub.subscribeSigned(r.topic, Option.fromNullable(r.since), r.token, subscribeMessage(r.topic)),
            publish: (r) => hub.publishSigned(r.topic, r.data, r.token)
          })
      })
    )
    const hub: RestartableHub = { current: Effect.map(Ref.get(slot), Option.map((s) => s.hub)), start, stop, connector }
    return hub
  })

export const sources = (topics: ReadonlyArray<{ readonly source: TopicSource }>) => topics.map((t) => t.source)

export const publishToken = (topic: string, data: string) => generate(PUB, publishMessage(topic, data))
export const subscribeToken = (topic: string) => generate(SUB, subscribeMessage(topic))

/** Collects a stream's frames until `n` arrived. */
export const take = <A, E>(stream: Stream.Stream<A, E>, n: number) => Stream.runCollect(Stream.take(stream, n))
