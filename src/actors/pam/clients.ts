import { Effect, type Redacted, Scope } from "effect"
import { HfsRpcs } from "../../protocols/hfs.js"
import { MDB_SERVICE, MdbRpcs } from "../../protocols/mdb.js"
import { makeRpcClient } from "../../runtime/cli-client.js"
import { makeRpcTcpClient } from "../../runtime/rpc-tcp.js"
import { makePresenceClient, type PresenceTarget } from "../presenced/client.js"
import type { PamProfile } from "./config.js"

// Who the stages call (presence, MDB, the machine's HFS) and how the clients live.

export interface PamTargets {
  readonly profile: PamProfile
  readonly presence: PresenceTarget
  readonly hfsClient: { readonly shared_secret: Redacted.Redacted<string>; readonly rpc_port: number }
}

const mdbClientOf = (profile: PamProfile) => makeRpcClient(MdbRpcs, { url: profile.mdb_url, service: MDB_SERVICE })
const hfsClientOf = (targets: PamTargets, host: string) =>
  makeRpcTcpClient(HfsRpcs, { host, port: targets.hfsClient.rpc_port, secret: targets.hfsClient.shared_secret })

type PresenceClient = Effect.Effect.Success<ReturnType<typeof makePresenceClient>>
type MdbClient = Effect.Effect.Success<ReturnType<typeof mdbClientOf>>
type HfsClient = Effect.Effect.Success<ReturnType<typeof hfsClientOf>>

/**
 * How the stages reach presence, MDB and an HFS (`hfs<id>`): scoped, so that a client built
 * for one call is closed after it.
 */
export interface PamClients {
  readonly presence: Effect.Effect<PresenceClient, never, Scope.Scope>
  readonly mdb: Effect.Effect<MdbClient, never, Scope.Scope>
  readonly hfs: (host: string) => Effect.Effect<HfsClient, never, Scope.Scope>
}

/** A fresh client per call (prolo-pam in process: it lives for one stage anyway). */
export const perCallClients = (targets: PamTargets): PamClients => ({
  presence: makePresenceClient(targets.presence),
  mdb: mdbClientOf(targets.profile),
  hfs: (host) => hfsClientOf(targets, host)
})

/**
 * Clients that live as long as the current scope (the login helper): built once, connections
 * kept (the TCP ones reconnect by themselves after a drop), so a login pays for neither. An
 * HFS's client is built at its first use: which HFS serves the machine is MDB's to say, per login.
 */
export const longLivedClients = (targets: PamTargets): Effect.Effect<PamClients, never, Scope.Scope> =>
  Effect.gen(function* () {
    const scope = yield* Effect.scope
    const presence = yield* makePresenceClient(targets.presence)
    const mdb = yield* mdbClientOf(targets.profile)
    const hfs = new Map<string, Effect.Effect<HfsClient>>()
    return {
      presence: Effect.succeed(presence),
      mdb: Effect.succeed(mdb),
      hfs: (host) =>
        Effect.suspend(() => {
          let client = hfs.get(host)
          if (client === undefined) hfs.set(host, (client = Effect.runSync(Effect.cached(Scope.extend(hfsClientOf(targets, host), scope)))))
          return client
        })
    }
  })
