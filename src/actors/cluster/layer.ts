import { Effect, Layer, Schema } from "effect"
import * as path from "node:path"
import { CLUSTER_ADMIN_SERVICE, CLUSTER_SERVICE, CLUSTER_STATUS_SERVICE, ClusterAdminRpcs, ClusterRpcs, ClusterStatusRpcs } from "../../protocols/cluster.js"
import { ConfigDir, configError, loadProfile, profilePath } from "../../runtime/config.js"
import type { NodeServices } from "../../runtime/http-host-node.js"
import { SharedSecretProfile } from "../../runtime/profiles.js"
import { rpcRoute } from "../../runtime/rpc-route.js"
import { RpcTcpServer, rpcTcpServerLayer } from "../../runtime/rpc-tcp.js"
import { supervisedLoop } from "../../runtime/supervised-loop.js"
import { supervisorGroup } from "../../runtime/supervisor.js"
import { DatabaseLive } from "../../store/database.js"
import { FileStore } from "../concours/files.js"
import { ExecutorConfig, type ExecutorConfigInput } from "../worker/config.js"
import type { Executor } from "../worker/executor.js"
import { ExecutorLive } from "../worker/executor-live.js"
import { filesDirOf, loadClusterProfile, masterSettingsOf, type ClusterProfile, workerNameOf } from "./config.js"
import { ClusterAdminHandlers, ClusterHandlers, ClusterStatusHandlers } from "./handlers.js"
import { announceLocalMaster, announceLocalStatus, localMasterAddress } from "./local-master.js"
import { ClusterMaster } from "./master.js"
import { TaskQueue } from "./queue.js"
import { runWorkerClient } from "./worker-client.js"

// The master (role web): the workers' TCP port (`cluster.yml` listen, its secret), and on the
// node's HTTP port `/rpc/cluster-status` (cluster-status.yml: reads only) and
// `/rpc/cluster-admin` (cluster-admin.yml: requeue). In `/__actors`: `/root/cluster-master`
// with the `workers` registry (one WorkerActor per worker host), `matchmaker` and `janitor`.

/** The workers' port; logs the bound address (port 0 picks one). */
const workersPort = (profile: ClusterProfile) =>
  Layer.effectDiscard(
    Effect.flatMap(RpcTcpServer, ({ address }) =>
      Effect.zipRight(Effect.logInfo(`cluster master: workers join on ${address.host}:${address.port} (tcp+msgpack)`), announceLocalMaster(address))
    )
  ).pipe(
    Layer.provide(
      rpcTcpServerLayer({ service: CLUSTER_SERVICE, group: ClusterRpcs, handlers: ClusterHandlers, secret: profile.shared_secret, listen: profile.listen })
    )
  )

export const clusterMasterLayer = Layer.unwrapEffect(
  Effect.gen(function* () {
    const profile = yield* loadClusterProfile
    const status = yield* loadProfile("cluster-status", SharedSecretProfile)
    const admin = yield* loadProfile("cluster-admin", SharedSecretProfile)
    const dir = yield* filesDirOf(profile)
    return Layer.mergeAll(
      workersPort(profile),
      rpcRoute({ service: CLUSTER_STATUS_SERVICE, group: ClusterStatusRpcs, handlers: ClusterStatusHandlers, secret: status.shared_secret }),
      rpcRoute({ service: CLUSTER_ADMIN_SERVICE, group: ClusterAdminRpcs, handlers: ClusterAdminHandlers, secret: admin.shared_secret }),
      // the website's /status/ page, in the same process
      Layer.effectDiscard(Effect.flatMap(ClusterMaster, (master) => announceLocalStatus(master.status)))
    ).pipe(Layer.provide(ClusterMaster.layer(masterSettingsOf(profile))), Layer.provide(FileStore.layer(dir)))
  })
)

/** `prolo-node` subsystem (role web): the master over the node's database. */
export const ClusterMasterLayer: Layer.Layer<never, unknown, NodeServices> = clusterMasterLayer.pipe(
  Layer.provide(supervisorGroup("cluster-master")),
  Layer.provide(TaskQueue.sql),
  Layer.provide(DatabaseLive)
)

/** The worker (role worker): `/root/cluster-worker/connection`, running tasks through `executor`. */
export const clusterWorkerLayer = <E, R>(executor: Layer.Layer<Executor, E, R>) =>
  Layer.scopedDiscard(
    Effect.gen(function* () {
      const profile = yield* loadClusterProfile
      // No `master` in cluster.yml: the master of this node, once it listens.
      const master =
        profile.master ??
        (yield* localMasterAddress.pipe(
          Effect.timeoutTo({ duration: "30 seconds", onSuccess: (a) => Effect.succeed(a), onTimeout: () => Effect.zipRight(Effect.logWarning("cluster worker: cluster.yml names no master and this node runs none yet (set master: HOST:PORT on user machines); waiting"), localMasterAddress) }),
          Effect.flatten
        ))
      yield* supervisedLoop(
        "connection",
        runWorkerClient({
          master,
          secret: profile.shared_secret,
          worker: workerNameOf(profile),
          slots: profile.slots,
          cost: { compile: profile.compile_cost, match: profile.match_cost }
        })
      )
    })
  ).pipe(Layer.provide(executor), Layer.provide(supervisorGroup("cluster-worker")))

// The jails bind paths, so they must be absolute: relative ones in cluster.yml are taken from
// the node's working directory (the checkout for `npm start`). In a command line, an argument
// with a '/' that is not absolute is a relative path; a bare word (`python3`, `-u`) is left alone.
const absolutePaths = (c: ExecutorConfigInput): ExecutorConfigInput => {
  const arg = (a: string) => (a.includes("/") && !path.isAbsolute(a) ? path.resolve(a) : a)
  return {
    ...c,
    ...(c.work_dir === undefined ? {} : { work_dir: path.resolve(c.work_dir) }),
    game: {
      ...c.game,
      server: [arg(c.game.server[0]), ...c.game.server.slice(1).map(arg)],
      client: [arg(c.game.client[0]), ...c.game.client.slice(1).map(arg)],
      rules: path.resolve(c.game.rules),
      ...(c.game.binds === undefined ? {} : { binds: c.game.binds.map((b) => path.resolve(b)) })
    }
  }
}

/** The executor of `cluster.yml`'s `executor` key: the sandbox and the game, as configured. */
const executorOfProfile = Layer.unwrapEffect(
  Effect.gen(function* () {
    const profile = yield* loadClusterProfile
    if (profile.executor === undefined) {
      return yield* configError(profilePath(yield* ConfigDir, "cluster"), "executor", "the worker's sandbox and game settings (see etc/prologin/cluster.yml)", "nothing")
    }
    return ExecutorLive(absolutePaths(Schema.encodeSync(ExecutorConfig)(profile.executor)))
  })
)

/** `prolo-node` subsystem (role worker): the worker, with the live executor. */
export const ClusterWorkerLayer: Layer.Layer<never, unknown, NodeServices> = clusterWorkerLayer(executorOfProfile)
