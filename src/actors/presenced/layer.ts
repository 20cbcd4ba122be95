import { Duration, Effect, Layer } from "effect"
import * as os from "node:os"
import { loadProfile } from "../../runtime/config.js"
import { SharedSecretProfile } from "../../runtime/profiles.js"
import { supervisedLoop } from "../../runtime/supervised-loop.js"
import { supervisorGroup } from "../../runtime/supervisor.js"
import { heartbeatPeriodOf, loadPresenceProfile } from "../presence/config.js"
import { describeTarget, presenceTargetOf } from "./client.js"
import { HeartbeatSender, runHeartbeats } from "./heartbeat.js"
import { machineName } from "./hostname.js"
import { SystemSessionsLive } from "./sessions.js"

// presenced on a user machine: heartbeats for every logged-in Prologin user, every fifth of
// `presence.yml` → `lease_seconds`, to the gateway at `presence.yml` → `tcp_connect` over
// TCP+msgpack when given, else over HTTP at `presencesync-pub.yml` → `url` (default
// http://presencesync/). In `/__actors`: `/root/presenced/heartbeat`, a supervised loop.

export const PresencedLayer = Layer.unwrapEffect(
  Effect.gen(function* () {
    const profile = yield* loadPresenceProfile
    const pub = yield* loadProfile("presencesync-pub", SharedSecretProfile)
    const hostname = machineName(os.hostname())
    const period = heartbeatPeriodOf(profile)
    const target = presenceTargetOf(profile, pub)
    const sender = HeartbeatSender.to(target)
    yield* Effect.logInfo(`presenced: heartbeats for ${hostname} every ${Duration.format(period)} to ${describeTarget(target)}`)
    return Layer.scopedDiscard(supervisedLoop("heartbeat", runHeartbeats({ period, hostname }))).pipe(
      Layer.provide(sender),
      Layer.provide(SystemSessionsLive)
    )
  })
).pipe(Layer.provide(supervisorGroup("presenced")))
