import { describe, expect, it } from "@effect/vitest"
import { Chunk, Context, Effect, Fiber, Layer, Option, Stream, TestClock } from "effect"
import { SyncHub } from "../../src/actors/sync/hub.js"
import { makeMemorySource } from "../../src/actors/sync/memory-source.js"
import { PRESENCE_TOPIC, type RecordFilter } from "../../src/actors/sync/topics.js"
import { publishMessage, subscribeMessage } from "../../src/protocols/sync.js"
import { Metrics } from "../../src/runtime/metrics.js"
import { generate } from "../../src/runtime/timeauth.js"
import { HASH, PUB, SUB } from "./harness.js"
import { testSupervision } from "../support/supervision.js"

// Per-topic authorisation in the hub: which secret signed decides the audience, the topic's
// filter shapes records per audience, and refused calls change nothing.

// The hash audience sees a stand-in hash in place of the password, the public no password at all.
const hidePassword: RecordFilter = (audience, record) => {
  const { password, ...rest } = record
  return audience === "hashes" ? { ...rest, password_hash: `hash(${String(password)})` } : rest
}

const Hub = Layer.unwrapEffect(
  Effect.map(makeMemorySource({ topic: "udb", keyField: "login", retention: 10, epoch: "e" }), (source) =>
    SyncHub.layer({
      topics: [{ definition: { name: "udb", keyField: "login", durable: false, profile: "udbsync", filter: () => hidePassword }, secrets: { publisher: PUB, subscriber: SUB, hashes: HASH }, source }]
    })
  )
).pipe(Layer.provide(Layer.merge(Metrics.layer, testSupervision)))

const firstFrames = (token: string) =>
  Effect.flatMap(SyncHub, (hub) => Stream.runCollect(Stream.take(hub.subscribeSigned("udb", Option.none(), token, subscribeMessage("udb")), 1)))

describe("sync hub auth", () => {
  it.scoped("the hash secret reads the hash audience, the subscriber and publisher secrets the public one", () =>
    Effect.gen(function* () {
      const hub = yield* SyncHub
      const data = JSON.stringify([{ type: "update", data: { login: "alice", password: "s3cret", uid: 10000 } }])
      expect(yield* hub.publishSigned("udb", data, yield* generate(PUB, publishMessage("udb", data)))).toBe(1)
      const hashed = Chunk.toReadonlyArray(yield* firstFrames(yield* generate(HASH, subscribeMessage("udb"))))
      const pub = Chunk.toReadonlyArray(yield* firstFrames(yield* generate(SUB, subscribeMessage("udb"))))
      const publisher = Chunk.toReadonlyArray(yield* firstFrames(yield* generate(PUB, subscribeMessage("udb"))))
      expect(hashed).toEqual([{ _tag: "Snapshot", epoch: "e", revision: 1, records: [{ login: "alice", uid: 10000, password_hash: "hash(s3cret)" }] }])
      expect(pub).toEqual([{ _tag: "Snapshot", epoch: "e", revision: 1, records: [{ login: "alice", uid: 10000 }] }])
      expect(publisher).toEqual(pub)
    }).pipe(Effect.provide(Hub))
  )

  it.scoped("a token is spent: the same token again is refused as replayed, on publish and on subscribe", () =>
    Effect.gen(function* () {
      const hub = yield* SyncHub
      const data = JSON.stringify([{ type: "update", data: { login: "carol" } }])
      const token = yield* generate(PUB, publishMessage("udb", data))
      expect(yield* hub.publishSigned("udb", data, token)).toBe(1)
      expect(yield* Effect.flip(hub.publishSigned("udb", data, token))).toMatchObject({ _tag: "SyncUnauthorized", action: "publish", reason: "replayed" })
      const sub = yield* generate(SUB, subscribeMessage("udb"))
      yield* firstFrames(sub)
      expect(yield* Effect.flip(firstFrames(sub))).toMatchObject({ _tag: "SyncUnauthorized", action: "subscribe", reason: "replayed" })
      // Its window closed, the token is refused as expired (and forgotten by the cache).
      yield* TestClock.adjust("121 seconds")
      expect(yield* Effect.flip(firstFrames(sub))).toMatchObject({ reason: "expired" })
      // A token for the same data on another topic does not publish here.
      const elsewhere = yield* generate(PUB, publishMessage("mdb", data))
      expect(yield* Effect.flip(hub.publishSigned("udb", data, elsewhere))).toMatchObject({ reason: "bad_signature" })
      expect(yield* (yield* hub.topic("udb")).source.head).toBe(1)
    }).pipe(Effect.provide(Hub))
  )

  it.scoped("stale, future, forged and wrong-secret tokens are refused with their reason and change nothing", () =>
    Effect.gen(function* () {
      const hub = yield* SyncHub
      const data = JSON.stringify([{ type: "update", data: { login: "bob" } }])
      const stale = yield* generate(PUB, publishMessage("udb", data))
      const staleSub = yield* generate(SUB, subscribeMessage("udb"))
      yield* TestClock.adjust("121 seconds")
      const refused = (token: string) => Effect.flip(hub.publishSigned("udb", data, token))
      expect(yield* refused(stale)).toMatchObject({ _tag: "SyncUnauthorized", action: "publish", reason: "expired" })
      // Stamped 300 s while the clock reads 121 s.
      expect(yield* refused("300:" + "0".repeat(64))).toMatchObject({ reason: "future" })
      expect(yield* refused("garbage")).toMatchObject({ reason: "malformed" })
      expect(yield* refused("")).toMatchObject({ reason: "missing" })
      expect(yield* refused(yield* generate(SUB, publishMessage("udb", data)))).toMatchObject({ reason: "bad_signature" })
      // The original's message (`data` alone) is not what a publish token signs any more.
      expect(yield* refused(yield* generate(PUB, data))).toMatchObject({ reason: "bad_signature" })
      const sub = yield* Effect.flip(Stream.runCollect(hub.subscribeSigned("udb", Option.none(), staleSub, subscribeMessage("udb"))))
      expect(sub).toMatchObject({ _tag: "SyncUnauthorized", action: "subscribe", reason: "expired" })
      const topic = yield* hub.topic("udb")
      expect(yield* topic.source.head).toBe(0)
      expect(yield* Effect.flip(hub.publish("nope", []))).toMatchObject({ _tag: "UnknownTopic", known: ["udb"] })
      expect(yield* Effect.flip(hub.publish("udb", [{ type: "update", data: { nologin: 1 } }]))).toMatchObject({ _tag: "InvalidBatch", index: 0 })
      expect(yield* topic.source.head).toBe(0)
    }).pipe(Effect.provide(Hub))
  )

  it.scoped("a single-writer topic (presence) refuses outside publishes, even with a valid token, and changes nothing", () =>
    Effect.gen(function* () {
      const source = yield* makeMemorySource({ topic: "presence", keyField: "login", retention: 10, epoch: "e" })
      const hub = yield* Effect.provide(
        SyncHub,
        SyncHub.layer({
          topics: [{ definition: { ...PRESENCE_TOPIC }, secrets: { publisher: PUB, subscriber: SUB }, source }]
        }).pipe(Layer.provide(Layer.merge(Metrics.layer, testSupervision)))
      )
      const data = JSON.stringify([{ type: "update", data: { login: "mallory", hostname: "pas-r01p01" } }])
      const refused = yield* Effect.flip(hub.publishSigned("presence", data, yield* generate(PUB, publishMessage("presence", data))))
      expect(refused).toMatchObject({ _tag: "TopicNotWritable", topic: "presence" })
      expect(refused.message).toBe("sync topic presence is written only by the presence actor: outside publishes are refused")
      expect(yield* source.head).toBe(0)
      // The in-process writer still publishes.
      expect(yield* hub.publish("presence", [{ type: "update", data: { login: "alice", hostname: "pas-r01p02" } }])).toBe(1)
    })
  )

  it.scoped("the hash audience is shaped a record at a time: other fibers run between two hashes", () =>
    Effect.gen(function* () {
      const log: Array<string> = []
      const hashing: RecordFilter = (audience, record) => {
        if (audience === "hashes") log.push("hash")
        return hidePassword(audience, record)
      }
      const source = yield* makeMemorySource({ topic: "udb", keyField: "login", retention: 10, epoch: "e" })
      // Built in the test's scope: the topic's fan-out loop lives as long as the hub does.
      const hub = Context.get(
        yield* Layer.build(
          SyncHub.layer({
            topics: [{ definition: { name: "udb", keyField: "login", durable: false, profile: "udbsync", filter: () => hashing }, secrets: { publisher: PUB, subscriber: SUB, hashes: HASH }, source }]
          }).pipe(Layer.provide(Layer.merge(Metrics.layer, testSupervision)))
        ),
        SyncHub
      )
      yield* hub.publish("udb", ["a", "b", "c", "d", "e"].map((login) => ({ type: "update" as const, data: { login, password: `pw-${login}` } })))
      const other = yield* Effect.fork(Effect.forEach(Array.from({ length: 50 }), () => Effect.zipRight(Effect.sync(() => log.push("other")), Effect.yieldNow()), { discard: true }))
      const [snapshot] = Chunk.toReadonlyArray(
        yield* Stream.runCollect(Stream.take(hub.subscribeSigned("udb", Option.none(), yield* generate(HASH, subscribeMessage("udb")), subscribeMessage("udb")), 1))
      )
      yield* Fiber.join(other)
      expect(snapshot).toMatchObject({ _tag: "Snapshot", records: [{ login: "a", password_hash: "hash(pw-a)" }, { login: "b" }, { login: "c" }, { login: "d" }, { login: "e" }] })
      // The first pass (one hash per record) is interleaved with the other fiber.
      const firstHashes = log.reduce<Array<number>>((at, l, i) => (l === "hash" && at.length < 5 ? [...at, i] : at), [])
      expect(firstHashes).toHaveLength(5)
      for (let i = 1; i < 5; i++) expect(log.slice(firstHashes[i - 1]! + 1, firstHashes[i]!)).toContain("other")
    })
  )
})
