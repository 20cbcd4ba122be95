import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Layer, Option, TestClock } from "effect"
import { Directory } from "../../src/actors/presence/directory.js"
import { SyncClient, type FollowHandler } from "../../src/actors/sync/client.js"
import type { SyncRecord } from "../../src/protocols/sync.js"
import { testSupervision } from "../support/supervision.js"

// The directory answers from the followed mdb and udb topics, and never says "not registered"
// before it has heard them.

const follower = () => {
  const handlers = new Map<string, FollowHandler>()
  const ready = Effect.runSync(Deferred.make<void>())
  const follower = (topic: string, handler: FollowHandler) =>
    Effect.sync(() => {
      handlers.set(topic, handler)
      if (handlers.size === 2) Effect.runSync(Deferred.succeed(ready, undefined))
      return { run: Effect.never, lastFrameAt: () => undefined }
    })
  const layer = Layer.succeed(SyncClient, {
    follow: (topic, handler) => Effect.zipRight(follower(topic, handler), Effect.never),
    follower,
    publish: () => Effect.die("not used")
  })
  const deliver = (topic: string, records: ReadonlyArray<SyncRecord>, key: string) =>
    Effect.flatMap(Deferred.await(ready), () =>
      handlers.get(topic)!(new Map(records.map((r) => [String(r[key]), r])), new Map(), { kind: "snapshot", revision: 1, epoch: "e" })
    )
  return { layer, deliver }
}

describe("Directory.following", () => {
  it.scoped("answers machines by exact hostname and users by login from the topics' state", () => {
    const f = follower()
    return Effect.gen(function* () {
      const directory = yield* Directory
      yield* f.deliver("mdb", [{ mac: "aa", hostname: "pas-r01p01", mtype: "user", aliases: "x,y" }, { mac: "bb", hostname: "gw", mtype: "service" }], "mac")
      yield* f.deliver("udb", [{ login: "alice", group: "user" }, { login: "olga", group: "orga" }], "login")
      expect(yield* directory.machine("pas-r01p01")).toEqual(Option.some({ mtype: "user" }))
      expect(yield* directory.machine("x")).toEqual(Option.none())
      expect(yield* directory.user("olga")).toEqual(Option.some({ group: "orga" }))
      expect(yield* directory.user("bob")).toEqual(Option.none())
      // a later state replaces the earlier one: a deleted machine is gone
      yield* f.deliver("mdb", [{ mac: "bb", hostname: "gw", mtype: "service" }], "mac")
      expect(yield* directory.machine("pas-r01p01")).toEqual(Option.none())
    }).pipe(Effect.provide(Directory.following({ readyWait: "5 seconds" }).pipe(Layer.provide(Layer.merge(f.layer, testSupervision)))))
  })

  it.scoped("before the first snapshot a lookup waits, then answers PresenceUnavailable rather than a wrong refusal", () => {
    const f = follower()
    return Effect.gen(function* () {
      const directory = yield* Directory
      const early = yield* Effect.fork(Effect.either(directory.machine("pas-r01p01")))
      yield* TestClock.adjust("5 seconds")
      const result = yield* Fiber.join(early)
      expect(result._tag).toBe("Left")
      if (result._tag === "Left") {
        expect(result.left._tag).toBe("PresenceUnavailable")
        expect(result.left.message).toContain("mdb topic has not been received yet")
      }
      const waiting = yield* Effect.fork(directory.machine("pas-r01p01"))
      yield* f.deliver("mdb", [{ mac: "aa", hostname: "pas-r01p01", mtype: "user" }], "mac")
      expect(yield* Fiber.join(waiting)).toEqual(Option.some({ mtype: "user" }))
    }).pipe(Effect.provide(Directory.following({ readyWait: "5 seconds" }).pipe(Layer.provide(Layer.merge(f.layer, testSupervision)))))
  })
})
