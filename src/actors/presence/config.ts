import { Duration, Schema } from "effect"
import { loadProfile } from "../../runtime/config.js"
import { HostPort } from "../../runtime/profiles.js"
import { DEFAULT_TCP_MAX_IN_FLIGHT } from "../../runtime/rpc-tcp.js"
import { DEFAULT_LEASE_SECONDS } from "./service.js"

/** `presence.yml`, shared by the gateway and the user machines. */
export const PresenceProfile = Schema.Struct({
  lease_seconds: Schema.optionalWith(
    Schema.Number.pipe(Schema.greaterThanOrEqualTo(1), Schema.lessThanOrEqualTo(3600)).annotations({
      description: "a number of seconds between 1 and 3600"
    }),
    { default: () => DEFAULT_LEASE_SECONDS }
  ),
  /**
   * Gateway: where presence also serves its rpc groups over TCP+msgpack (the fast transport,
   * beside HTTP `/rpc/presence`). Absent: HTTP only. Port 0 picks a free port (logged).
   */
  tcp_listen: Schema.optional(HostPort),
  /**
   * Gateway: requests one TCP connection may have in flight; beyond, the connection is not read
   * until answers are written (a client pipelining without reading its answers stays bounded).
   */
  tcp_max_in_flight: Schema.optionalWith(
    Schema.Int.pipe(Schema.between(1, 4096)).annotations({ description: "an integer between 1 and 4096" }),
    { default: () => DEFAULT_TCP_MAX_IN_FLIGHT }
  ),
  /** User machines: where presenced sends heartbeats over TCP. Absent: HTTP, at presencesync-pub's `url`. */
  tcp_connect: Schema.optional(HostPort)
}).annotations({ parseOptions: { onExcessProperty: "error" } })
export type PresenceProfile = typeof PresenceProfile.Type

export const loadPresenceProfile = loadProfile("presence", PresenceProfile)

export const leaseOf = (profile: PresenceProfile): Duration.Duration => Duration.seconds(profile.lease_seconds)
/** Heartbeats come every fifth of the lease: four may be lost before the lease expires. */
export const heartbeatPeriodOf = (profile: PresenceProfile): Duration.Duration => Duration.millis((profile.lease_seconds * 1000) / 5)
