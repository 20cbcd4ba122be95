import { Either, ParseResult, Schema } from "effect"
import { parseListen } from "./http-host.js"
import { Secret } from "./secret.js"

// Schemas of the sync/RPC secrets profiles (original names: mdbsync-pub.yml, ...).
// Unknown keys are errors here: a typo in a secrets file must not go unnoticed.
const exact = { parseOptions: { onExcessProperty: "error" } } as const

/** `mdbsync-pub`, `mdbsync-sub`, `udb-client-auth`, `udbsync-pub`, `udbsync-sub`, `udbsync-shadow`, `presencesync-pub`, `mdb-server`. */
export const SharedSecretProfile = Schema.Struct({
  url: Schema.optional(Schema.String),
  shared_secret: Secret
}).annotations(exact)
export type SharedSecretProfile = typeof SharedSecretProfile.Type

/** `presencesync-sub` also carries the long-poll timeout in seconds (original default 30). */
export const PresenceSubProfile = Schema.Struct({
  url: Schema.optional(Schema.String),
  shared_secret: Secret,
  timeout: Schema.optionalWith(Schema.Number.pipe(Schema.positive()), { default: () => 30 })
}).annotations(exact)
export type PresenceSubProfile = typeof PresenceSubProfile.Type

/** `HOST:PORT` (`[::1]:20061` for IPv6), decoded to an address; the message names the expected form. */
export const HostPort = Schema.transformOrFail(
  Schema.String,
  Schema.Struct({ host: Schema.String, port: Schema.Number }),
  {
    strict: true,
    decode: (input, _, ast) =>
      Either.match(parseListen(input), {
        onLeft: () => ParseResult.fail(new ParseResult.Type(ast, input, "expected HOST:PORT with a port in 0-65535, e.g. 127.0.0.1:20061")),
        onRight: (address) => ParseResult.succeed(address)
      }),
    encode: (address) => ParseResult.succeed(address.host.includes(":") ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`)
  }
).annotations({ description: "HOST:PORT, e.g. 127.0.0.1:20061" })

