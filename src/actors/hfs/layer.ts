import type { FileSystem } from "@effect/platform/FileSystem"
import { Context, Duration, Effect, Layer, type Redacted, Schedule } from "effect"
import { HFS_SERVICE, HFS_STATUS_SERVICE, HfsRpcs, HfsStatusRpcs } from "../../protocols/hfs.js"
import { ConfigDir, loadProfile } from "../../runtime/config.js"
import * as path from "node:path"
import { NodeFlags } from "../../runtime/http-host-node.js"
import type { ActorTree } from "../../runtime/actor-tree.js"
import { type ActorSupervisor, supervisorGroup } from "../../runtime/supervisor.js"
import type { Metrics } from "../../runtime/metrics.js"
import { SharedSecretProfile } from "../../runtime/profiles.js"
import { rpcRoute } from "../../runtime/rpc-route.js"
import { RpcTcpServer, rpcTcpServerLayer } from "../../runtime/rpc-tcp.js"
import { DatabaseLive } from "../../store/database.js"
import { makeSyncClient } from "../sync/client.js"
import { inProcessConnector, websocketConnector } from "../sync/connection.js"
import { SyncHub } from "../sync/hub.js"
import { SyncHubLive } from "../sync/layer.js"
import { loadHfsClientProfile, loadHfsServerProfile, loadHfsStatusProfile } from "./config.js"
import { HfsDirectory } from "./directory.js"
import { hfsHandlers, HfsStatusHandlers } from "./handlers.js"
import { Locations } from "./locations.js"
import { Hfs } from "./service.js"

// The home file servers of a node (`--hfs 0,1`): each id on its own address (alias `hfs<id>`
// in MDB) with its rpc port (getHome + the read-only rpcs over TCP+msgpack) and its one NBD
// listener; the node's HTTP port also serves `/rpc/hfs` and `/rpc/hfs-status` (the CLI).
// Role rhfs follows mdb and udb from the gateway's hub; `--layer all` from its own hub.

/** How long a getHome waits for the first mdb/udb snapshot after a start before answering "retry". */
export const DIRECTORY_READY_WAIT = Duration.seconds(5)

/** getHome, the server → server rpcs and the read-only rpcs on HFS `id`'s own address, signed as over HTTP. */
export const rpcPorts = (options: {
  readonly ids: ReadonlyArray<number>
  readonly port: number
  readonly client: Redacted.Redacted<string>
  readonly status: Redacted.Redacted<string>
}) =>
  Layer.scopedDiscard(
    Effect.gen(function* () {
      const hfs = yield* Hfs
      const context = yield* Effect.context<Hfs | Metrics>()
      for (const id of options.ids) {
        yield* Effect.forkScoped(
          Effect.gen(function* () {
            const instance = yield* hfs.instance(id)
            const built = yield* Layer.build(
              rpcTcpServerLayer({
                service: HFS_SERVICE,
                group: HfsRpcs.merge(HfsStatusRpcs),
                handlers: Layer.merge(hfsHandlers(id), HfsStatusHandlers),
                secret: options.client,
                signers: [{ service: HFS_STATUS_SERVICE, group: HfsStatusRpcs, secret: options.status }],
                listen: { host: instance.host, port: options.port }
              })
            )
            const { address } = Context.get(built, RpcTcpServer)
            yield* hfs.setRpcPort(id, address.port)
            yield* Effect.logInfo(`hfs${id}: rpc over tcp+msgpack on ${address.host}:${address.port}`)
            return yield* Effect.never
          }).pipe(
            Effect.scoped,
            Effect.provide(context),
            Effect.tapErrorCause((cause) => Effect.logError(`hfs${id}: cannot open its rpc port; retrying`, cause)),
            Effect.retry(Schedule.exponential("1 second").pipe(Schedule.union(Schedule.spaced("30 seconds")))),
            Effect.ignore
          )
        )
      }
    })
  )

export const hfsSubsystem = <E, R>(directory: Layer.Layer<HfsDirectory, E, R>) =>
  Layer.unwrapEffect(
    Effect.gen(function* () {
      const dir = yield* ConfigDir
      const loaded = yield* loadHfsServerProfile
      // Relative paths are the configuration's, as secret files are.
      const profile = {
        ...loaded,
        export_base: path.resolve(dir, loaded.export_base),
        export_base_contest: path.resolve(dir, loaded.export_base_contest),
        skeleton: path.resolve(dir, loaded.skeleton)
      }
      const client = yield* loadHfsClientProfile
      const status = yield* loadHfsStatusProfile
      const { hfs: ids } = yield* NodeFlags
      return Layer.mergeAll(
        rpcRoute({ service: HFS_SERVICE, group: HfsRpcs, handlers: hfsHandlers(), secret: client.shared_secret }),
        rpcRoute({ service: HFS_STATUS_SERVICE, group: HfsStatusRpcs, handlers: HfsStatusHandlers, secret: status.shared_secret }),
        rpcPorts({ ids, port: profile.rpc_port, client: client.shared_secret, status: status.shared_secret })
      ).pipe(
        Layer.provideMerge(Hfs.layer({ ids, profile, secret: client.shared_secret })),
        Layer.provide(Locations.sql({ contest: profile.contest_enabled }))
      )
    })
  ).pipe(Layer.provide(directory), Layer.provide(supervisorGroup("hfs")), Layer.provide(DatabaseLive))

const subscriberSecrets = Effect.gen(function* () {
  const mdb = yield* loadProfile("mdbsync-sub", SharedSecretProfile)
  const udb = yield* loadProfile("udbsync-sub", SharedSecretProfile)
  return { mdb, udb }
})

/** Role rhfs: mdb and udb from the gateway's hub (mdbsync-sub.yml, udbsync-sub.yml: url and subscriber secret). */
export const remoteDirectory: Layer.Layer<HfsDirectory, unknown, ConfigDir | FileSystem | ActorTree | ActorSupervisor> = Layer.unwrapEffect(
  Effect.map(subscriberSecrets, ({ mdb, udb }) =>
    HfsDirectory.following({
      mdb: makeSyncClient({ connect: websocketConnector(mdb.url ?? "http://mdbsync/"), credentials: () => ({ subscribe: mdb.shared_secret }) }),
      udb: makeSyncClient({ connect: websocketConnector(udb.url ?? "http://udbsync/"), credentials: () => ({ subscribe: udb.shared_secret }) }),
      readyWait: DIRECTORY_READY_WAIT
    })
  )
)

/** `--layer all`: mdb and udb from the node's own hub (the same SyncHubLive value the sync subsystem uses). */
export const localDirectory: Layer.Layer<HfsDirectory, unknown, ConfigDir | FileSystem | Metrics | ActorTree | ActorSupervisor> =
  Layer.unwrapEffect(
    Effect.gen(function* () {
      const { mdb, udb } = yield* subscriberSecrets
      const hub = yield* SyncHub
      const connect = Effect.provideService(inProcessConnector, SyncHub, hub)
      return HfsDirectory.following({
        mdb: makeSyncClient({ connect, credentials: () => ({ subscribe: mdb.shared_secret }) }),
        udb: makeSyncClient({ connect, credentials: () => ({ subscribe: udb.shared_secret }) }),
        readyWait: DIRECTORY_READY_WAIT
      })
    })
  ).pipe(Layer.provide(SyncHubLive))

/** `prolo-node` subsystem, role rhfs. */
export const HfsLayer = hfsSubsystem(remoteDirectory)
/** `prolo-node` subsystem in `--layer all`: HFS 0 beside the gateway's hub and the embedded database. */
export const HfsLocalLayer = hfsSubsystem(localDirectory)
