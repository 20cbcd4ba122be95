import { Duration, Effect, Layer, type Redacted } from "effect"
import { PRESENCE_LIST_SERVICE, PRESENCE_SERVICE, PresenceListRpcs, PresenceRpcs } from "../../protocols/presence.js"
import { loadProfile } from "../../runtime/config.js"
import { PresenceSubProfile, SharedSecretProfile } from "../../runtime/profiles.js"
import { rpcRoute } from "../../runtime/rpc-route.js"
import { supervisorGroup } from "../../runtime/supervisor.js"
import { RpcTcpServer, rpcTcpServerLayer } from "../../runtime/rpc-tcp.js"
import { DatabaseLive } from "../../store/database.js"
import { inProcessSyncClientOf } from "../sync/in-process-client.js"
import { SyncHub } from "../sync/hub.js"
import { SyncHubLive } from "../sync/layer.js"
import { leaseOf, loadPresenceProfile } from "./config.js"
import { Directory } from "./directory.js"
import { PresenceHandlers, PresenceListHandlers } from "./handlers.js"
import { presenceHttpRoutes } from "./http-compat.js"
import { LeaseStore } from "./lease-store.js"
import { PresencePublisher } from "./publisher.js"
import { Presence } from "./service.js"

// Presence on the gateway, beside the sync hub it publishes to and whose mdb and udb topics it
// follows in process: `/rpc/presence` (pub secret), `/rpc/presence-list` (sub secret) and the
// original endpoints under `/presencesync/`, over the node's database. With `tcp_listen` in
// presence.yml, both rpc groups are also served over TCP+msgpack on that one port (each rpc
// checked with its group's secret): presenced heartbeats use it when given `tcp_connect`.

/** Both rpc groups on one TCP port; logs the bound address (port 0 picks one). */
export const presenceTcpLayer = (options: {
  readonly listen: { readonly host: string; readonly port: number }
  readonly maxInFlight?: number
  readonly pub: Redacted.Redacted<string>
  readonly sub: Redacted.Redacted<string>
}) =>
  Layer.effectDiscard(
    Effect.flatMap(RpcTcpServer, ({ address }) => Effect.logInfo(`presence: rpc over tcp+msgpack on ${address.host}:${address.port}`))
  ).pipe(
    Layer.provide(
      rpcTcpServerLayer({
        service: PRESENCE_SERVICE,
        group: PresenceRpcs.merge(PresenceListRpcs),
        handlers: Layer.merge(PresenceHandlers, PresenceListHandlers),
        secret: options.pub,
        signers: [{ service: PRESENCE_LIST_SERVICE, group: PresenceListRpcs, secret: options.sub }],
        listen: options.listen,
        ...(options.maxInFlight === undefined ? {} : { maxInFlight: options.maxInFlight })
      })
    )
  )

/** How long a login waits for the first mdb/udb snapshot after a start before answering "retry". */
export const DIRECTORY_READY_WAIT = Duration.seconds(5)

/** A follower of the node's own hub (subscriber secrets of mdbsync and udbsync). */
export const inProcessSyncClient = inProcessSyncClientOf(["mdb", "udb"])

/**
 * The routes and the actor; needs the node's `SyncHub` (give the same layer value the sync
 * subsystem uses). In `/__actors`: `/root/presence` with the lease actor `leases`, its `expiry`
 * timer and the directory's followers `follow-mdb` and `follow-udb`.
 */
export const presenceSubsystem = <E, R>(hub: Layer.Layer<SyncHub, E, R>) =>
  Layer.unwrapEffect(
    Effect.gen(function* () {
      const profile = yield* loadPresenceProfile
      const pub = yield* loadProfile("presencesync-pub", SharedSecretProfile)
      const sub = yield* loadProfile("presencesync-sub", PresenceSubProfile)
      return Layer.mergeAll(
        rpcRoute({ service: PRESENCE_SERVICE, group: PresenceRpcs, handlers: PresenceHandlers, secret: pub.shared_secret }),
        rpcRoute({ service: PRESENCE_LIST_SERVICE, group: PresenceListRpcs, handlers: PresenceListHandlers, secret: sub.shared_secret }),
        presenceHttpRoutes({ pub: pub.shared_secret, sub: sub.shared_secret }),
        profile.tcp_listen === undefined
          ? Layer.empty
          : presenceTcpLayer({ listen: profile.tcp_listen, maxInFlight: profile.tcp_max_in_flight, pub: pub.shared_secret, sub: sub.shared_secret })
      ).pipe(Layer.provide(Presence.layer({ leaseMillis: Duration.toMillis(leaseOf(profile)) })))
    })
  ).pipe(
    Layer.provide(Directory.following({ readyWait: DIRECTORY_READY_WAIT })),
    // Everything above runs under `/root/presence`; the hub below is shared with the sync
    // subsystem and keeps its own place in the tree (`/root/sync`).
    Layer.provide(supervisorGroup("presence")),
    Layer.provide(inProcessSyncClient),
    Layer.provide(PresencePublisher.hub),
    Layer.provide(LeaseStore.sql),
    Layer.provide(DatabaseLive),
    Layer.provide(hub)
  )

/** `prolo-node` subsystem (role gw): presence beside the node's one sync hub. */
export const PresenceLayer = presenceSubsystem(SyncHubLive)
