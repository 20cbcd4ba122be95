import { Deferred, Effect, FiberId } from "effect"
import { type ClusterStatus, ClusterUnavailable } from "../../protocols/cluster.js"
import type { ListenAddress } from "../../runtime/http-host.js"

// Where this process's own master listens, for a worker of the same node (`--layer all`, or
// `--layer web,user`) whose cluster.yml names no `master`: the master may listen on port 0
// (picked by the kernel, as every dev and test node does), so the worker learns the bound
// address here instead of from the file. One per process: a node runs at most one master.
const bound = Deferred.unsafeMake<ListenAddress>(FiberId.none)

export const announceLocalMaster = (address: ListenAddress): Effect.Effect<void> => Effect.asVoid(Deferred.succeed(bound, address))

/** The local master's address once it listens (a worker of a node without a master waits forever: cluster.yml needs `master`). */
export const localMasterAddress: Effect.Effect<ListenAddress> = Deferred.await(bound)

// The website's `/status/` page (role web runs the master in the same process): the master's
// status read in process, as the original's website asked its masternode. Before the master
// has started, or on a node without one, the page says the master is unavailable.
const statusOfMaster = Deferred.unsafeMake<Effect.Effect<ClusterStatus, ClusterUnavailable>>(FiberId.none)

export const announceLocalStatus = (status: Effect.Effect<ClusterStatus, ClusterUnavailable>): Effect.Effect<void> =>
  Effect.asVoid(Deferred.succeed(statusOfMaster, status))

/** The local master's status, or `ClusterUnavailable` when this process runs no master (yet). */
export const localClusterStatus: Effect.Effect<ClusterStatus, ClusterUnavailable> = Effect.flatMap(Deferred.poll(statusOfMaster), (found) =>
  found._tag === "None" ? Effect.fail(new ClusterUnavailable({ message: "the cluster master of this node is not running" })) : Effect.flatten(found.value)
)
