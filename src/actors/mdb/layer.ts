import { Effect, Layer } from "effect"
import { MDB_SERVICE, MdbRpcs } from "../../protocols/mdb.js"
import { loadProfile } from "../../runtime/config.js"
import { SharedSecretProfile } from "../../runtime/profiles.js"
import { rpcRoute } from "../../runtime/rpc-route.js"
import { supervisorGroup } from "../../runtime/supervisor.js"
import { DatabaseLive } from "../../store/database.js"
import { callCompatRoutes } from "./call-compat.js"
import { MdbHandlers } from "./handlers.js"
import { RegistrationGate } from "./registration-gate.js"
import * as MdbService from "./service.js"

/**
 * The MDB subsystem: the `MdbRpcs` group (public reads, time-auth writes with the
 * `mdb-server.yml` secret) and the original's `/call/<method>` endpoints (self-registration as
 * `mdb-registration.yml` says), over the node's
 * database (shared by reference with the other subsystems, so built once per node).
 * Request/response only: `/root/mdb` in `/__actors`, with no child yet.
 */
export const MdbLayer = Layer.unwrapEffect(
  Effect.map(loadProfile("mdb-server", SharedSecretProfile), ({ shared_secret }) =>
    Layer.mergeAll(
      rpcRoute({ service: MDB_SERVICE, group: MdbRpcs, handlers: MdbHandlers, secret: shared_secret }),
      callCompatRoutes
    )
  )
).pipe(Layer.provide(RegistrationGate.fromProfile), Layer.provide(MdbService.layer), Layer.provide(supervisorGroup("mdb")), Layer.provide(DatabaseLive))
