import { SqlClient } from "@effect/sql"
import { expect, layer } from "@effect/vitest"
import { Chunk, Effect, Layer, Option, Queue, Stream } from "effect"
import { makeChangeLogSource } from "../../src/actors/sync/changelog-source.js"
import { makeTopicHub, type StartKind } from "../../src/actors/sync/topic-hub.js"
import type { Frame } from "../../src/protocols/sync.js"
import { ChangeLog } from "../../src/store/change-log.js"
import { PgTest } from "../support/pg.js"
import { testSupervision } from "../support/supervision.js"

// The durable source on a real PostgreSQL: writers append in their own transactions, the hub
// wakes on NOTIFY, retention follows pruning, a rolled-back write is never seen.

const tag = (f: Frame) => (f._tag === "Snapshot" ? `S${f.revision}:${f.records.length}` : `${f._tag[0]}${f.revision}`)
const entry = (mac: string, v: number) => ({ op: "update" as const, key: mac, record: { mac, v } })

layer(Layer.merge(PgTest, testSupervision), { timeout: "60 seconds", excludeTestServices: true })("change-log topic source", (it) => {
  it.scoped("resumes within retention, snapshots beyond it, after pruning", () =>
    Effect.gen(function* () {
      const log = yield* ChangeLog
      const source = makeChangeLogSource(log, { topic: "t1", keyField: "mac" })
      expect(yield* source.floor).toBe(0)
      for (let i = 1; i <= 10; i++) yield* log.append("t1", [entry(`m${i % 3}`, i)])
      expect(yield* log.prune("t1", 3)).toBe(7)
      expect([yield* source.head, yield* source.floor]).toEqual([10, 7])
      const hub = yield* makeTopicHub(source, { bufferSize: 16, pageSize: 2, progressInterval: "1 hour", pollInterval: "1 hour" })
      const start = (revision: number) =>
        Effect.gen(function* () {
          const kinds: Array<StartKind> = []
          const frames = yield* Stream.runCollect(Stream.take(hub.subscribe(Option.some({ epoch: "pg", revision }), (k) => kinds.push(k)), 2))
          return [kinds[0], ...Chunk.toReadonlyArray(frames).map(tag)]
        })
      expect(yield* start(6)).toEqual(["snapshot-retention", "S10:3", "P10"])
      expect(yield* start(7)).toEqual(["resume", "B8", "B9"])
      const snap = yield* source.snapshot
      expect(snap.records.map((r) => r["v"]).sort()).toEqual([10, 8, 9].sort())
    })
  )

  it.scoped("a writer's commit reaches a live subscriber through NOTIFY; a rollback reaches nobody", () =>
    Effect.gen(function* () {
      const log = yield* ChangeLog
      const sql = yield* SqlClient.SqlClient
      const source = makeChangeLogSource(log, { topic: "t2", keyField: "mac" })
      // No periodic re-read: only a notification can wake the pump.
      const hub = yield* makeTopicHub(source, { bufferSize: 16, pageSize: 10, progressInterval: "1 hour", pollInterval: "1 hour" })
      const frames = yield* Queue.unbounded<string>()
      yield* Effect.forkScoped(Stream.runForEach(hub.subscribe(Option.none()), (f) => Queue.offer(frames, tag(f))))
      expect([yield* Queue.take(frames), yield* Queue.take(frames)]).toEqual(["S0:0", "P0"])
      // The hub listens from a fiber of its own, which may not be listening yet (a commit before
      // that is seen only at the next one): commit probes until one wakes it, then take them all.
      let probes = 0
      let last: string | undefined
      while (last === undefined) {
        yield* log.append("t2", [entry("probe", ++probes)])
        last = Option.getOrUndefined(yield* Effect.option(Effect.timeout(Queue.take(frames), "200 millis")))
      }
      while (last !== `B${probes}`) last = yield* Queue.take(frames)

      const rolledBack = yield* Effect.either(
        sql.withTransaction(Effect.zipRight(log.append("t2", [entry("x", 1)]), Effect.fail("abort" as const)))
      )
      expect(rolledBack._tag).toBe("Left")
      yield* sql.withTransaction(log.append("t2", [entry("a", 1), entry("b", 1)]))
      // The next frame is the commit (the rollback took no revision and woke nobody).
      expect(yield* Queue.take(frames)).toBe(`B${probes + 1}`)
      expect((yield* source.snapshot).records.map((r) => r["mac"]).sort()).toEqual(["a", "b", "probe"])
    })
  )
})
