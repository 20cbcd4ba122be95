import { Effect, Layer, Schema } from "effect"
import { loadProfile } from "../../runtime/config.js"
import { supervisorGroup } from "../../runtime/supervisor.js"
import { DatabaseLive } from "../../store/database.js"
import { RegistrationGate } from "../mdb/registration-gate.js"
import * as MdbService from "../mdb/service.js"
import { netbootRoutes } from "./routes.js"

/** `netboot.yml` (the original's): kernel options after nfsroot=..., and the fallback initrd. */
export const NetbootProfile = Schema.Struct({
  options: Schema.String,
  fallback: Schema.optionalWith(Schema.Boolean, { default: () => true })
}).annotations({ parseOptions: { onExcessProperty: "error" } })

/**
 * netboot on the gateway: the iPXE scripts over HTTP (`/bootstrap`, `/boot/<mac>/`, `/register`)
 * from MDB in process. Request/response only: `/root/netboot` in `/__actors`, no child.
 */
export const NetbootLayer = Layer.unwrapEffect(
  Effect.map(loadProfile("netboot", NetbootProfile), (profile) => netbootRoutes(profile))
).pipe(
  Layer.provide(RegistrationGate.fromProfile),
  Layer.provide(MdbService.layer),
  Layer.provide(supervisorGroup("netboot")),
  Layer.provide(DatabaseLive)
)
