import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import { Clock, Context, Effect, Option, type Redacted } from "effect"
import type { Group } from "../../protocols/udb.js"
import { plainAddress } from "./config.js"
import { type DirectoryNotReady, isStaff, WebDirectory } from "./directory.js"
import type { SessionRevocations } from "./session-revocations.js"
import { csrfToken, readSession, SESSION_COOKIE } from "./session.js"

// Who is asking. Two ways in, tried in this order:
//  1. `X-SSO-User`, only when the request comes straight from a configured nginx (`sso_proxies`):
//     nginx's auth_request sets it from the sso service and overwrites what the client sent.
//     From any other address the header is ignored (logged), whatever it says.
//  2. the signed session cookie of the login form.
// Either way the login must be a user the udb topic knows now: a deleted user is logged out.

export interface Viewer {
  readonly login: string
  readonly group: Group
  readonly staff: boolean
  readonly via: "sso" | "session"
  /** The CSRF token every form of this viewer's pages carries. */
  readonly csrf: string
  /** What the CSRF token is bound to (the session's nonce, or the SSO day). */
  readonly binding: string
}

export interface WebSettings {
  readonly secret: Redacted.Redacted<string>
  readonly ssoProxies: ReadonlySet<string>
  readonly sessionMillis: number
  readonly secureCookie: boolean
  /** Sessions ended by a logout (checked on every request). */
  readonly revoked: SessionRevocations
}

export class WebSettingsTag extends Context.Tag("prolo/web/WebSettings")<WebSettingsTag, WebSettings>() {}

const DAY = 86_400_000

export const currentViewer: Effect.Effect<
  Viewer | undefined,
  DirectoryNotReady,
  HttpServerRequest.HttpServerRequest | WebDirectory | WebSettingsTag
> = Effect.gen(function* () {
  const request = yield* HttpServerRequest.HttpServerRequest
  const settings = yield* WebSettingsTag
  const directory = yield* WebDirectory
  const now = yield* Clock.currentTimeMillis
  const viewer = (login: string, via: Viewer["via"], binding: string) =>
    Effect.map(directory.user(login), (user): Viewer | undefined =>
      user === undefined
        ? undefined
        : { login, group: user.group, staff: isStaff(user), via, binding, csrf: csrfToken(settings.secret, login, binding) }
    )
  const sso = request.headers["x-sso-user"]
  if (sso !== undefined && sso !== "") {
    const from = Option.map(request.remoteAddress, plainAddress)
    if (Option.isSome(from) && settings.ssoProxies.has(from.value)) {
      return yield* viewer(sso, "sso", `sso:${Math.floor(now / DAY)}`)
    }
    yield* Effect.logWarning(`web: ignored X-SSO-User ${JSON.stringify(sso)} from ${Option.getOrElse(from, () => "?")} (not a configured sso proxy)`)
  }
  const cookie = request.cookies[SESSION_COOKIE]
  if (cookie === undefined) return undefined
  const session = readSession(settings.secret, cookie, now)
  if (session === undefined || settings.revoked.isRevoked(session.nonce)) return undefined
  return yield* viewer(session.login, "session", session.nonce)
})
