import { Effect } from "effect"
import { ClusterAdminRpcs, ClusterRpcs, ClusterStatusRpcs } from "../../protocols/cluster.js"
import { ClusterMaster } from "./master.js"

/** The workers' group (TCP port, `cluster.yml`'s secret). */
export const ClusterHandlers = ClusterRpcs.toLayer(
  Effect.map(ClusterMaster, (m) =>
    ClusterRpcs.of({
      join: ({ slots, worker }) => m.join(worker, slots),
      heartbeat: ({ running, session, worker }) => m.heartbeat(worker, session, running),
      compiled: ({ result, session, worker }) => m.compiled(worker, session, result),
      played: ({ result, session, worker }) => m.played(worker, session, result),
      failed: ({ message, session, task, worker }) => m.failed(worker, session, task, message)
    })
  )
)

export const ClusterStatusHandlers = ClusterStatusRpcs.toLayer(Effect.map(ClusterMaster, (m) => ClusterStatusRpcs.of({ status: () => m.status })))

export const ClusterAdminHandlers = ClusterAdminRpcs.toLayer(
  Effect.map(ClusterMaster, (m) => ClusterAdminRpcs.of({ requeue: ({ id, kind }) => m.requeue(kind, id) }))
)
