import { SqlClient } from "@effect/sql"
import { describe, expect, layer } from "@effect/vitest"
import { Chunk, Context, Effect, Option, Queue, Schedule, Stream, TestServices } from "effect"
import { ChangeLog, CHANGES_CHANNEL, type ChangeNotice } from "../../src/store/change-log.js"
import { PgTest } from "../support/pg.js"

const rec = (n: number) => ({ n, name: `m${n}` })

class Boom {
  readonly _tag = "Boom"
}

// Starts LISTEN and returns the queue of notices once a probe notice proves it is active
// (the LISTEN runs asynchronously after the stream starts). A probe sent before the LISTEN is
// lost, so probes are repeated; a late one from an earlier attempt counts as well, so each
// attempt waits only briefly, and only the whole wait is bounded (a loaded box is slow).
const listening = Effect.gen(function* () {
  const log = yield* ChangeLog
  const sql = yield* SqlClient.SqlClient
  const queue = yield* Queue.unbounded<ChangeNotice>()
  yield* Effect.forkScoped(Stream.runForEach(log.listen, (n) => Queue.offer(queue, n)))
  const probeBack = Effect.flatMap(Queue.take(queue), (n) => (n.topic === "probe" ? Effect.void : Effect.fail("not a probe")))
  yield* sql`SELECT pg_notify(${CHANGES_CHANNEL}, 'probe:0')`.pipe(
    Effect.zipRight(Effect.timeout(probeBack, "200 millis")),
    Effect.retry(Schedule.forever),
    Effect.timeoutFail({ duration: "30 seconds", onTimeout: () => new Error("LISTEN never took effect: no probe notice came back in 30 s") }),
    // Waiting for LISTEN to be in place is real time, not the test's clock.
    TestServices.provideLive
  )
  return queue
})

/** Sends a barrier notice and returns every notice received before it. */
const drainUntilBarrier = (queue: Queue.Queue<ChangeNotice>, id: number) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`SELECT pg_notify(${CHANGES_CHANNEL}, ${`barrier:${id}`})`
    const seen: Array<ChangeNotice> = []
    while (true) {
      const n = yield* Queue.take(queue)
      if (n.topic === "barrier" && n.revision === id) return seen
      if (n.topic !== "probe") seen.push(n)
    }
  })

// Runs on a pooled connection even inside `withTransaction` (the barrier must not wait for commit).
const outsideTransaction = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.mapInputContext(self, (ctx: Context.Context<R>) => Context.omit(SqlClient.TransactionConnection)(ctx) as Context.Context<R>)

describe("ChangeLog", () => {
  layer(PgTest)((it) => {
    it.effect("concurrent appends get distinct consecutive revisions, read back in order", () =>
      Effect.gen(function* () {
        const log = yield* ChangeLog
        const revisions = yield* Effect.forEach(
          Array.from({ length: 25 }, (_, i) => i),
          (i) => log.append("conc", [{ op: "update", key: `k${i}`, record: rec(i) }]),
          { concurrency: "unbounded" }
        )
        expect([...revisions].sort((a, b) => a - b)).toEqual(Array.from({ length: 25 }, (_, i) => i + 1))
        expect(yield* log.head("conc")).toBe(25)
        const batches = yield* log.readSince("conc", 10, 100)
        expect(batches.map((b) => b.revision)).toEqual(Array.from({ length: 15 }, (_, i) => i + 11))
        expect(batches.every((b) => b.entries.length === 1)).toBe(true)
        const limited = yield* log.readSince("conc", 0, 3)
        expect(limited.map((b) => b.revision)).toEqual([1, 2, 3])
        // Another topic counts on its own.
        expect(yield* log.append("other", [{ op: "update", key: "a", record: {} }])).toBe(1)
      })
    )

    it.effect("a batch keeps its entry order, and the snapshot holds the last state per key", () =>
      Effect.gen(function* () {
        const log = yield* ChangeLog
        yield* log.append("snap", [
          { op: "update", key: "aa", record: { id: 1, mac: "aa" } },
          { op: "update", key: "bb", record: { id: 2, mac: "bb" } }
        ])
        // A MAC change: delete of the old key and update of the new key in one revision.
        const rev = yield* log.append("snap", [
          { op: "delete", key: "aa", record: { id: 1, mac: "aa" } },
          { op: "update", key: "cc", record: { id: 1, mac: "cc" } }
        ])
        const [batch] = yield* log.readSince("snap", rev - 1, 1)
        expect(batch).toEqual({
          revision: rev,
          entries: [
            { op: "delete", key: "aa", record: { id: 1, mac: "aa" } },
            { op: "update", key: "cc", record: { id: 1, mac: "cc" } }
          ]
        })
        expect(yield* log.snapshot("snap")).toEqual({
          revision: rev,
          records: [
            { key: "bb", record: { id: 2, mac: "bb" } },
            { key: "cc", record: { id: 1, mac: "cc" } }
          ]
        })
        expect(yield* log.snapshot("never-written")).toEqual({ revision: 0, records: [] })
      })
    )

    it.effect("prune keeps the newest revisions and moves oldestRetained", () =>
      Effect.gen(function* () {
        const log = yield* ChangeLog
        expect(yield* log.oldestRetained("prune")).toEqual(Option.none())
        for (let i = 0; i < 10; i++) yield* log.append("prune", [{ op: "update", key: "k", record: rec(i) }])
        expect(yield* log.oldestRetained("prune")).toEqual(Option.some(1))
        expect(yield* log.prune("prune", 4)).toBe(6)
        expect(yield* log.oldestRetained("prune")).toEqual(Option.some(7))
        expect((yield* log.readSince("prune", 0, 100)).map((b) => b.revision)).toEqual([7, 8, 9, 10])
        expect(yield* log.prune("prune", 4)).toBe(0)
        // The snapshot is unaffected by pruning.
        expect(yield* log.snapshot("prune")).toEqual({ revision: 10, records: [{ key: "k", record: rec(9) }] })
      })
    )

    it.scoped("a rolled-back transaction leaves no revision, no row and no notification", () =>
      Effect.gen(function* () {
        const log = yield* ChangeLog
        const sql = yield* SqlClient.SqlClient
        const queue = yield* listening
        const failed = yield* sql
          .withTransaction(
            Effect.zipRight(
              log.append("rb", [{ op: "update", key: "x", record: rec(1) }]),
              Effect.fail(new Boom())
            )
          )
          .pipe(Effect.flip)
        expect(failed).toBeInstanceOf(Boom)
        expect(yield* log.head("rb")).toBe(0)
        expect(yield* sql`SELECT * FROM change_log WHERE topic = 'rb'`).toEqual([])
        expect(yield* sql`SELECT * FROM sync_state WHERE topic = 'rb'`).toEqual([])
        expect(yield* drainUntilBarrier(queue, 1)).toEqual([])
        // The next committed write takes revision 1: no gap was left.
        expect(yield* log.append("rb", [{ op: "update", key: "x", record: rec(2) }])).toBe(1)
        expect(yield* drainUntilBarrier(queue, 2)).toEqual([{ topic: "rb", revision: 1 }])
      })
    )

    it.scoped("listeners hear of a revision only once it is committed", () =>
      Effect.gen(function* () {
        const log = yield* ChangeLog
        const sql = yield* SqlClient.SqlClient
        const queue = yield* listening
        const inside = yield* sql.withTransaction(
          Effect.gen(function* () {
            const revision = yield* log.append("commit", [{ op: "update", key: "k", record: rec(1) }])
            // A barrier sent from another connection while this transaction is open arrives
            // first: nothing about `revision` was delivered before it.
            const early = yield* outsideTransaction(drainUntilBarrier(queue, 3))
            return { revision, early }
          })
        )
        expect(inside.early).toEqual([])
        expect(yield* drainUntilBarrier(queue, 4)).toEqual([{ topic: "commit", revision: inside.revision }])
        expect(Chunk.toReadonlyArray(yield* Queue.takeAll(queue))).toEqual([])
      })
    )
  })
})
