import { Schema } from "effect"
import { Secret } from "../../runtime/secret.js"

/** `web.yml: concours:`: the contest's rules (the original concours.yml `contest:`). */
export const ConcoursProfile = Schema.Struct({
  /** The content-addressed file store shared with the master (sources, logs, dumps, replays). */
  files_dir: Schema.optionalWith(Schema.NonEmptyString, { default: () => "var/concours-files" }),
  nb_players: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 16)), { default: () => 2 }),
  use_maps: Schema.optionalWith(Schema.Boolean, { default: () => true }),
  fight_only_own_champions: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  /** Largest champion upload (.tgz), bytes. */
  max_upload_bytes: Schema.optionalWith(Schema.Int.pipe(Schema.between(1024, 256 * 1024 * 1024)), { default: () => 4 * 1024 * 1024 }),
  /** Matches one user may launch from the site per minute (the original: 4). */
  matches_per_minute: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 1000)), { default: () => 4 }),
  /** Receives a new map's contents on stdin; non-zero exit refuses it with its stderr. */
  map_validator: Schema.optional(Schema.NonEmptyString),
  map_validator_timeout_seconds: Schema.optionalWith(Schema.Number.pipe(Schema.between(0.1, 60)), { default: () => 2 })
})
export type ConcoursProfile = typeof ConcoursProfile.Type

/**
 * `web.yml`: the website of the `web` role (admin site, later the concours pages).
 *
 * `sso_proxies` lists the addresses of the nginx servers whose `X-SSO-User` header is trusted
 * (nginx's `auth_request` sets it from the sso service and overwrites whatever the client
 * sent). From any other address the header is ignored: anyone could forge it.
 */
export const WebProfile = Schema.Struct({
  sso_proxies: Schema.optionalWith(Schema.Array(Schema.NonEmptyString), { default: () => [] }),
  /** Signs the session cookie and the CSRF tokens; changing it logs everybody out. */
  session_secret: Secret,
  session_hours: Schema.optionalWith(Schema.Number.pipe(Schema.between(0.1, 24 * 14)), { default: () => 12 }),
  /** `Secure` on the session cookie (set it when nginx serves the site over https). */
  secure_cookie: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  concours: Schema.optionalWith(ConcoursProfile, { default: () => Schema.decodeSync(ConcoursProfile)({}) })
})
export type WebProfile = typeof WebProfile.Type

/** Node reports IPv4 peers of a dual-stack socket as `::ffff:a.b.c.d`. */
export const plainAddress = (address: string): string => (address.startsWith("::ffff:") ? address.slice(7) : address)
