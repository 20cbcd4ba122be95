import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Effect, type Redacted } from "effect"
import { InvalidPresenceRequest, PresenceUnavailable } from "../../protocols/presence.js"
import { type BodyLimitOptions, bodyLimitFor, boundedBody } from "../../runtime/http-body.js"
import { parseJsonBounded } from "../../runtime/json-depth.js"
import { accept, endpointMessage } from "../../runtime/timeauth.js"
import { Presence, type PresenceService } from "./service.js"

// The original presencesync endpoints, for shells and anything still speaking the webapi form
// protocol: fields `data` (JSON text) and `hmac` (time-auth token; pub secret, sub secret for
// /get_list). Mounted under `/presencesync` on the node's port (the original's own vhost
// `http://presencesync/` maps there).
//
// Unlike the original (whose token signed `data` alone, so that a /login token also logged out),
// a token signs `endpointMessage(path, data)`: `<path>\n<data>` with the path as mounted here,
// e.g. `/presencesync/logout\n{"login": "alice", "hostname": "r01p01"}`; and a token is accepted
// once (the same token again within its 120 s is refused, 403). The wire is the original's:
// the same fields, the same `<seconds>:<hex>` token (or ours, `<seconds>.<nonce>:<hex>`).
//
//   POST /presencesync/login      {"login","hostname"}  200 | 423 + reason
//   POST /presencesync/logout     {"login","hostname"}  200 | 500 + original error text
//   POST /presencesync/heartbeat  {"login","hostname"}  200 | 423 + reason (the original
//                                                        accepted every heartbeat blindly)
//   POST /presencesync/remove_expired  {}               200 (expiry is automatic now)
//   GET  /presencesync/get_list?data={}&hmac=…          200 {"login": "hostname", …}
// Missing field 400, bad token 403 "Invalid token", unreadable data 400, presence unable to
// decide (database down) 503.

export const PRESENCE_HTTP_PREFIX = "/presencesync"

// The original also set reason phrases ("Login refused", "Invalid token"); the Node server
// of @effect/platform always sends the standard phrase, and clients read only status and body.
const text = (status: number, body: string) => HttpServerResponse.text(body, { status })

type Fields = ReadonlyArray<readonly [string, string]>

const signed = (
  path: string,
  fields: Effect.Effect<Fields, unknown, HttpServerRequest.HttpServerRequest>,
  secret: Redacted.Redacted<string>,
  handle: (data: string) => Effect.Effect<HttpServerResponse.HttpServerResponse>
): Effect.Effect<HttpServerResponse.HttpServerResponse, never, HttpServerRequest.HttpServerRequest> =>
  Effect.gen(function* () {
    const form = yield* Effect.either(fields)
    if (form._tag === "Left") return text(400, "unreadable form body")
    // Tornado stripped argument values; tokens and JSON are unaffected by it.
    const field = (name: string) => form.right.find(([k]) => k === name)?.[1]?.trim()
    const token = field("hmac")
    const data = field("data")
    if (token === undefined) return text(400, "Missing argument hmac")
    if (data === undefined) return text(400, "Missing argument data")
    const valid = yield* Effect.either(accept(token, secret, endpointMessage(path, data)))
    if (valid._tag === "Left") {
      yield* Effect.logWarning(`presencesync: invalid token on ${path} (${valid.left.reason})`)
      return text(403, "Invalid token")
    }
    return yield* handle(data)
  })

const association = (data: string, maxDepth: number): { login: string; hostname: string } | string => {
  const parsed = parseJsonBounded(data, maxDepth)
  if (!parsed.ok) return `data is not JSON: ${parsed.message}`
  const value = parsed.value
  if (typeof value !== "object" || value === null || Array.isArray(value)) return 'data must be a JSON object {"login": …, "hostname": …}'
  const { login, hostname } = value as Record<string, unknown>
  if (typeof login !== "string") return "data.login must be a string"
  if (typeof hostname !== "string") return "data.hostname must be a string"
  return { login, hostname }
}

const unavailable = (e: PresenceUnavailable) => Effect.succeed(text(503, e.message))
const invalid = (e: { readonly message: string }) => Effect.succeed(text(400, e.message))

// Handlers run in the request's context, not the layer's: Presence is resolved once, here.
export const presenceHttpRoutes = (secrets: { readonly pub: Redacted.Redacted<string>; readonly sub: Redacted.Redacted<string> }) =>
  HttpLayerRouter.use((router) =>
    Effect.all([Presence, bodyLimitFor((l) => l.formBodyBytes)]).pipe(Effect.flatMap(([p, bounds]) => addRoutes(router, p, secrets, bounds)))
  )

const addRoutes = (
  router: HttpLayerRouter.HttpRouter,
  p: PresenceService,
  secrets: { readonly pub: Redacted.Redacted<string>; readonly sub: Redacted.Redacted<string> },
  bounds: BodyLimitOptions
) => {
  const form = Effect.flatMap(HttpServerRequest.HttpServerRequest, (r) => r.urlParamsBody)
  const query = Effect.map(HttpServerRequest.HttpServerRequest, (r): Fields => [
    ...new URL(r.url, "http://localhost").searchParams.entries()
  ])
  const withAssociation =
    (run: (login: string, hostname: string) => Effect.Effect<HttpServerResponse.HttpServerResponse>) => (data: string) => {
      const a = association(data, bounds.limits.maxJsonDepth)
      return typeof a === "string" ? Effect.succeed(text(400, a)) : run(a.login, a.hostname)
    }
  // A refusal (LoginRefused, HeartbeatRefused, LogoutRefused) answers `refusedStatus` with its message.
  const refusable = (
    op: (login: string, hostname: string) => Effect.Effect<void, { readonly message: string }>,
    refusedStatus: number
  ) =>
    withAssociation((login, hostname) =>
      op(login, hostname).pipe(
        Effect.as(text(200, "")),
        Effect.catchAll((e) =>
          e instanceof PresenceUnavailable
            ? unavailable(e)
            : e instanceof InvalidPresenceRequest
              ? invalid(e)
              : Effect.succeed(text(refusedStatus, e.message))
        )
      )
    )
  const post = (path: string, handle: (data: string) => Effect.Effect<HttpServerResponse.HttpServerResponse>) =>
    router.add("POST", `${PRESENCE_HTTP_PREFIX}${path}`, boundedBody(bounds)(signed(`${PRESENCE_HTTP_PREFIX}${path}`, form, secrets.pub, handle)))
  return Effect.all([
    post("/login", refusable(p.requestLogin, 423)),
    post("/heartbeat", refusable(p.heartbeat, 423)),
    post("/logout", refusable(p.logout, 500)),
    post("/remove_expired", () =>
      p.removeExpired.pipe(Effect.as(text(200, "")), Effect.catchTag("PresenceUnavailable", unavailable))
    ),
    router.add(
      "GET",
      `${PRESENCE_HTTP_PREFIX}/get_list`,
      signed(`${PRESENCE_HTTP_PREFIX}/get_list`, query, secrets.sub, () =>
        p.list.pipe(
          Effect.map((list) => HttpServerResponse.text(JSON.stringify(list), { contentType: "application/json" })),
          Effect.catchTag("PresenceUnavailable", unavailable)
        )
      )
    )
  ], { discard: true })
}
