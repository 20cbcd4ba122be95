import { Duration, Schema } from "effect"
import { loadProfile } from "../../runtime/config.js"
import { DEFAULT_LEASE_SECONDS } from "./service.js"

/** `presence.yml`, shared by the gateway and the user machines. */
export const PresenceProfile = Schema.Struct({
  lease_seconds: Schema.optionalWith(
    Schema.Number.pipe(Schema.greaterThanOrEqualTo(1), Schema.lessThanOrEqualTo(3600)).annotations({
      description: "a number of seconds between 1 and 3600"
    }),
    { default: () => DEFAULT_LEASE_SECONDS }
  )
}).annotations({ parseOptions: { onExcessProperty: "error" } })
export type PresenceProfile = typeof PresenceProfile.Type

export const loadPresenceProfile = loadProfile("presence", PresenceProfile)

export const leaseOf = (profile: PresenceProfile): Duration.Duration => Duration.seconds(profile.lease_seconds)
/** Heartbeats come every fifth of the lease: four may be lost before the lease expires. */
export const heartbeatPeriodOf = (profile: PresenceProfile): Duration.Duration => Duration.millis((profile.lease_seconds * 1000) / 5)
