import { Schema } from "effect"
import { loadProfile } from "../../runtime/config.js"
import { HostPort } from "../../runtime/profiles.js"

// `sso.yml` (the original's `presencesync-sso.yml` plus what it lacked: where it listens, who
// may ask, and how old a view may be before it is not trusted).

const Seconds = Schema.Number.pipe(Schema.greaterThan(0), Schema.lessThanOrEqualTo(3600)).annotations({
  description: "a number of seconds in (0, 3600]"
})

export const SsoProfile = Schema.Struct({
  /** Where the whois answers nginx's auth subrequests (the original: 20131 behind vhost `sso`). */
  listen: Schema.optionalWith(HostPort, { default: () => ({ host: "127.0.0.1", port: 20131 }) }),
  /** Peer addresses allowed to ask (the local nginx); anyone else gets 403: not an open oracle. */
  allow: Schema.optionalWith(Schema.Array(Schema.NonEmptyString), { default: () => ["127.0.0.1", "::1"] }),
  /** hostname → login, winning over presence (the original's `overrides`). */
  overrides: Schema.optionalWith(Schema.Record({ key: Schema.String, value: Schema.NonEmptyString }), { default: () => ({}) }),
  /**
   * Past this long without any frame (the hub sends progress every 10 s when nothing changes)
   * from the mdb or presence topic, answer `stale` rather than a possibly wrong user.
   */
  stale_after_seconds: Schema.optionalWith(Seconds, { default: () => 30 })
}).annotations({ parseOptions: { onExcessProperty: "error" } })
export type SsoProfile = typeof SsoProfile.Type

export const loadSsoProfile = loadProfile("sso", SsoProfile)
