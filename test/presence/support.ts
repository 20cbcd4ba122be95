import { Effect, Fiber, Layer, Option, Scope, Exit, Context } from "effect"
import type * as Prom from "prom-client"
import { Directory } from "../../src/actors/presence/directory.js"
import { LeaseStore, type MemoryLeaseStore } from "../../src/actors/presence/lease-store.js"
import { PresencePublisher } from "../../src/actors/presence/publisher.js"
import { Presence } from "../../src/actors/presence/service.js"
import { ActorTree } from "../../src/runtime/actor-tree.js"
import { Metrics } from "../../src/runtime/metrics.js"
import { RootSupervisor } from "../../src/runtime/supervisor.js"
import type { MachineFacts, UserFacts } from "../../src/actors/presence/rules.js"

export const LEASE_MS = 10_000

// 4 contestant machines, one orga machine, one service machine; contestants, an orga, a root.
export const machines: Record<string, MachineFacts> = {
  "pas-r01p01": { mtype: "user" },
  "pas-r01p02": { mtype: "user" },
  "pas-r01p03": { mtype: "user" },
  "pas-r01p04": { mtype: "user" },
  "orga-pc": { mtype: "orga" },
  gw: { mtype: "service" }
}
export const users: Record<string, UserFacts> = {
  alice: { group: "user" },
  bob: { group: "user" },
  carol: { group: "user" },
  olga: { group: "orga" },
  rooty: { group: "root" }
}

export const runtimeServices = RootSupervisor.layerWithExit(() => Effect.void).pipe(
  Layer.provideMerge(Layer.mergeAll(ActorTree.layer, Metrics.layer))
)

export type Harness = {
  readonly store: MemoryLeaseStore
  readonly published: ReturnType<typeof PresencePublisher.recording>
  /** Starts presence (again) over the same store and topic; the previous one is stopped first. */
  readonly start: Effect.Effect<Context.Context<Presence | Metrics>>
  readonly stop: Effect.Effect<void>
}

/** Presence over in-memory store and topic that outlive restarts; time from the ambient Clock. */
export const makeHarness = (
  options: { readonly store?: MemoryLeaseStore; readonly storeLayer?: Layer.Layer<LeaseStore>; readonly directory?: Layer.Layer<Directory> } = {}
) =>
  Effect.gen(function* () {
    const store = options.store ?? LeaseStore.memory()
    const published = PresencePublisher.recording()
    let scope: Scope.CloseableScope | undefined
    const stop = Effect.suspend(() => {
      const s = scope
      scope = undefined
      return s === undefined ? Effect.void : Scope.close(s, Exit.void)
    })
    const start = Effect.gen(function* () {
      yield* stop
      const s = yield* Scope.make()
      scope = s
      return yield* Layer.buildWithScope(
        Presence.layer({ leaseMillis: LEASE_MS }).pipe(
          Layer.provideMerge(runtimeServices),
          Layer.provide(options.directory ?? Directory.fromRecords(machines, users)),
          Layer.provide(options.storeLayer ?? store.layer),
          Layer.provide(published.layer)
        ),
        s
      ).pipe(Effect.orDie)
    })
    yield* Effect.addFinalizer(() => stop)
    const harness: Harness = { store, published, start, stop }
    return harness
  })

/** Value of a prom-client counter/gauge sample with these labels (0 when absent). */
export const sample = (name: string, labels: Record<string, string> = {}) =>
  Effect.flatMap(Metrics, ({ registry }) =>
    Effect.promise(async () => {
      const family = name.replace(/_(count|sum)$/, "")
      const metric = (registry.getSingleMetric(name) ?? registry.getSingleMetric(family)) as Prom.Metric | undefined
      if (metric === undefined) return 0
      const { values } = await metric.get()
      const found = values.find((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x) && ((v as { metricName?: string }).metricName ?? name) === name)
      return found?.value ?? 0
    })
  )

/**
 * Runs `effect`, which must finish with no virtual time passing because it waits on nothing
 * (e.g. a heartbeat while a store write is stalled); dies naming `what` otherwise.
 */
export const promptly = <A, E>(what: string, effect: Effect.Effect<A, E>) =>
  Effect.gen(function* () {
    const fiber = yield* Effect.fork(effect)
    for (let i = 0; i < 500 && Option.isNone(yield* Fiber.poll(fiber)); i++) yield* Effect.yieldNow()
    const exit = yield* Fiber.poll(fiber)
    if (Option.isNone(exit)) {
      yield* Fiber.interrupt(fiber)
      return yield* Effect.dieMessage(`${what}: still waiting (behind a stalled write?)`)
    }
    return yield* exit.value
  })
