import { Clock, Context, Duration, Effect, FiberSet, Layer, Mailbox, Option, Queue, Schedule, type Scope, Stream } from "effect"
import {
  ClusterUnavailable,
  NotRequeueable,
  type ClusterStatus,
  type Order,
  type StaleAttempt,
  type TaskAttempt,
  type UnknownSession,
  UnknownTask
} from "../../protocols/cluster.js"
import type { CompileResult, MatchResult } from "../../protocols/cluster-task.js"
import * as ActorRegistry from "../../runtime/actor-registry.js"
import type { AskError } from "../../runtime/actor.js"
import type { ActorTree } from "../../runtime/actor-tree.js"
import type { Metrics } from "../../runtime/metrics.js"
import { supervisedLoop } from "../../runtime/supervised-loop.js"
import type { ActorSupervisor } from "../../runtime/supervisor.js"
import { FileStore } from "../concours/files.js"
import type { MasterSettings } from "./config.js"
import { masterMetrics } from "./metrics.js"
import { type Queued, TaskQueue, type TaskKind, taskKey } from "./queue.js"
import {
  Assign,
  CheckHeartbeat,
  Compiled,
  Connect,
  Disconnect,
  ExecutorFailed,
  Expired,
  Heartbeat,
  type MasterDeps,
  Played,
  workerBehaviour,
  type WorkerView
} from "./worker-actor.js"

// The master of the match cluster (role web): the WorkerActors (one per connected worker), the
// matchmaker that hands queued tasks to them, and the janitor that drops silent workers and
// expires leases. Both loops read `Clock`; the dispatcher also runs at once whenever slots free
// up, a worker joins or tasks are taken back (`wake`), so a lost worker's tasks are running
// elsewhere within one round trip to the database, not the original's 1 s poll + 12 s timeout.

type ResultError = UnknownSession | UnknownTask | StaleAttempt | ClusterUnavailable

export interface ClusterMasterService {
  /** The orders stream of a worker's `join`: ends (and the worker's tasks go elsewhere) when the stream is closed. */
  readonly join: (worker: string, slots: number) => Stream.Stream<Order>
  readonly heartbeat: (worker: string, session: string, running?: ReadonlyArray<TaskAttempt>) => Effect.Effect<void, UnknownSession>
  readonly compiled: (worker: string, session: string, result: CompileResult) => Effect.Effect<void, ResultError>
  readonly played: (worker: string, session: string, result: MatchResult) => Effect.Effect<void, ResultError>
  readonly failed: (worker: string, session: string, task: TaskAttempt, message: string) => Effect.Effect<void, ResultError>
  readonly status: Effect.Effect<ClusterStatus, ClusterUnavailable>
  /** New work is queued: run a dispatch round now rather than at the next 1 s poll. */
  readonly wake: Effect.Effect<void>
  readonly requeue: (kind: TaskKind, id: number) => Effect.Effect<{ readonly previous: string }, UnknownTask | NotRequeueable | ClusterUnavailable>
}

export class ClusterMaster extends Context.Tag("prolo/cluster/ClusterMaster")<ClusterMaster, ClusterMasterService>() {
  static readonly layer = (settings: MasterSettings): Layer.Layer<ClusterMaster, never, TaskQueue | FileStore | Metrics | ActorTree | ActorSupervisor> =>
    Layer.scoped(ClusterMaster, makeMaster(settings))
}

const unavailable = (e: { readonly message: string }) => new ClusterUnavailable({ message: e.message })

/** The least loaded worker that fits `cost`, preferring one other than `avoid`; planned load in `free`. */
export const pickWorker = (free: Map<string, { free: number; slots: number }>, cost: number, avoid: string | null): string | undefined => {
  let best: string | undefined
  let bestUsage = Infinity
  let fallback: string | undefined
  for (const [host, w] of free) {
    if (w.free < cost) continue
    if (host === avoid) {
      fallback = host
      continue
    }
    const usage = 1 - w.free / w.slots
    if (usage < bestUsage) {
      bestUsage = usage
      best = host
    }
  }
  return best ?? fallback
}

const makeMaster = (settings: MasterSettings): Effect.Effect<ClusterMasterService, never, TaskQueue | FileStore | Metrics | ActorTree | ActorSupervisor | Scope.Scope> =>
  Effect.gen(function* () {
    const queue = yield* TaskQueue
    const files = yield* FileStore
    const metrics = yield* masterMetrics
    const view = new Map<string, WorkerView>()
    const wakeups = yield* Queue.sliding<void>(1)
    const wake = Effect.asVoid(Queue.offer(wakeups, undefined))
    const deps: MasterDeps = { queue, files, settings, metrics, view, wake, stats: { redispatches: 0, worstRedispatchMillis: 0 } }
    metrics.workers.set(0)
    metrics.tasks.set(0)
    // Both series exist from the start (the janitor refreshes them every second).
    metrics.queueDepth.set({ kind: "compile" }, 0)
    metrics.queueDepth.set({ kind: "match" }, 0)

    const workers = yield* ActorRegistry.make({
      name: "workers",
      behaviour: (worker: string) => workerBehaviour(worker, deps),
      // A connected worker talks every heartbeat; a dropped one has nothing left to keep.
      idleTimeToLive: Duration.seconds(Math.max(60, (settings.workerTimeoutMillis / 1000) * 5)),
      maxActors: 100_000
    })

    // A registry failure (actor stopped, mailbox full, defect) is the master's trouble, not the worker's.
    const ask = <A, E>(e: Effect.Effect<A, E | ActorRegistry.RegistryError | AskError>) =>
      Effect.mapError(e, (x) => (isActorError(x) ? new ClusterUnavailable({ message: `cluster master: ${x.message}` }) : (x as E)))

    // Tasks a worker had are `new` again at start: the workers stop what they ran when they
    // lose the master, and a late result of an old attempt is refused by its CAS.
    const resume = Effect.gen(function* () {
      const { requeued, failed } = yield* queue.resume(settings.maxTries, yield* Clock.currentTimeMillis)
      if (requeued + failed > 0) yield* Effect.logInfo(`cluster master: resumed from the table: ${requeued} running task(s) queued again, ${failed} failed (tries exhausted)`)
    }).pipe(
      Effect.tapError((e) => Effect.logWarning(`cluster master: ${e.message}; retrying`)),
      Effect.retry(Schedule.spaced(Duration.seconds(1)))
    )
    yield* resume.pipe(Effect.orDie)

    // One round: plan the queue's head onto the connected workers, least loaded first, and hand
    // each worker's share to its actor (claim, then send), without waiting: the asks run in the
    // background, each worker's in order, and the slots and tasks they hold are reserved here
    // until they answer, so the next round (a result arrived meanwhile) plans around them. A
    // round is a query and a plan; it never waits for a slow worker's actor or the database
    // behind another worker's claims.
    // Compilations first (one slot, and matches wait for them); within matches, priority order:
    // when no worker fits the next match, no later match jumps ahead of it this round.
    const reserved = new Map<string, number>()
    const inFlight = new Set<string>()
    const asks = yield* FiberSet.make()
    const dispatchRound = Effect.gen(function* () {
      // Only as many rows as the free slots can take: a round after one result reads one match.
      const plan = new Map<string, { free: number; slots: number }>()
      const fits = { compile: 0, match: 0 }
      for (const [host, w] of view) {
        const free = w.free - (reserved.get(host) ?? 0)
        if (free <= 0) continue
        plan.set(host, { free, slots: w.slots })
        fits.compile += Math.floor(free / settings.cost.compile)
        fits.match += Math.floor(free / settings.cost.match)
      }
      if (fits.compile + fits.match === 0) return 0
      const limit = (n: number) => (n === 0 ? 0 : Math.min(n + inFlight.size, 2000))
      const queued = yield* queue.queued({ compile: limit(fits.compile), match: limit(fits.match) })
      const byWorker = new Map<string, Array<Queued>>()
      let matchesBlocked = false
      let planned = 0
      for (const task of queued) {
        if (inFlight.has(taskKey(task))) continue
        if (task.kind === "match" && matchesBlocked) continue
        const cost = settings.cost[task.kind]
        const host = pickWorker(plan, cost, task.lastWorker)
        if (host === undefined) {
          if (task.kind === "match") matchesBlocked = true
          continue
        }
        plan.get(host)!.free -= cost
        reserved.set(host, (reserved.get(host) ?? 0) + cost)
        inFlight.add(taskKey(task))
        planned++
        const list = byWorker.get(host) ?? []
        list.push(task)
        byWorker.set(host, list)
      }
      for (const [host, tasks] of byWorker) {
        const one = (task: Queued) =>
          workers.ask(host, new Assign({ task })).pipe(
            Effect.catchAll((e) => Effect.logWarning(`cluster master: dispatch of ${task.kind} ${task.id} to ${host}: ${e.message}`)),
            Effect.ensuring(
              Effect.sync(() => {
                const left = (reserved.get(host) ?? 0) - settings.cost[task.kind]
                if (left > 0) reserved.set(host, left)
                else reserved.delete(host)
                inFlight.delete(taskKey(task))
              })
            )
          )
        yield* FiberSet.run(asks, Effect.zipRight(Effect.forEach(tasks, one, { discard: true }), wake))
      }
      return planned
    })

    // Waits for a wake-up or one second (Clock), whichever first.
    const nextRound = Effect.race(Queue.take(wakeups), Effect.sleep(Duration.seconds(1)))

    yield* supervisedLoop(
      "matchmaker",
      Effect.forever(
        Effect.gen(function* () {
          const [took, planned] = yield* dispatchRound.pipe(
            Effect.catchAll((e) => Effect.as(Effect.zipRight(Effect.sync(() => metrics.exceptions.inc()), Effect.logWarning(`cluster master: dispatch round: ${e.message}`)), 0)),
            Effect.timed
          )
          if (planned > 0) metrics.dispatchRound.observe(Duration.toMillis(took) / 1000)
          // The asks wake the loop as they answer; results and joins wake it too.
          yield* nextRound
        })
      )
    )

    const janitorRound = Effect.gen(function* () {
      for (const host of [...view.keys()]) {
        yield* workers.ask(host, new CheckHeartbeat()).pipe(Effect.ignore)
      }
      const now = yield* Clock.currentTimeMillis
      const expired = yield* queue.expire(now, settings.maxTries)
      for (const lease of expired) {
        metrics.leaseExpiries.inc()
        if (lease.outcome === "new") metrics.resubmitted.inc()
        if (lease.outcome === "failed") metrics.failed.inc()
        yield* Effect.logWarning(`cluster master: ${lease.kind} ${lease.id} attempt ${lease.attempt} timed out on ${lease.worker}: ${lease.outcome === "new" ? "queued again" : "failed"}`)
        yield* workers.tell(lease.worker, new Expired({ task: { kind: lease.kind, id: lease.id, attempt: lease.attempt } })).pipe(Effect.ignore)
      }
      if (expired.length > 0) yield* wake
      const depth = yield* queue.depth
      metrics.queueDepth.set({ kind: "compile" }, depth.compile)
      metrics.queueDepth.set({ kind: "match" }, depth.match)
      let tasks = 0
      for (const w of view.values()) tasks += w.tasks
      metrics.workers.set(view.size)
      metrics.tasks.set(tasks)
    })

    // Schedule.fixed: a round that outlasts its second (or a clock that jumped) is followed by
    // the next one at once rather than a whole second later.
    yield* supervisedLoop(
      "janitor",
      Effect.repeat(
        janitorRound.pipe(
          Effect.catchAll((e) => Effect.zipRight(Effect.sync(() => metrics.exceptions.inc()), Effect.logWarning(`cluster master: janitor round: ${e.message}`)))
        ),
        Schedule.fixed(Duration.seconds(1))
      )
    )

    const join = (worker: string, slots: number): Stream.Stream<Order> =>
      Stream.unwrapScoped(
        Effect.gen(function* () {
          const orders = yield* Mailbox.make<Order>()
          const session = yield* workers.ask(worker, new Connect({ slots, orders })).pipe(Effect.orDie)
          // Runs when the stream ends for any reason: the connection dropped (the rpc server
          // interrupts it), the worker left, or the janitor ended the session (then a no-op).
          yield* Effect.addFinalizer(() => workers.ask(worker, new Disconnect({ session, reason: "connection closed" })).pipe(Effect.ignore))
          return Mailbox.toStream(orders)
        })
      )

    const late = (r: StaleAttempt | undefined) => (r === undefined ? Effect.void : Effect.fail(r))

    const service: ClusterMasterService = {
      join,
      wake,
      heartbeat: (worker, session, running = []) =>
        ask(workers.ask(worker, new Heartbeat({ session, running }))).pipe(
          Effect.catchTag("ClusterUnavailable", (e) => Effect.die(e))
        ),
      compiled: (worker, session, result) =>
        ask(workers.ask(worker, new Compiled({ session, result }))).pipe(Effect.mapError(asResultError), Effect.flatMap(late)),
      played: (worker, session, result) =>
        ask(workers.ask(worker, new Played({ session, result }))).pipe(Effect.mapError(asResultError), Effect.flatMap(late)),
      failed: (worker, session, task, message) =>
        ask(workers.ask(worker, new ExecutorFailed({ session, task, message }))).pipe(Effect.mapError(asResultError)),
      status: Effect.gen(function* () {
        const now = yield* Clock.currentTimeMillis
        const depth = yield* queue.depth.pipe(Effect.mapError(unavailable))
        const running = yield* queue.running.pipe(Effect.mapError(unavailable))
        return {
          workers: [...view].sort(([a], [b]) => a.localeCompare(b)).map(([worker, w]) => ({
            worker,
            connected: true,
            slots: w.slots,
            free: w.free,
            tasks: w.tasks,
            heardAgoMillis: Math.max(0, now - w.heardAt)
          })),
          queue: depth,
          running: running.map((r) => ({ kind: r.kind, id: r.id, attempt: r.attempt, worker: r.worker, expiresInMillis: r.expiry - now })),
          redispatches: deps.stats.redispatches,
          worstRedispatchMillis: deps.stats.worstRedispatchMillis
        }
      }),
      requeue: (kind, id) =>
        Effect.gen(function* () {
          const previous = yield* queue.requeue({ kind, id }).pipe(Effect.mapError(unavailable))
          if (Option.isNone(previous)) return yield* new UnknownTask({ kind, id })
          if (previous.value !== "failed" && previous.value !== "error") return yield* new NotRequeueable({ kind, id, status: previous.value })
          yield* Effect.logInfo(`cluster master: ${kind} ${id} requeued by an operator (was ${previous.value})`)
          yield* wake
          return { previous: previous.value }
        })
    }
    return service
  })

const isActorError = (e: unknown): e is ActorRegistry.RegistryError | AskError =>
  typeof e === "object" && e !== null && "_tag" in e && ["TooManyActors", "MailboxFull", "ActorStopped", "ActorDefect"].includes(String(e._tag))

const asResultError = <E extends { readonly _tag: string; readonly message: string }>(e: E): ResultError =>
  e._tag === "QueueUnavailable" ? new ClusterUnavailable({ message: e.message }) : (e as unknown as ResultError)
