import { Rpc, RpcGroup } from "@effect/rpc"
import { Schema } from "effect"
import { TimeAuth } from "../runtime/rpc-auth.js"
import { CompileResult, CompileTask, MatchResult, MatchTask } from "./cluster-task.js"

// Wire contract between the master of the match cluster and its workers, and the operators'
// view of it. Workers dial the master (TCP + msgpack, src/runtime/rpc-tcp.ts), never the other
// way: `join` is a stream the master writes orders into (the tasks it dispatches to that worker,
// and cancellations); `heartbeat`, `compiled`, `played` and `failed` are calls of the same
// connection. The connection is the worker's presence: when it drops, the worker's leases end
// and its tasks are dispatched to other workers at once. Every rpc is time-auth signed with
// `cluster.yml`'s secret (workers); `status` with `cluster-status.yml`'s (it only reads);
// `requeue` with `cluster-admin.yml`'s.

export const CLUSTER_SERVICE = "cluster"
export const CLUSTER_STATUS_SERVICE = "cluster-status"
export const CLUSTER_ADMIN_SERVICE = "cluster-admin"

export const TaskKind = Schema.Literal("compile", "match")
export type TaskKind = typeof TaskKind.Type

const Id = Schema.Int.pipe(Schema.nonNegative())

/** A worker names itself by its host name (the registry's key). */
export const WorkerName = Schema.String.pipe(
  Schema.pattern(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/),
  Schema.annotations({ description: "a host name: letters, digits, '.', '_', '-', at most 63" })
)

export const TaskAttempt = Schema.Struct({ kind: TaskKind, id: Id, attempt: Id })
export type TaskAttempt = typeof TaskAttempt.Type

/** What the master sends down a worker's `join` stream. */
export const Order = Schema.Union(
  Schema.TaggedStruct("Welcome", { session: Schema.String, heartbeatMillis: Schema.Number }),
  Schema.TaggedStruct("Compile", { task: CompileTask }),
  Schema.TaggedStruct("Match", { task: MatchTask }),
  /** Stop this attempt (its lease expired): its result would be dropped anyway. */
  Schema.TaggedStruct("Cancel", { task: TaskAttempt })
)
export type Order = typeof Order.Type

/** The worker's session is not the master's current one for it (master restarted, or it was dropped): join again. */
export class UnknownSession extends Schema.TaggedError<UnknownSession>()("UnknownSession", {
  worker: Schema.String,
  session: Schema.String
}) {
  override get message() {
    return `worker ${this.worker}: session ${this.session} is not current (dropped or master restarted): join again`
  }
}

/** No compilation/match with this id. Nothing recorded. */
export class UnknownTask extends Schema.TaggedError<UnknownTask>()("UnknownTask", {
  kind: TaskKind,
  id: Schema.Int
}) {
  override get message() {
    return `no ${this.kind === "compile" ? "champion" : "match"} ${this.id}`
  }
}

/**
 * A result for an attempt that is not the task's current lease on this worker (it timed out, its
 * worker was dropped, it was dispatched again): dropped, nothing recorded.
 */
export class StaleAttempt extends Schema.TaggedError<StaleAttempt>()("StaleAttempt", {
  kind: TaskKind,
  id: Schema.Int,
  attempt: Schema.Int,
  worker: Schema.String,
  current: Schema.Int,
  status: Schema.String
}) {
  override get message() {
    return `${this.kind} ${this.id}: attempt ${this.attempt} from ${this.worker} is not the current lease (attempt ${this.current}, ${this.status}): result dropped`
  }
}

/** The queue's database cannot be reached; nothing changed, retry. */
export class ClusterUnavailable extends Schema.TaggedError<ClusterUnavailable>()("ClusterUnavailable", {
  message: Schema.String
}) {}

/** `requeue` of a task that is not failed (or in error). */
export class NotRequeueable extends Schema.TaggedError<NotRequeueable>()("NotRequeueable", {
  kind: TaskKind,
  id: Schema.Int,
  status: Schema.String
}) {
  override get message() {
    return `${this.kind === "compile" ? "champion" : "match"} ${this.id} is ${this.status}: only failed (or error) tasks are requeued`
  }
}

const ResultError = Schema.Union(UnknownSession, UnknownTask, StaleAttempt, ClusterUnavailable)

export class ClusterRpcs extends RpcGroup.make(
  Rpc.make("join", {
    payload: { worker: WorkerName, slots: Schema.Int.pipe(Schema.between(1, 10_000)) },
    success: Order,
    stream: true
  }),
  Rpc.make("heartbeat", {
    payload: { worker: WorkerName, session: Schema.String, running: Schema.Array(TaskAttempt) },
    error: UnknownSession
  }),
  Rpc.make("compiled", {
    payload: { worker: WorkerName, session: Schema.String, result: CompileResult },
    error: ResultError
  }),
  Rpc.make("played", {
    payload: { worker: WorkerName, session: Schema.String, result: MatchResult },
    error: ResultError
  }),
  /** The executor could not run the task (its own trouble): the master retries it elsewhere. */
  Rpc.make("failed", {
    payload: { worker: WorkerName, session: Schema.String, task: TaskAttempt, message: Schema.String },
    error: ResultError
  })
).middleware(TimeAuth) {}

export const WorkerStatus = Schema.Struct({
  worker: Schema.String,
  connected: Schema.Boolean,
  slots: Schema.Int,
  free: Schema.Int,
  tasks: Schema.Int,
  /** Millis since its last heartbeat (or since it joined). */
  heardAgoMillis: Schema.Number
})
export type WorkerStatus = typeof WorkerStatus.Type

export const RunningTask = Schema.Struct({
  kind: TaskKind,
  id: Schema.Int,
  attempt: Schema.Int,
  worker: Schema.String,
  expiresInMillis: Schema.Number
})

export const ClusterStatus = Schema.Struct({
  workers: Schema.Array(WorkerStatus),
  queue: Schema.Struct({ compile: Schema.Int, match: Schema.Int }),
  running: Schema.Array(RunningTask),
  redispatches: Schema.Int,
  /** The longest time a task taken from a worker waited to be dispatched again, since the master started. */
  worstRedispatchMillis: Schema.Number
})
export type ClusterStatus = typeof ClusterStatus.Type

export class ClusterStatusRpcs extends RpcGroup.make(
  Rpc.make("status", { success: ClusterStatus, error: ClusterUnavailable })
).middleware(TimeAuth) {}

export class ClusterAdminRpcs extends RpcGroup.make(
  Rpc.make("requeue", {
    payload: { kind: TaskKind, id: Id },
    success: Schema.Struct({ previous: Schema.String }),
    error: Schema.Union(UnknownTask, NotRequeueable, ClusterUnavailable)
  })
).middleware(TimeAuth) {}
