import { Deferred, Effect, FiberId } from "effect"
import type { ListenAddress } from "../../runtime/http-host.js"

// Where this process's own master listens, for a worker of the same node (`--layer all`, or
// `--layer web,user`) whose cluster.yml names no `master`: the master may listen on port 0
// (picked by the kernel, as every dev and test node does), so the worker learns the bound
// address here instead of from the file. One per process: a node runs at most one master.
const bound = Deferred.unsafeMake<ListenAddress>(FiberId.none)

export const announceLocalMaster = (address: ListenAddress): Effect.Effect<void> => Effect.asVoid(Deferred.succeed(bound, address))

/** The local master's address once it listens (a worker of a node without a master waits forever: cluster.yml needs `master`). */
export const localMasterAddress: Effect.Effect<ListenAddress> = Deferred.await(bound)
