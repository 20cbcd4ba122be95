import { describe, expect, it } from "@effect/vitest"
import { Chunk, Duration, Effect, Layer, Metric, Random, Schedule, Stream, TestClock } from "effect"
import { defaultBackoff, reconnectSchedules, type FrameInfo, makeSyncClient } from "../../src/actors/sync/client.js"
import type { Metadata } from "../../src/actors/sync/apply-updates.js"
import { followerMetrics } from "../../src/actors/sync/metrics.js"
import { Metrics } from "../../src/runtime/metrics.js"
import type { Frame, SyncRecord } from "../../src/protocols/sync.js"
import type { SyncConnector } from "../../src/actors/sync/connection.js"
import { memoryTopic, PUB, restartableHub, SUB } from "./harness.js"

const settle = Effect.repeatN(Effect.yieldNow(), 40)

interface Seen {
  readonly info: FrameInfo
  readonly metadata: Record<string, string>
  readonly state: Record<string, SyncRecord>
}

const setup = (topic = "presence") =>
  Effect.gen(function* () {
    const metrics = yield* Layer.build(Metrics.layer)
    const t = yield* memoryTopic(topic, 5)
    const hub = yield* restartableHub({ topics: [t], options: { bufferSize: 16, progressInterval: "10 seconds" } }, metrics)
    yield* hub.start()
    const client = makeSyncClient({
      connect: hub.connector,
      credentials: () => ({ subscribe: SUB, publish: PUB }),
      keyFields: { [topic]: "login" },
      backoff: { initial: "1 second", max: "8 seconds", idleTimeout: "35 seconds" }
    })
    const seen: Array<Seen> = []
    const follower = yield* Effect.fork(
      client.follow(topic, (state, metadata: Metadata, info) =>
        Effect.sync(() => seen.push({ info, metadata: Object.fromEntries(metadata), state: Object.fromEntries(state) }))
      )
    )
    yield* settle
    return { hub, client, seen, follower, source: t.source }
  })

describe("SyncClient.follow", () => {
  it.scoped("materialises the topic, reports metadata per batch, resumes after a hub restart without a snapshot", () =>
    Effect.gen(function* () {
      const { hub, client, seen } = yield* setup()
      expect(seen.map((s) => s.info.kind)).toEqual(["snapshot"])
      yield* client.publish("presence", [{ type: "update", data: { login: "alice", hostname: "r01p01" } }])
      yield* client.publish("presence", [
        { type: "update", data: { login: "bob", hostname: "r01p02" } },
        { type: "update", data: { login: "alice", hostname: "r01p03" } }
      ])
      yield* settle
      expect(seen.slice(1).map((s) => [s.info.revision, s.metadata])).toEqual([
        [1, { alice: "created" }],
        [2, { bob: "created", alice: "updated" }]
      ])
      expect(seen.at(-1)?.state).toEqual({
        alice: { login: "alice", hostname: "r01p03" },
        bob: { login: "bob", hostname: "r01p02" }
      })

      // Restart: the follower's stream ends; it backs off, reconnects and resumes from 2.
      yield* hub.stop
      yield* client.publish("presence", [{ type: "delete", data: { login: "bob" } }]).pipe(Effect.flip) // hub down
      yield* hub.start()
      yield* client.publish("presence", [{ type: "delete", data: { login: "bob" } }])
      yield* TestClock.adjust("1 second")
      yield* settle
      expect(seen.slice(3).map((s) => [s.info.kind, s.info.revision, s.metadata])).toEqual([["batch", 3, { bob: "deleted" }]])
      expect((yield* Metric.value(followerMetrics("presence").resyncs)).count).toBe(0)
    })
  )

  it.scoped("a new epoch (in-memory topic restarted empty) gives one snapshot diffed against the old state", () =>
    Effect.gen(function* () {
      const { hub, client, seen } = yield* setup("p2")
      yield* client.publish("p2", [{ type: "update", data: { login: "a", v: 1 } }, { type: "update", data: { login: "b", v: 1 } }])
      yield* settle
      const fresh = yield* memoryTopic("p2", 5)
      yield* fresh.source.append([{ type: "update", data: { login: "a", v: 1 } }])
      yield* fresh.source.append([{ type: "update", data: { login: "c", v: 1 } }])
      // Same epoch name would be a lie: give it a new one.
      const renamed = { ...fresh, source: { ...fresh.source, epoch: "p2-epoch-2" } }
      yield* hub.start({ topics: [renamed] })
      yield* TestClock.adjust("1 second")
      yield* settle
      const last = seen.at(-1)!
      expect(last.info).toEqual({ kind: "snapshot", revision: 2, epoch: "p2-epoch-2" })
      expect(last.metadata).toEqual({ b: "deleted", c: "created" })
      expect((yield* Metric.value(followerMetrics("p2").resyncs)).count).toBe(1)
    })
  )

  it.scoped("reconnects forever with jittered exponential backoff while the hub is down", () =>
    Effect.gen(function* () {
      const attempts: Array<number> = []
      const metrics = yield* Layer.build(Metrics.layer)
      const t = yield* memoryTopic("p3", 5)
      const hub = yield* restartableHub({ topics: [t] }, metrics)
      const counting = Effect.zipRight(
        Effect.flatMap(TestClock.currentTimeMillis, (now) => Effect.sync(() => attempts.push(now))),
        hub.connector
      )
      const client = makeSyncClient({
        connect: counting,
        credentials: () => ({ subscribe: SUB }),
        keyFields: { p3: "login" },
        backoff: { initial: "1 second", max: "8 seconds" }
      })
      const applied: Array<number> = []
      const follower = yield* Effect.fork(client.follow("p3", (_s, _m, info) => Effect.sync(() => applied.push(info.revision))).pipe(Effect.withRandom(Random.make(7))))
      yield* settle
      for (let i = 0; i < 60; i++) {
        yield* TestClock.adjust("1 second")
        yield* settle
      }
      const gaps = attempts.slice(1).map((t, i) => t - attempts[i]!)
      // Attempt n waits between half and all of min(8 s, 1 s * 2^n), in whole test-clock seconds here.
      gaps.forEach((gap, i) => {
        const cap = Math.min(8000, 1000 * 2 ** (i + 1))
        expect(gap).toBeGreaterThanOrEqual(cap / 2)
        expect(gap).toBeLessThanOrEqual(cap + 1000)
      })
      expect(gaps.slice(4).every((g) => g >= 4000)).toBe(true)
      expect(attempts.length).toBeGreaterThan(8)
      // Still trying: the hub comes up and the follower gets in within one max backoff.
      const before = attempts.length
      yield* hub.start()
      yield* t.source.append([{ type: "update", data: { login: "x" } }])
      for (let i = 0; i < 9; i++) yield* TestClock.adjust("1 second").pipe(Effect.zipRight(settle))
      expect(attempts.length).toBe(before + 1)
      expect(applied).toEqual([1])
      expect(follower.unsafePoll()).toBeNull()
    })
  )

  it("reconnect delays are equal-jitter: half to all of the capped exponential, initial after frames", () =>
    Effect.gen(function* () {
      const { afterFrames, afterNothing } = reconnectSchedules(defaultBackoff)
      const inputs = Array.from({ length: 12 }, () => undefined)
      const nothing = Chunk.toReadonlyArray(yield* Schedule.run(Schedule.delays(afterNothing), 0, inputs)).map(Duration.toMillis)
      expect(nothing).toHaveLength(12)
      nothing.forEach((d, i) => {
        // the (i+1)-th subscription in a row that delivered nothing
        const cap = Math.min(10_000, 200 * 2 ** (i + 1))
        expect(d).toBeGreaterThanOrEqual(cap / 2)
        expect(d).toBeLessThanOrEqual(cap)
      })
      for (const d of Chunk.toReadonlyArray(yield* Schedule.run(Schedule.delays(afterFrames), 0, inputs)).map(Duration.toMillis)) {
        expect(d).toBeGreaterThanOrEqual(100)
        expect(d).toBeLessThanOrEqual(200)
      }
    }).pipe(Effect.runSync)
  )

  it.scoped("staleness grows while no frame arrives and drops to zero on the next one", () =>
    Effect.gen(function* () {
      const { client } = yield* setup("p4")
      const staleness = followerMetrics("p4").staleness
      yield* TestClock.adjust("9 seconds")
      yield* settle
      expect((yield* Metric.value(staleness)).value).toBe(9)
      yield* TestClock.adjust("1 second") // progress frame at 10 s
      yield* settle
      expect((yield* Metric.value(staleness)).value).toBeLessThanOrEqual(1)
      yield* TestClock.adjust("4 seconds")
      yield* settle
      expect((yield* Metric.value(staleness)).value).toBe(4)
      yield* client.publish("p4", [{ type: "update", data: { login: "z" } }])
      yield* settle
      yield* TestClock.adjust("1 second")
      yield* settle
      expect((yield* Metric.value(staleness)).value).toBe(1)
    })
  )

  it.scoped("a connection that goes silent is dropped after the idle timeout and resumed from the revision held", () =>
    Effect.gen(function* () {
      const sinces: Array<unknown> = []
      const silent: SyncConnector = Effect.succeed({
        subscribe: (request) => {
          sinces.push(request.since)
          return Stream.concat(
            Stream.make<Array<Frame>>({ _tag: "Snapshot", epoch: "e", revision: 7, records: [] }, { _tag: "Progress", revision: 7 }),
            Stream.never
          )
        },
        publish: () => Effect.die("unused")
      })
      const client = makeSyncClient({
        connect: silent,
        credentials: () => ({ subscribe: SUB }),
        keyFields: { p5: "login" },
        backoff: { initial: "1 second", max: "1 second", idleTimeout: "35 seconds" }
      })
      yield* Effect.fork(client.follow("p5", () => Effect.void))
      yield* settle
      yield* TestClock.adjust("34 seconds")
      yield* settle
      expect(sinces).toEqual([undefined])
      yield* TestClock.adjust("2 seconds")
      yield* settle
      yield* TestClock.adjust("1 second")
      yield* settle
      expect(sinces).toEqual([undefined, { epoch: "e", revision: 7 }])
    })
  )
})
