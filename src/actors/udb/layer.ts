import type * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import { Effect, Layer, type Redacted, Schema } from "effect"
import { UDB_SERVICE, UdbRpcs } from "../../protocols/udb.js"
import { loadProfile } from "../../runtime/config.js"
import type { Metrics } from "../../runtime/metrics.js"
import { SharedSecretProfile } from "../../runtime/profiles.js"
import { rpcRoute } from "../../runtime/rpc-route.js"
import { supervisorGroup } from "../../runtime/supervisor.js"
import { DatabaseLive } from "../../store/database.js"
import { callCompatRoutes } from "./call-compat.js"
import { UdbHandlers } from "./handlers.js"
import * as UdbRepo from "./repo.js"
import * as UdbService from "./service.js"
import { SystemAccounts } from "./system-accounts.js"

/** `udb-server.yml`: where the UDB node's own accounts are (logins of system accounts are refused). */
export const UdbServerProfile = Schema.Struct({
  system_passwd: Schema.optionalWith(Schema.NonEmptyString, { default: () => "/etc/passwd" })
})

/**
 * The UDB's HTTP surface over a repo and the system accounts (tests provide their own).
 * Typed explicitly: @effect/rpc infers `any` requirements for groups with a streaming rpc.
 */
export const udbRoutes = (
  secret: Redacted.Redacted<string>
): Layer.Layer<never, never, HttpLayerRouter.HttpRouter | Metrics | UdbRepo.UdbRepo | SystemAccounts> =>
  Layer.mergeAll(
    rpcRoute({ service: UDB_SERVICE, group: UdbRpcs, handlers: UdbHandlers, secret }),
    callCompatRoutes(secret)
  ).pipe(Layer.provide(UdbService.layer))

/**
 * The UDB subsystem: the `UdbRpcs` group at `/rpc/udb` (public `query`, everything else with
 * `udb-client-auth.yml: shared_secret`) and the original's `/call/query[_private]` under
 * `/udb/call/`. Changes reach subscribers through the `udb` change-log topic of the sync hub.
 * Request/response only: `/root/udb` in `/__actors`, with no child yet.
 */
export const UdbLayer = Layer.unwrapEffect(
  Effect.gen(function* () {
    const { shared_secret } = yield* loadProfile("udb-client-auth", SharedSecretProfile)
    const { system_passwd } = yield* loadProfile("udb-server", UdbServerProfile)
    return udbRoutes(shared_secret).pipe(Layer.provide(UdbRepo.layer), Layer.provide(SystemAccounts.fromFile(system_passwd)))
  })
).pipe(Layer.provide(supervisorGroup("udb")), Layer.provide(DatabaseLive))
