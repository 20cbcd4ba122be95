import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import { Console, Effect, Either, Schema } from "effect"
import { CLUSTER_ADMIN_SERVICE, CLUSTER_STATUS_SERVICE, ClusterAdminRpcs, ClusterStatusRpcs, type TaskKind } from "../../protocols/cluster.js"
import { configOption, nodeOption } from "../../runtime/cli-client-options.js"
import { withRpcClient } from "../../runtime/cli-run.js"
import { table } from "../../runtime/cli-table.js"

// `prolo cluster …`: the match cluster's state (status, signed with cluster-status.yml's
// secret, which only reads) and the operator's requeue (cluster-admin.yml's secret), over the
// master node's HTTP port. Any failure is one line on stderr and exit status 2.

const cluster = Command.make("cluster", { node: nodeOption, config: configOption })

const statusClient = withRpcClient({ command: "cluster", profile: "cluster-status", group: ClusterStatusRpcs, service: CLUSTER_STATUS_SERVICE })
const adminClient = withRpcClient({ command: "cluster", profile: "cluster-admin", group: ClusterAdminRpcs, service: CLUSTER_ADMIN_SERVICE })

const seconds = (ms: number) => `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)}s`

const status = Command.make("status", {}, () =>
  Effect.flatMap(cluster, (where) =>
    statusClient(where, true, (c) =>
      Effect.gen(function* () {
        const s = yield* c.status()
        const slots = s.workers.reduce((n, w) => n + w.slots, 0)
        const free = s.workers.reduce((n, w) => n + w.free, 0)
        yield* Console.log(
          `${s.workers.length} worker(s), ${slots - free}/${slots} slots busy; queue: ${s.queue.compile} compilation(s), ${s.queue.match} match(es); ` +
            `${s.running.length} running; ${s.redispatches} redispatch(es), worst delay ${seconds(s.worstRedispatchMillis)}`
        )
        if (s.workers.length > 0) {
          yield* Console.log(table(["WORKER", "SLOTS", "FREE", "TASKS", "HEARD"], s.workers.map((w) => [w.worker, String(w.slots), String(w.free), String(w.tasks), `${seconds(w.heardAgoMillis)} ago`])))
        }
        if (s.running.length > 0) {
          yield* Console.log(
            table(["TASK", "ATTEMPT", "WORKER", "EXPIRES IN"], s.running.map((r) => [`${r.kind === "compile" ? "champion" : "match"} ${r.id}`, String(r.attempt), r.worker, seconds(r.expiresInMillis)]))
          )
        }
      })
    )
  )
).pipe(Command.withDescription("workers and their slots, queue depth, running tasks"))

// `12` or `match:12` is a match; `champion:3` a champion's compilation.
const TaskArg = /^(?:(match|champion):)?([0-9]{1,9})$/
export const parseTaskArg = (text: string): Either.Either<{ readonly kind: TaskKind; readonly id: number }, string> => {
  const m = TaskArg.exec(text)
  if (m === null) return Either.left(`task ${JSON.stringify(text)}: expected a match id (12, match:12) or champion:ID`)
  return Either.right({ kind: m[1] === "champion" ? "compile" : "match", id: Number(m[2]) })
}

class BadTask extends Schema.TaggedError<BadTask>()("BadTask", { message: Schema.String }) {}

const requeue = Command.make("requeue", { task: Args.text({ name: "ID" }).pipe(Args.withDescription("a match id (12 or match:12) or champion:ID")) }, ({ task }) =>
  Effect.flatMap(cluster, (where) =>
    adminClient(where, true, (c) =>
      Effect.gen(function* () {
        const parsed = parseTaskArg(task)
        if (Either.isLeft(parsed)) return yield* new BadTask({ message: parsed.left })
        const { previous } = yield* c.requeue(parsed.right)
        yield* Console.log(`${parsed.right.kind === "compile" ? "champion" : "match"} ${parsed.right.id}: ${previous} -> new (queued again)`)
      })
    )
  )
).pipe(Command.withDescription("queue a failed match (or champion:ID compilation) again"))

export const clusterCommand = cluster.pipe(
  Command.withDescription("the match cluster: status (workers, slots, queue, running tasks), requeue"),
  Command.withSubcommands([status, requeue])
)
