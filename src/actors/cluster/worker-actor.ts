import { Clock, Effect, Either, type Mailbox, Option, Request } from "effect"
import { randomBytes } from "node:crypto"
import {
  type Order,
  StaleAttempt,
  type TaskAttempt,
  UnknownSession,
  UnknownTask
} from "../../protocols/cluster.js"
import type { CompileResult, MatchResult } from "../../protocols/cluster-task.js"
import * as Actor from "../../runtime/actor.js"
import type { FileStoreService } from "../concours/files.js"
import type { MasterSettings } from "./config.js"
import type { MasterMetrics } from "./metrics.js"
import { type Claimed, type Lease, type Queued, QueueUnavailable, type TaskKind, type TaskQueueService, taskKey } from "./queue.js"

// The WorkerActor: one per worker host (keyed registry `/root/cluster-master/workers/<host>`),
// owning that worker's session (the `join` stream it writes orders into), its slots and the
// tasks it holds. Everything that changes a worker's tasks goes through it, one message at a
// time: a dispatch, a result, the connection dropping, a lease expiring. So a task is never
// handed to a session whose drop was already handled, and a result and a drop of the same
// worker never race.
//
// The database decides, the actor accounts: a dispatch is a claim (CAS `new` -> `pending`,
// attempt + 1) made here before the order is written; a result is recorded only by the CAS on
// (id, attempt, worker) in the transaction with its scores. The actor's own task table decides
// slots (the master never trusts a worker's count, unlike the original whose heartbeats
// overwrote it) and tells a late result from a current one before any file is written.
//
// The view (`WorkerView`) is what this actor publishes of its load for the dispatcher to plan
// with; only this actor writes its entry.

export interface WorkerView {
  readonly slots: number
  readonly free: number
  readonly tasks: number
  readonly heardAt: number
}

export interface MasterDeps {
  readonly queue: TaskQueueService
  readonly files: FileStoreService
  readonly settings: MasterSettings
  readonly metrics: MasterMetrics
  /** Connected workers' load, keyed by host. */
  readonly view: Map<string, WorkerView>
  /** Asks the dispatcher for a round now (slots freed, worker joined, tasks released). */
  readonly wake: Effect.Effect<void>
  readonly stats: { redispatches: number; worstRedispatchMillis: number }
}

interface Held extends TaskAttempt {
  readonly cost: number
  /** Match: its players' rows, to check a result against. */
  readonly players: ReadonlyArray<number>
}

interface Session {
  readonly id: string
  readonly slots: number
  readonly orders: Mailbox.Mailbox<Order>
  readonly heardAt: number
}

export interface WorkerState {
  readonly session: Session | undefined
  readonly tasks: ReadonlyMap<string, Held>
}

export class Connect extends Request.TaggedClass("Connect")<string, never, { readonly slots: number; readonly orders: Mailbox.Mailbox<Order> }> {}
/** The session's connection ended (or the janitor dropped it): its tasks go elsewhere. */
export class Disconnect extends Request.TaggedClass("Disconnect")<void, never, { readonly session: string; readonly reason: string }> {}
/** The janitor's check: no heartbeat for `workerTimeoutMillis` drops the session. */
export class CheckHeartbeat extends Request.TaggedClass("CheckHeartbeat")<boolean, never, {}> {}
/** `running`: what the worker says it runs; an attempt this actor does not hold is cancelled there. */
export class Heartbeat extends Request.TaggedClass("Heartbeat")<void, UnknownSession, { readonly session: string; readonly running: ReadonlyArray<TaskAttempt> }> {}
/** Claims `task` for this worker and sends it; false when it cannot take it (or the task went away). */
export class Assign extends Request.TaggedClass("Assign")<boolean, QueueUnavailable, { readonly task: Queued }> {}
// A result's reply: undefined when recorded, the StaleAttempt when the database had already ended
// that lease (a janitor race): the task is forgotten either way, so that is a reply, not a failure
// (a failing handler keeps the actor's previous state).
export class Compiled extends Request.TaggedClass("Compiled")<
  StaleAttempt | undefined,
  UnknownSession | UnknownTask | StaleAttempt | QueueUnavailable,
  { readonly session: string; readonly result: CompileResult }
> {}
export class Played extends Request.TaggedClass("Played")<
  StaleAttempt | undefined,
  UnknownSession | UnknownTask | StaleAttempt | QueueUnavailable,
  { readonly session: string; readonly result: MatchResult }
> {}
/** The executor could not run the task: released, to be dispatched elsewhere. */
export class ExecutorFailed extends Request.TaggedClass("ExecutorFailed")<
  void,
  UnknownSession | UnknownTask | StaleAttempt | QueueUnavailable,
  { readonly session: string; readonly task: TaskAttempt; readonly message: string }
> {}
/** The janitor released this attempt (lease expired): forget it, tell the worker to stop it. */
export class Expired extends Request.TaggedClass("Expired")<void, never, { readonly task: TaskAttempt }> {}

export type WorkerMessage = Connect | Disconnect | CheckHeartbeat | Heartbeat | Assign | Compiled | Played | ExecutorFailed | Expired

const used = (tasks: ReadonlyMap<string, Held>) => {
  let n = 0
  for (const t of tasks.values()) n += t.cost
  return n
}

const without = (tasks: ReadonlyMap<string, Held>, key: string) => {
  const next = new Map(tasks)
  next.delete(key)
  return next
}

const concat = (...parts: ReadonlyArray<string | undefined>) => parts.filter((p) => p !== undefined && p !== "").join("; ")

export const workerBehaviour = (worker: string, deps: MasterDeps) => {
  const { queue, files, settings, metrics, view } = deps

  const publish = (state: WorkerState) =>
    Effect.sync(() => {
      if (state.session === undefined) view.delete(worker)
      else {
        const u = used(state.tasks)
        view.set(worker, { slots: state.session.slots, free: state.session.slots - u, tasks: state.tasks.size, heardAt: state.session.heardAt })
      }
    })

  const leaseOf = (t: TaskAttempt): Lease => ({ kind: t.kind, id: t.id, attempt: t.attempt, worker })

  // Ends a session: its orders stream closes (the worker sees `join` end) and each task it held
  // is released, to `new` (dispatched to another worker at once) or `failed` past the tries. A
  // database that cannot be written leaves the leases to expire: the janitor releases them then.
  const endSession = (state: WorkerState, reason: string) =>
    Effect.gen(function* () {
      if (state.session !== undefined) yield* state.session.orders.end
      for (const t of state.tasks.values()) {
        const outcome = yield* queue.release(leaseOf(t), settings.maxTries, yield* Clock.currentTimeMillis, `worker ${worker}: ${reason}`).pipe(
          Effect.tapError((e) => Effect.logWarning(`cluster: ${worker}: ${e.message}; the lease will expire instead`)),
          Effect.orElseSucceed(() => "gone" as const)
        )
        if (outcome === "new") metrics.redispatched.inc()
        if (outcome === "failed") metrics.failed.inc()
      }
      if (state.tasks.size > 0) yield* Effect.logInfo(`cluster: ${worker}: ${reason}; ${state.tasks.size} task(s) taken back`)
      const next: WorkerState = { session: undefined, tasks: new Map() }
      yield* publish(next)
      yield* deps.wake
      return next
    })

  const current = (state: WorkerState, session: string) =>
    state.session?.id === session
      ? Effect.succeed(state.session)
      : Effect.zipRight(Effect.sync(() => metrics.zombies.inc()), Effect.fail(new UnknownSession({ worker, session })))

  // The attempt a result names must be one this worker holds now; otherwise say why (no such
  // task, or an old attempt) after looking at the row, and record nothing.
  const held = (state: WorkerState, t: TaskAttempt) =>
    Effect.gen(function* () {
      const h = state.tasks.get(taskKey(t))
      if (h !== undefined && h.attempt === t.attempt) return h
      const row = yield* queue.state(t)
      if (Option.isNone(row)) return yield* new UnknownTask({ kind: t.kind, id: t.id })
      metrics.lateResults.inc()
      return yield* new StaleAttempt({ kind: t.kind, id: t.id, attempt: t.attempt, worker, current: row.value.attempt, status: row.value.status })
    })

  // A lease the database no longer holds (released by a janitor race): the result is late.
  const lateAfterAll = (t: TaskAttempt) =>
    Effect.gen(function* () {
      metrics.lateResults.inc()
      const row = yield* queue.state(t).pipe(Effect.orElseSucceed(() => Option.none()))
      return new StaleAttempt({
        kind: t.kind,
        id: t.id,
        attempt: t.attempt,
        worker,
        current: Option.match(row, { onNone: () => 0, onSome: (r) => r.attempt }),
        status: Option.match(row, { onNone: () => "gone", onSome: (r) => r.status })
      })
    })

  const finished = (state: WorkerState, t: TaskAttempt) =>
    Effect.gen(function* () {
      const next: WorkerState = { ...state, tasks: without(state.tasks, taskKey(t)) }
      yield* publish(next)
      yield* deps.wake
      return next
    })

  // The order for a claimed task, or why it cannot run (recorded as the task's failure).
  const orderFor = (task: Queued, claimed: Claimed): Effect.Effect<Either.Either<{ readonly order: Order; readonly players: ReadonlyArray<number> }, string>> =>
    Effect.gen(function* () {
      const attempt = claimed.attempt
      if (claimed.kind === "compile") {
        const sources = yield* Effect.either(files.get(claimed.input.sourcesDigest))
        if (Either.isLeft(sources)) return Either.left(`sources not readable: ${sources.left.message}`)
        const order: Order = {
          _tag: "Compile",
          task: { taskId: task.id, attempt, championId: task.id, author: claimed.input.author, sources: sources.right }
        }
        return Either.right({ order, players: [] as ReadonlyArray<number> })
      }
      const input = claimed.input
      if (input.players.length === 0) return Either.left("match has no players")
      const players = []
      for (const p of input.players) {
        if (p.compiledDigest === null) return Either.left(`champion ${p.championId} is not compiled`)
        const compiled = yield* Effect.either(files.get(p.compiledDigest))
        if (Either.isLeft(compiled)) return Either.left(`champion ${p.championId}: ${compiled.left.message}`)
        players.push({ playerId: p.playerId, championId: p.championId, compiled: compiled.right })
      }
      const order: Order = { _tag: "Match", task: { taskId: task.id, attempt, matchId: task.id, map: input.map ?? "", players, options: optionsOf(input.options) } }
      return Either.right({ order, players: players.map((p) => p.playerId) })
    })

  const failAtDispatch = (lease: Lease, why: string) =>
    (lease.kind === "compile"
      ? queue.finishCompile(lease, { status: "failed", compiledDigest: null, logDigest: null, failure: why })
      : queue.finishMatch(lease, { status: "failed", serverLogDigest: null, dumpDigest: null, replayDigest: null, statsDigest: null, failure: why, players: [] })
    ).pipe(Effect.zipRight(Effect.logWarning(`cluster: ${taskKey(lease)} failed at dispatch: ${why}`)))

  return Actor.behaviour<WorkerMessage>()({
    init: Effect.succeed<WorkerState>({ session: undefined, tasks: new Map() }),
    receive: {
      Connect: (state, m) =>
        Effect.gen(function* () {
          // A worker that joins again (it restarted, or its old connection is not yet seen
          // closed) gets a fresh session: whatever the old one held goes elsewhere.
          const base = state.session === undefined && state.tasks.size === 0 ? state : yield* endSession(state, "joined again")
          const id = randomBytes(9).toString("base64url")
          const now = yield* Clock.currentTimeMillis
          yield* m.orders.offer({ _tag: "Welcome", session: id, heartbeatMillis: settings.heartbeatMillis })
          const next: WorkerState = { session: { id, slots: m.slots, orders: m.orders, heardAt: now }, tasks: base.tasks }
          yield* publish(next)
          yield* Effect.logInfo(`cluster: worker ${worker} joined with ${m.slots} slots`)
          yield* deps.wake
          return { reply: id, state: next }
        }),
      Disconnect: (state, m) =>
        state.session?.id !== m.session
          ? Effect.succeed({})
          : Effect.map(endSession(state, m.reason), (next) => ({ state: next })),
      CheckHeartbeat: (state) =>
        Effect.gen(function* () {
          if (state.session === undefined) return { reply: false }
          const now = yield* Clock.currentTimeMillis
          if (now - state.session.heardAt < settings.workerTimeoutMillis) return { reply: false }
          metrics.workerTimeouts.inc()
          const next = yield* endSession(state, `no heartbeat for ${Math.round((now - state.session.heardAt) / 1000)} s`)
          return { reply: true, state: next }
        }),
      Heartbeat: (state, m) =>
        Effect.gen(function* () {
          const session = yield* current(state, m.session)
          for (const t of m.running) {
            if (state.tasks.get(taskKey(t))?.attempt !== t.attempt) yield* session.orders.offer({ _tag: "Cancel", task: t })
          }
          const next: WorkerState = { ...state, session: { ...session, heardAt: yield* Clock.currentTimeMillis } }
          yield* publish(next)
          return { state: next }
        }),
      Assign: (state, m) =>
        Effect.gen(function* () {
          const session = state.session
          const cost = settings.cost[m.task.kind]
          if (session === undefined || session.slots - used(state.tasks) < cost) return { reply: false }
          const now = yield* Clock.currentTimeMillis
          const claimed = yield* queue.claim(m.task, worker, now + settings.timeoutMillis[m.task.kind])
          if (Option.isNone(claimed)) return { reply: false }
          const lease: Lease = { kind: m.task.kind, id: m.task.id, attempt: claimed.value.attempt, worker }
          const built = yield* orderFor(m.task, claimed.value)
          if (Either.isLeft(built)) {
            yield* failAtDispatch(lease, built.left).pipe(Effect.ignore)
            return { reply: false }
          }
          yield* session.orders.offer(built.right.order)
          metrics.dispatched.inc()
          if (m.task.releasedAt !== null) {
            const delay = Math.max(0, now - m.task.releasedAt)
            metrics.redispatches.inc()
            metrics.redispatchDelay.observe(delay / 1000)
            deps.stats.redispatches++
            deps.stats.worstRedispatchMillis = Math.max(deps.stats.worstRedispatchMillis, delay)
          }
          const tasks = new Map(state.tasks)
          tasks.set(taskKey(lease), { kind: lease.kind, id: lease.id, attempt: lease.attempt, cost, players: built.right.players })
          const next: WorkerState = { ...state, tasks }
          yield* publish(next)
          return { reply: true, state: next }
        }),
      Compiled: (state, m) =>
        Effect.gen(function* () {
          yield* current(state, m.session)
          const r = m.result
          const t: TaskAttempt = { kind: "compile", id: r.championId, attempt: r.attempt }
          yield* held(state, t)
          const log = yield* storeText(files, concat(r.log, r.rejected && `refused: ${r.rejected}`, r.kill && `killed: ${r.kill}`))
          const ready = r.status === "ready" && r.compiled !== undefined
          const compiled = ready ? yield* files.put(r.compiled!).pipe(Effect.mapError(asUnavailable)) : null
          const won = yield* queue.finishCompile(leaseOf(t), {
            status: ready ? "ready" : "error",
            compiledDigest: compiled,
            logDigest: log,
            failure: ready ? null : concat(r.rejected, r.kill && `killed (${r.kill})`, r.status === "ready" ? "no compiled archive" : "compilation failed")
          })
          const next = yield* finished(state, t)
          return { reply: won ? undefined : yield* lateAfterAll(t), state: next }
        }),
      Played: (state, m) =>
        Effect.gen(function* () {
          yield* current(state, m.session)
          const r = m.result
          const t: TaskAttempt = { kind: "match", id: r.matchId, attempt: r.attempt }
          const h = yield* held(state, t)
          const start = yield* Clock.currentTimeMillis
          // A `done` result must score exactly this match's players, each once.
          const ids = r.players.map((p) => p.playerId).sort((a, b) => a - b)
          const expected = [...h.players].sort((a, b) => a - b)
          const wellFormed = ids.length === expected.length && ids.every((id, i) => id === expected[i])
          if (r.status === "done" && !wellFormed) metrics.badResults.inc()
          const done = r.status === "done" && wellFormed
          const serverLog = yield* storeText(files, concat(r.serverStdout, r.serverStderr && `--- stderr ---\n${r.serverStderr}`))
          const stored = (b: Uint8Array | undefined) => (b === undefined ? Effect.succeed(null) : files.put(b).pipe(Effect.mapError(asUnavailable)))
          const dump = yield* stored(r.dump)
          const replay = yield* stored(r.replay)
          const stats = yield* stored(r.stats)
          const players = []
          for (const p of done ? r.players : []) {
            players.push({ playerId: p.playerId, score: p.score, nbTimeout: p.nbTimeout, logDigest: yield* storeText(files, p.log) })
          }
          const dbStart = yield* Clock.currentTimeMillis
          metrics.matchDoneFile.observe((dbStart - start) / 1000)
          const won = yield* queue.finishMatch(leaseOf(t), {
            status: done ? "done" : "failed",
            serverLogDigest: serverLog,
            dumpDigest: dump,
            replayDigest: replay,
            statsDigest: stats,
            failure: done
              ? null
              : concat(r.reason, r.kill && `server killed (${r.kill})`, r.status === "done" ? `bad result: players ${ids.join(",")} for ${expected.join(",")}` : undefined) ||
                "failed",
            players
          })
          metrics.matchDoneDb.observe(((yield* Clock.currentTimeMillis) - dbStart) / 1000)
          const next = yield* finished(state, t)
          return { reply: won ? undefined : yield* lateAfterAll(t), state: next }
        }),
      ExecutorFailed: (state, m) =>
        Effect.gen(function* () {
          yield* current(state, m.session)
          yield* held(state, m.task)
          const outcome = yield* queue.release(leaseOf(m.task), settings.maxTries, yield* Clock.currentTimeMillis, `executor on ${worker}: ${m.message}`)
          if (outcome === "new") metrics.resubmitted.inc()
          if (outcome === "failed") metrics.failed.inc()
          yield* Effect.logWarning(`cluster: ${taskKey(m.task)} attempt ${m.task.attempt}: executor on ${worker} failed: ${m.message}; ${outcome === "new" ? "queued again" : outcome}`)
          return { state: yield* finished(state, m.task) }
        }),
      Expired: (state, m) =>
        Effect.gen(function* () {
          const h = state.tasks.get(taskKey(m.task))
          if (h === undefined || h.attempt !== m.task.attempt) return {}
          if (state.session !== undefined) yield* state.session.orders.offer({ _tag: "Cancel", task: m.task })
          return { state: yield* finished(state, m.task) }
        })
    }
  })
}

const asUnavailable = (e: { readonly message: string }) => new QueueUnavailable({ message: `cluster files: ${e.message}; nothing recorded, retry` })

const storeText = (files: FileStoreService, text: string) =>
  text === "" ? Effect.succeed(null) : files.put(new TextEncoder().encode(text)).pipe(Effect.mapError(asUnavailable))

// `options` is the row's jsonb: only string values of plain-word names travel (the task schema's rule).
const optionsOf = (raw: unknown): Record<string, string> => {
  const out: Record<string, string> = {}
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) return out
  for (const [k, v] of Object.entries(raw)) {
    if (/^[a-z][a-z0-9_]{0,31}$/.test(k) && (typeof v === "string" || typeof v === "number") && String(v).length <= 256) out[k] = String(v)
  }
  return out
}

export type { TaskKind }
