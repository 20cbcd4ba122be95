import { Schema } from "effect"
import { Secret } from "../../runtime/secret.js"

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
  secure_cookie: Schema.optionalWith(Schema.Boolean, { default: () => false })
})
export type WebProfile = typeof WebProfile.Type

/** Node reports IPv4 peers of a dual-stack socket as `::ffff:a.b.c.d`. */
export const plainAddress = (address: string): string => (address.startsWith("::ffff:") ? address.slice(7) : address)
