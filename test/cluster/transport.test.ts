import { describe, expect, it } from "@effect/vitest"
import type { Rpc } from "@effect/rpc"
import { SqlClient } from "@effect/sql"
import { Clock, Context, Deferred, Effect, Either, Exit, Layer, Redacted, Stream } from "effect"
import { Executor } from "../../src/actors/worker/executor.js"
import { ClusterHandlers } from "../../src/actors/cluster/handlers.js"
import { ClusterMaster } from "../../src/actors/cluster/master.js"
import { runWorkerClient } from "../../src/actors/cluster/worker-client.js"
import { CLUSTER_SERVICE, ClusterRpcs } from "../../src/protocols/cluster.js"
import { ExecutorFailure, type MatchTask } from "../../src/protocols/cluster-task.js"
import { Metrics } from "../../src/runtime/metrics.js"
import { AUTH_HEADER, signedMessage, TimeAuth, timeAuthServer } from "../../src/runtime/rpc-auth.js"
import { makeRpcTcpClient, RpcTcpServer, rpcTcpServerLayer } from "../../src/runtime/rpc-tcp.js"
import { generate } from "../../src/runtime/timeauth.js"
import { PgTest } from "../support/pg.js"
import { metricValue, seedChampion, seedMatch, startMaster } from "./support.js"

// The workers' port for real (TCP + msgpack on 127.0.13.1, time-auth with the cluster secret):
// the worker client with a fake executor runs tasks end to end; a forged token is refused and
// records nothing; a replayed token is refused; an executor failure is retried elsewhere.

const secret = Redacted.make("cluster-test-secret")

const serve = Effect.gen(function* () {
  const started = yield* startMaster()
  const ctx = yield* Layer.build(
    rpcTcpServerLayer({ service: CLUSTER_SERVICE, group: ClusterRpcs, handlers: ClusterHandlers, secret, listen: { host: "127.0.13.1", port: 0 } }).pipe(
      Layer.provide(Layer.succeed(ClusterMaster, started.master)),
      Layer.provide(Layer.succeed(Metrics, started.metrics))
    )
  )
  return { ...started, address: Context.get(ctx, RpcTcpServer).address }
})

const fakeExecutor = (onMatch: (task: MatchTask) => Effect.Effect<void, ExecutorFailure>) =>
  Executor.of({
    compile: (task) => Effect.succeed({ taskId: task.taskId, attempt: task.attempt, championId: task.championId, status: "ready" as const, compiled: task.sources, log: "ok", durationMs: 1 }),
    runMatch: (task) =>
      Effect.as(onMatch(task), {
        taskId: task.taskId,
        attempt: task.attempt,
        matchId: task.matchId,
        status: "done" as const,
        players: task.players.map((p, i) => ({ playerId: p.playerId, championId: p.championId, score: i, nbTimeout: 0, log: "" })),
        serverStdout: "",
        serverStderr: "",
        durationMs: 1
      })
  })

const waitFor = <A>(what: string, probe: Effect.Effect<A, unknown, SqlClient.SqlClient>, ok: (a: A) => boolean) =>
  Effect.gen(function* () {
    // polling the database that real processes write, bounded
    for (let i = 0; i < 300; i++) {
      const a = yield* probe
      if (ok(a)) return a
      yield* Effect.promise(() => new Promise((r) => setTimeout(r, 50)))
    }
    return yield* Effect.dieMessage(`never: ${what}`)
  })

describe("cluster over the TCP transport", () => {
  it.layer(PgTest, { timeout: 60_000 })((it) => {
    it.scoped("a worker client compiles and plays through its executor; an executor failure is retried on another worker", () =>
      Effect.gen(function* () {
        const { address, files, master, metrics, sql } = yield* serve
        const failedOnce = yield* Deferred.make<void>()
        const worker = (name: string, fail: boolean) =>
          Effect.forkScoped(
            runWorkerClient({ master: address, secret, worker: name, slots: 20, cost: { compile: 1, match: 5 } }).pipe(
              Effect.provideService(
                Executor,
                fakeExecutor((task) =>
                  fail ? Effect.zipRight(Deferred.succeed(failedOnce, undefined), Effect.fail(new ExecutorFailure({ taskId: task.taskId, attempt: task.attempt, message: "no space left" }))) : Effect.void
                )
              ),
              Effect.provideService(Metrics, metrics)
            )
          )
        yield* worker("broken", true)
        const a = yield* seedChampion(files, "alice", "bot")
        const b = yield* seedChampion(files, "bob", "bot")
        yield* master.wake
        yield* waitFor("both compiled", sql<{ status: string }>`SELECT status FROM champion ORDER BY id`, (r) => r.every((c) => c.status === "ready"))
        const m = yield* seedMatch([a, b])
        yield* master.wake
        yield* Deferred.await(failedOnce)
        yield* worker("good", false)
        const [row] = yield* waitFor("match done", sql<{ status: string; attempt: number; last_worker: string }>`SELECT status, attempt, last_worker FROM match WHERE id = ${m}`, (r) => r[0]?.status === "done")
        expect(row!.last_worker).toBe("good")
        expect(row!.attempt).toBeGreaterThanOrEqual(2)
        expect(yield* metricValue(metrics, "masternode_task_resubmit_total")).toBeGreaterThanOrEqual(1)
        expect(yield* sql`SELECT score FROM match_player WHERE match_id = ${m} ORDER BY id`).toEqual([{ score: 0 }, { score: 1 }])
      }).pipe(Effect.withClock(Clock.make())) // real processes' time: heartbeats and backoff run
    )

    it.scoped("a worker with a forged secret is refused (Unauthorized) and nothing is recorded", () =>
      Effect.gen(function* () {
        const { address, files, master, sql } = yield* serve
        yield* seedChampion(files, "alice", "bot")
        const client = yield* makeRpcTcpClient(ClusterRpcs, { ...address, secret: Redacted.make("not-the-secret") })
        const joined = yield* Effect.either(Stream.runCollect(client.join({ worker: "evil", slots: 20 })))
        expect(Either.isLeft(joined) && joined.left._tag).toBe("Unauthorized")
        expect(Either.isLeft(joined) && joined.left.message).toBe("cluster: join: unauthorized (bad_signature)")
        const hb = yield* Effect.either(client.heartbeat({ worker: "evil", session: "x", running: [] }))
        expect(Either.isLeft(hb) && hb.left._tag).toBe("Unauthorized")
        expect((yield* master.status).workers).toEqual([])
        expect(yield* sql`SELECT status, attempt FROM champion`).toEqual([{ status: "new", attempt: 0 }])
      }).pipe(Effect.withClock(Clock.make()))
    )

    it.effect("a replayed worker token is refused", () =>
      Effect.gen(function* () {
        const auth = yield* Effect.map(Layer.build(timeAuthServer(CLUSTER_SERVICE, secret)), Context.get(TimeAuth)).pipe(Effect.provide(Metrics.layer))
        const rpc = ClusterRpcs.requests.get("heartbeat")! as unknown as Rpc.AnyWithProps
        const payload = { worker: "w1", session: "s", running: [] }
        const token = yield* generate(secret, Either.getOrThrow(signedMessage(rpc, payload)))
        const call = auth({ rpc, payload, headers: { [AUTH_HEADER]: token } as never, clientId: 0 })
        expect(Exit.isSuccess(yield* Effect.exit(call))).toBe(true)
        const again = yield* Effect.either(call)
        expect(Either.isLeft(again) && again.left.reason).toBe("replayed")
      }).pipe(Effect.scoped)
    )
  })
})


