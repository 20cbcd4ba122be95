import { Context, Effect, Layer } from "effect"
import { Directory } from "../../src/actors/presence/directory.js"
import { LeaseStore } from "../../src/actors/presence/lease-store.js"
import { PresencePublisher } from "../../src/actors/presence/publisher.js"
import { Presence } from "../../src/actors/presence/service.js"
import { SyncHub } from "../../src/actors/sync/hub.js"
import { makeSyncClient, SyncClient } from "../../src/actors/sync/client.js"
import { Metrics } from "../../src/runtime/metrics.js"
import type { Update } from "../../src/protocols/sync.js"
import { memoryTopic, PUB, restartableHub, SUB } from "../sync/harness.js"
import { testSupervision } from "./supervision.js"

// The gateway's three followed topics (mdb, udb, presence) on a real in-memory hub that a test
// can stop and restart, and a `SyncClient` on it: what the sso and firewall subsystems follow,
// without a database. Publishing goes through the client (memory topics have no single writer).

export const gwTopics = Effect.gen(function* () {
  const metrics = yield* Layer.build(Metrics.layer)
  const topics = [yield* memoryTopic("mdb", 5000, "mac"), yield* memoryTopic("udb", 5000), yield* memoryTopic("presence", 5000)]
  const hub = yield* restartableHub({ topics, options: { progressInterval: "10 seconds" } }, metrics)
  const service = yield* hub.start()
  const client = makeSyncClient({ connect: hub.connector, credentials: () => ({ subscribe: SUB, publish: PUB }) })
  const publish = (topic: string, updates: ReadonlyArray<Update>) => client.publish(topic, updates).pipe(Effect.orDie)
  const machine = (hostname: string, ip: string, mtype = "user") =>
    ({ type: "update", data: { mac: `02:00:${ip.split(".").map((n) => Number(n).toString(16).padStart(2, "0")).join(":")}`, hostname, ip, mtype } }) as const
  const user = (login: string, group = "user") => ({ type: "update", data: { login, group } }) as const
  const login = (who: string, hostname: string) => ({ type: "update", data: { login: who, hostname } }) as const
  const logout = (who: string) => ({ type: "delete", data: { login: who, hostname: null } }) as const
  return { hub, service, client, clientLayer: Layer.succeed(SyncClient, client), metrics, publish, machine, user, login, logout }
})

/** Lets the hub's and followers' fibers run (no clock involved). */
export const settle = Effect.repeatN(Effect.yieldNow(), 100)

/**
 * The real Presence service (memory lease store, 10 min leases) publishing to the topics' hub
 * and checking logins against their mdb and udb: what logs users in and out in gateway tests.
 */
export const realPresence = (t: Effect.Effect.Success<typeof gwTopics>) =>
  Effect.gen(function* () {
    const supervision = yield* Layer.build(testSupervision)
    const layer = Presence.layer({ leaseMillis: 600_000 }).pipe(
      Layer.provide(Directory.following({ readyWait: "5 seconds" })),
      Layer.provide(
        Layer.mergeAll(t.clientLayer, LeaseStore.memory().layer, PresencePublisher.hub.pipe(Layer.provide(Layer.succeed(SyncHub, t.service))))
      )
    )
    const ctx = yield* Layer.build(layer).pipe(Effect.provide(supervision), Effect.provide(t.metrics))
    return Context.get(ctx, Presence)
  })
