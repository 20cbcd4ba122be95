import { Cause, Clock, Deferred, Duration, Effect, FiberMap, type Redacted, type Scope, Stream } from "effect"
import { ClusterRpcs, type Order, type TaskAttempt } from "../../protocols/cluster.js"
import type { CompileResult, MatchResult } from "../../protocols/cluster-task.js"
import type { Metrics } from "../../runtime/metrics.js"
import { makeRpcTcpClient } from "../../runtime/rpc-tcp.js"
import { Executor } from "../worker/executor.js"
import { workerMetrics } from "./metrics.js"

// The worker's side of the cluster (role worker): one connection to the master, over which it
// joins with its slots, receives orders, heartbeats and sends results. Each task runs through
// the `Executor` (the sandbox) in a fiber of its own; a `Cancel` order interrupts it.
//
// When the connection ends (master gone, network cut, session dropped by the master) every
// running task is interrupted: the master has already given those tasks to other workers, so
// finishing them would only produce late results, and stopping them at once is what keeps a
// task from running on two workers at the same time. Then the worker joins again, with
// exponential backoff (250 ms doubling to 2 s, reset once a join is welcomed).

export interface WorkerClientOptions {
  readonly master: { readonly host: string; readonly port: number }
  readonly secret: Redacted.Redacted<string>
  readonly worker: string
  readonly slots: number
  readonly cost: { readonly compile: number; readonly match: number }
  /** Bound on (re)opening the connection. Default 5 s. */
  readonly connectTimeout?: Duration.DurationInput
}

const keyOf = (t: TaskAttempt) => `${t.kind}:${t.id}:${t.attempt}`

const describe = (cause: Cause.Cause<unknown>): string => {
  const failure = Cause.squash(cause)
  return failure instanceof Error ? failure.message : typeof failure === "object" && failure !== null && "message" in failure ? String(failure.message) : String(failure)
}

/** One connection's life: join, serve orders until the stream ends or fails. `quiet`: the master was already unreachable (log at debug). */
const session = (options: WorkerClientOptions, welcomed: () => void, quiet: boolean) =>
  Effect.gen(function* () {
    const executor = yield* Executor
    const metrics = yield* workerMetrics
    const client = yield* makeRpcTcpClient(ClusterRpcs, {
      host: options.master.host,
      port: options.master.port,
      secret: options.secret,
      ...(options.connectTimeout === undefined ? {} : { connectTimeout: options.connectTimeout })
    })
    const running = yield* FiberMap.make<string>()
    const scope = yield* Effect.scope
    const held = new Map<string, TaskAttempt & { readonly cost: number }>()
    const lost = yield* Deferred.make<never, string>()
    let sessionId = ""
    const worker = options.worker

    const freeSlots = () => {
      let used = 0
      for (const t of held.values()) used += t.cost
      metrics.slots.set(options.slots - used)
    }
    freeSlots()

    const report = (what: string) => (e: { readonly message: string }) => Effect.logWarning(`cluster worker ${worker}: ${what}: ${e.message}`)

    const kills = (reasons: ReadonlyArray<string | undefined>) =>
      Effect.sync(() => {
        for (const r of reasons) if (r !== undefined) metrics.sandboxKills.inc({ reason: r })
      })

    const run = <R extends CompileResult | MatchResult>(
      t: TaskAttempt,
      cost: number,
      execute: Effect.Effect<R, { readonly message: string }>,
      send: (r: R) => Effect.Effect<void, { readonly message: string }>,
      observe: (r: R, seconds: number) => Effect.Effect<void>
    ) => {
      const key = keyOf(t)
      held.set(key, { ...t, cost })
      freeSlots()
      const body = Effect.gen(function* () {
        const start = yield* Clock.currentTimeMillis
        const outcome = yield* Effect.either(execute)
        if (outcome._tag === "Left") {
          yield* Effect.logWarning(`cluster worker ${worker}: ${t.kind} ${t.id} attempt ${t.attempt}: executor failed: ${outcome.left.message}`)
          return yield* client.failed({ worker, session: sessionId, task: t, message: outcome.left.message }).pipe(Effect.catchAll(report(`reporting the failure of ${key}`)))
        }
        yield* observe(outcome.right, ((yield* Clock.currentTimeMillis) - start) / 1000)
        yield* send(outcome.right).pipe(Effect.catchAll(report(`result of ${key}`)))
      }).pipe(
        Effect.ensuring(
          Effect.sync(() => {
            held.delete(key)
            freeSlots()
          })
        )
      )
      return FiberMap.run(running, key, body)
    }

    const handle = (order: Order): Effect.Effect<void> => {
      switch (order._tag) {
        case "Welcome": {
          sessionId = order.session
          welcomed()
          return Effect.zipRight(
            Effect.logInfo(`cluster worker ${worker}: joined the master at ${options.master.host}:${options.master.port} with ${options.slots} slots`),
            Effect.asVoid(
              Effect.forkIn(
                Effect.forever(
                  Effect.zipRight(
                    Effect.sleep(Duration.millis(order.heartbeatMillis)),
                    // Unanswered within two periods: the master (or the path to it) is gone even
                    // if no FIN came; stop the tasks now rather than run them beside their
                    // redispatched copies.
                    client
                      .heartbeat({ worker, session: sessionId, running: [...held.values()].map(({ attempt, id, kind }) => ({ kind, id, attempt })) })
                      .pipe(
                        Effect.timeoutFail({ duration: Duration.millis(2 * order.heartbeatMillis), onTimeout: () => ({ message: "no answer within two heartbeat periods" }) }),
                        Effect.catchAll((e) => Deferred.fail(lost, `heartbeat failed: ${e.message}`))
                      )
                  )
                ),
                scope
              )
            )
          )
        }
        case "Compile": {
          const task = order.task
          return Effect.asVoid(
            run(
              { kind: "compile", id: task.championId, attempt: task.attempt },
              options.cost.compile,
              executor.compile(task),
              (result) => Effect.asVoid(client.compiled({ worker, session: sessionId, result })),
              (r, s) => Effect.zipRight(Effect.sync(() => metrics.compile.observe(s)), kills([r.kill]))
            )
          )
        }
        case "Match": {
          const task = order.task
          return Effect.asVoid(
            run(
              { kind: "match", id: task.matchId, attempt: task.attempt },
              options.cost.match,
              executor.runMatch(task),
              (result) => Effect.asVoid(client.played({ worker, session: sessionId, result })),
              (r, s) => Effect.zipRight(Effect.sync(() => metrics.match.observe(s)), kills([r.kill, ...r.players.map((p) => p.kill)]))
            )
          )
        }
        case "Cancel":
          return Effect.zipRight(
            Effect.logWarning(`cluster worker ${worker}: ${order.task.kind} ${order.task.id} attempt ${order.task.attempt} cancelled by the master (lease expired, or not its task there)`),
            FiberMap.remove(running, keyOf(order.task))
          )
      }
    }

    const served = client.join({ worker, slots: options.slots }).pipe(Stream.runForEach(handle))
    yield* Effect.raceFirst(
      Effect.matchCause(served, {
        onSuccess: () => "the master ended the session",
        onFailure: (cause) => `connection lost: ${describe(cause)}`
      }),
      Effect.catchAll(Deferred.await(lost), (reason) => Effect.succeed(reason))
    ).pipe(
      Effect.flatMap((reason) => {
        const line = `cluster worker ${worker}: ${reason}; ${held.size} running task(s) stopped, joining again`
        return quiet && sessionId === "" ? Effect.logDebug(line) : Effect.logWarning(line)
      })
    )
  })

/** Runs the worker forever: join, serve, and join again after any end, with backoff. */
export const runWorkerClient = (options: WorkerClientOptions): Effect.Effect<never, never, Executor | Metrics | Scope.Scope> =>
  Effect.gen(function* () {
    let failures = 0
    while (true) {
      yield* Effect.scoped(session(options, () => (failures = 0), failures > 0)).pipe(
        Effect.catchAllCause((cause) => Effect.logWarning(`cluster worker ${options.worker}: ${describe(cause)}`))
      )
      const delay = Math.min(2000, 250 * 2 ** failures)
      failures = Math.min(failures + 1, 10)
      yield* Effect.sleep(Duration.millis(delay))
    }
  })
