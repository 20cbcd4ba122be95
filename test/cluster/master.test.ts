import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, TestClock } from "effect"
import type { Order } from "../../src/protocols/cluster.js"
import type { MatchResult } from "../../src/protocols/cluster-task.js"
import { PgTest } from "../support/pg.js"
import { joinWorker, metricValue, seedChampion, seedMatch, startMaster } from "./support.js"

// The master in process over a real database, workers joined in process (their `join` streams
// read directly), time on TestClock: dispatch, exactly-once results, lost workers, heartbeats,
// lease expiry and the tries limit.

const compiledOf = (order: Order) => {
  if (order._tag !== "Compile") throw new Error(`expected Compile, got ${order._tag}`)
  return order.task
}
const matchOf = (order: Order) => {
  if (order._tag !== "Match") throw new Error(`expected Match, got ${order._tag}`)
  return order.task
}
const bytes = (s: string) => new TextEncoder().encode(s)

const ready = (championId: number, attempt: number) => ({
  taskId: championId,
  attempt,
  championId,
  status: "ready" as const,
  compiled: bytes(`compiled ${championId}`),
  log: "Success!",
  durationMs: 5
})

describe("cluster master", () => {
  it.layer(PgTest, { timeout: 60_000 })((it) => {
    it.scoped("compilations then a match: least loaded first, each result recorded once, late and unknown results refused", () =>
      Effect.gen(function* () {
        const { files, master, metrics, sql } = yield* startMaster()
        const w1 = yield* joinWorker(master, "w1")
        const w2 = yield* joinWorker(master, "w2")
        const a = yield* seedChampion(files, "alice", "bot")
        const b = yield* seedChampion(files, "bob", "bot")
        yield* master.wake // as the 1 s poll would (a TestClock adjust could land before the loop sleeps)
        // two compilations, one slot each: one per worker (the second goes to the less loaded)
        const t1 = compiledOf(yield* w1.next)
        const t2 = compiledOf(yield* w2.next)
        expect(new Set([t1.championId, t2.championId])).toEqual(new Set([a, b]))
        expect(new TextDecoder().decode(t1.sources)).toMatch(/^(alice|bob)\/bot$/)
        expect(t1.attempt).toBe(1)
        yield* master.compiled("w1", w1.session, ready(t1.championId, 1))
        yield* master.compiled("w2", w2.session, ready(t2.championId, 1))
        const champs = yield* sql<{ status: string; compiled_digest: string }>`SELECT status, compiled_digest FROM champion ORDER BY id`
        expect(champs.map((c) => c.status)).toEqual(["ready", "ready"])
        expect(new TextDecoder().decode(yield* files.get(champs[0]!.compiled_digest))).toBe(`compiled ${a}`)

        const m = yield* seedMatch([a, b])
        yield* master.wake
        // either worker may get it (both idle); read whichever got it
        const order = yield* Effect.raceFirst(Effect.map(w1.next, (o) => ["w1", o] as const), Effect.map(w2.next, (o) => ["w2", o] as const))
        const [host, o] = order
        const session = host === "w1" ? w1.session : w2.session
        const task = matchOf(o)
        expect(task.matchId).toBe(m)
        expect(task.players.map((p) => p.championId)).toEqual([a, b])
        expect(new TextDecoder().decode(task.players[1]!.compiled)).toBe(`compiled ${b}`)
        const result: MatchResult = {
          taskId: m,
          attempt: task.attempt,
          matchId: m,
          status: "done",
          players: task.players.map((p, i) => ({ playerId: p.playerId, championId: p.championId, score: 10 * (i + 1), nbTimeout: i, log: `log ${i}` })),
          serverStdout: "---\nscores",
          serverStderr: "",
          dump: bytes("dump"),
          replay: bytes("replay"),
          durationMs: 10
        }
        yield* master.played(host, session, result)
        const [row] = yield* sql<{ status: string; dump_digest: string; replay_digest: string; stats_digest: string | null }>`SELECT * FROM match WHERE id = ${m}`
        expect(row).toMatchObject({ status: "done", stats_digest: null })
        expect(new TextDecoder().decode(yield* files.get(row!.replay_digest))).toBe("replay")
        const scores = yield* sql<{ score: number; nb_timeout: number }>`SELECT score, nb_timeout FROM match_player WHERE match_id = ${m} ORDER BY id`
        expect(scores).toEqual([{ score: 10, nb_timeout: 0 }, { score: 20, nb_timeout: 1 }])

        // the same result again: an old attempt now, refused, nothing changed
        const again = yield* Effect.either(master.played(host, session, { ...result, players: result.players.map((p) => ({ ...p, score: 99 })) }))
        expect(Either.isLeft(again) && again.left._tag).toBe("StaleAttempt")
        expect(yield* sql`SELECT score FROM match_player WHERE match_id = ${m} ORDER BY id`).toEqual([{ score: 10 }, { score: 20 }])
        expect(yield* metricValue(metrics, "prolo_cluster_late_results_dropped_total")).toBe(1)
        // unknown task, unknown session
        const unknown = yield* Effect.either(master.compiled("w1", w1.session, ready(9999, 1)))
        expect(Either.isLeft(unknown) && unknown.left._tag).toBe("UnknownTask")
        const forged = yield* Effect.either(master.compiled("w1", "not-a-session", ready(a, 1)))
        expect(Either.isLeft(forged) && forged.left._tag).toBe("UnknownSession")
        expect(yield* metricValue(metrics, "masternode_task_dispatch_total")).toBe(3)
      })
    )

    it.scoped("a worker whose connection drops loses its task to another worker at once; its old attempt's result is dropped", () =>
      Effect.gen(function* () {
        const { files, master, metrics, sql } = yield* startMaster()
        const c = yield* seedChampion(files, "alice", "bot")
        const w1 = yield* joinWorker(master, "w1")
        const first = compiledOf(yield* w1.next)
        const w2 = yield* joinWorker(master, "w2")
        yield* w1.drop
        const second = compiledOf(yield* w2.next)
        expect([first.attempt, second.attempt]).toEqual([1, 2])
        expect(yield* metricValue(metrics, "prolo_cluster_redispatches_total")).toBe(1)
        expect((yield* master.status).worstRedispatchMillis).toBe(0) // TestClock did not move: "at once"
        // w1 comes back and sends its old attempt's result: refused, nothing recorded
        const back = yield* joinWorker(master, "w1")
        const late = yield* Effect.either(master.compiled("w1", back.session, ready(c, 1)))
        expect(Either.isLeft(late) && late.left._tag).toBe("StaleAttempt")
        expect(yield* sql`SELECT status, attempt, lease_worker FROM champion`).toEqual([{ status: "pending", attempt: 2, lease_worker: "w2" }])
        yield* master.compiled("w2", w2.session, ready(c, 2))
        expect(yield* sql`SELECT status FROM champion`).toEqual([{ status: "ready" }])
      })
    )

    it.scoped("no heartbeat for 12 s drops a worker (TestClock); a timed-out attempt goes elsewhere, and fails after max tries", () =>
      Effect.gen(function* () {
        const { files, master, metrics, sql } = yield* startMaster({ maxTries: 2, timeoutMillis: { compile: 20_000, match: 450_000 } })
        const c = yield* seedChampion(files, "alice", "bot")
        const w1 = yield* joinWorker(master, "w1")
        const first = compiledOf(yield* w1.next)
        const w2 = yield* joinWorker(master, "w2")
        // w2 heartbeats, w1 goes silent: at 12 s w1 is dropped and its task goes to w2
        for (let t = 0; t < 3; t++) {
          yield* TestClock.adjust("5 seconds")
          yield* master.heartbeat("w2", w2.session)
        }
        const second = compiledOf(yield* w2.next)
        expect([first.attempt, second.attempt]).toEqual([1, 2])
        expect(yield* metricValue(metrics, "masternode_worker_timeout_total")).toBe(1)
        // a heartbeat naming an attempt the master does not hold there: cancelled on the worker
        yield* master.heartbeat("w2", w2.session, [{ kind: "compile", id: c, attempt: 1 }])
        expect(yield* w2.next).toEqual({ _tag: "Cancel", task: { kind: "compile", id: c, attempt: 1 } })
        const gone = yield* Effect.either(master.heartbeat("w1", w1.session))
        expect(Either.isLeft(gone) && gone.left._tag).toBe("UnknownSession")
        // w2 keeps heartbeating but never answers: its lease expires at 20 s; tries exhausted -> failed
        for (let t = 0; t < 5; t++) {
          yield* TestClock.adjust("5 seconds")
          yield* master.heartbeat("w2", w2.session)
        }
        const cancel = yield* w2.next
        expect(cancel).toEqual({ _tag: "Cancel", task: { kind: "compile", id: c, attempt: 2 } })
        const [row] = yield* sql<{ status: string; failure: string }>`SELECT status, failure FROM champion`
        expect(row!.status).toBe("failed")
        expect(row!.failure).toMatch(/timed out on w2 \(after 2 tries\)/)
        expect(yield* metricValue(metrics, "prolo_cluster_lease_expiries_total")).toBe(1)
        // an operator puts it back in the queue with a fresh budget; attempts go on growing
        expect(yield* master.requeue("compile", c)).toEqual({ previous: "failed" })
        expect(compiledOf(yield* w2.next).attempt).toBe(3)
        expect(yield* sql`SELECT status, tries_from FROM champion`).toEqual([{ status: "pending", tries_from: 2 }])
        const notFailed = yield* Effect.either(master.requeue("compile", c))
        expect(Either.isLeft(notFailed) && notFailed.left._tag).toBe("NotRequeueable")
        const missing = yield* Effect.either(master.requeue("match", 4242))
        expect(Either.isLeft(missing) && missing.left._tag).toBe("UnknownTask")
      })
    )

    it.scoped("matches by priority then id; a match never goes to a worker without 5 free slots; a bad result is failed", () =>
      Effect.gen(function* () {
        const { files, master, metrics, sql } = yield* startMaster()
        const a = yield* seedChampion(files, "alice", "bot")
        yield* sql`UPDATE champion SET status = 'ready', compiled_digest = ${yield* files.put(bytes("c"))}`
        const low = yield* seedMatch([a, a], 300)
        const high = yield* seedMatch([a, a], 1000)
        const mid = yield* seedMatch([a, a])
        const w = yield* joinWorker(master, "small", 10) // room for two matches
        const got = [matchOf(yield* w.next).matchId, matchOf(yield* w.next).matchId]
        expect(got).toEqual([high, mid])
        expect((yield* master.status).workers).toEqual([expect.objectContaining({ worker: "small", slots: 10, free: 0, tasks: 2 })])
        expect((yield* master.status).queue).toEqual({ compile: 0, match: 1 })
        const task = yield* sql<{ id: number }>`SELECT id FROM match_player WHERE match_id = ${high} ORDER BY id`
        // scores for a player that is not in the match: recorded as failed, no score written
        yield* master.played("small", w.session, {
          taskId: high,
          attempt: 1,
          matchId: high,
          status: "done",
          players: [{ playerId: task[0]!.id, championId: a, score: 1, nbTimeout: 0, log: "" }, { playerId: 77777, championId: a, score: 1, nbTimeout: 0, log: "" }],
          serverStdout: "",
          serverStderr: "",
          durationMs: 1
        })
        expect(yield* sql`SELECT status FROM match WHERE id = ${high}`).toEqual([{ status: "failed" }])
        expect(yield* sql`SELECT score FROM match_player WHERE match_id = ${high}`).toEqual([{ score: null }, { score: null }])
        expect(yield* metricValue(metrics, "masternode_bad_result_total")).toBe(1)
        // the freed slots take the last match
        expect(matchOf(yield* w.next).matchId).toBe(low)
      })
    )
  })
})
