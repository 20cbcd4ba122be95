import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import type * as UrlParams from "@effect/platform/UrlParams"
import { Effect } from "effect"
import { simplePage } from "./html.js"
import type { WebDirectory } from "./directory.js"
import { checkCsrf } from "./session.js"
import { currentViewer, type Viewer, WebSettingsTag } from "./viewer.js"

// Every page and form goes through one of these: the server decides, never the page.
//   - nobody logged in: a GET goes to the login form (and back), anything else is 403;
//   - `staff` pages refuse other users with 403;
//   - every POST carries the viewer's CSRF token (`_csrf`) or is refused with 403, changing nothing.

export type Access = "user" | "staff"
export type PageEnv = HttpServerRequest.HttpServerRequest | WebDirectory | WebSettingsTag
export type Form = ReadonlyArray<readonly [string, string]>

export const field = (form: Form, name: string): string | undefined => form.find(([k]) => k === name)?.[1]

const withViewer = <R>(
  access: Access,
  handle: (viewer: Viewer) => Effect.Effect<HttpServerResponse.HttpServerResponse, never, R>
): Effect.Effect<HttpServerResponse.HttpServerResponse, never, R | PageEnv> =>
  Effect.gen(function* () {
    const request = yield* HttpServerRequest.HttpServerRequest
    const found = yield* Effect.either(currentViewer)
    if (found._tag === "Left") return simplePage(undefined, "Try again", `${found.left.message}`, 503)
    const viewer = found.right
    if (viewer === undefined) {
      return request.method === "GET"
        ? HttpServerResponse.redirect(`/login?next=${encodeURIComponent(request.url)}`, { status: 303 })
        : simplePage(undefined, "Forbidden", "log in first", 403)
    }
    if (access === "staff" && !viewer.staff) return simplePage(viewer, "Forbidden", "this page is for organisers only", 403)
    return yield* handle(viewer)
  })

export const page = <R>(access: Access, handle: (viewer: Viewer) => Effect.Effect<HttpServerResponse.HttpServerResponse, never, R>) =>
  withViewer(access, handle)

/** A form post: the viewer, the CSRF check, then the handler with the decoded fields. */
export const formPost = <R>(
  access: Access,
  handle: (viewer: Viewer, form: Form) => Effect.Effect<HttpServerResponse.HttpServerResponse, never, R>
) =>
  withViewer(access, (viewer) =>
    Effect.gen(function* () {
      const request = yield* HttpServerRequest.HttpServerRequest
      const settings = yield* WebSettingsTag
      const form = yield* Effect.either(request.urlParamsBody)
      if (form._tag === "Left") return simplePage(viewer, "Bad request", "unreadable form body", 400)
      const fields: UrlParams.UrlParams = form.right
      if (!checkCsrf(settings.secret, viewer.login, viewer.binding, field(fields, "_csrf"))) {
        yield* Effect.logWarning(`web: ${request.method} ${request.url} by ${viewer.login} refused: CSRF token missing or wrong`)
        return simplePage(viewer, "Forbidden", "CSRF token missing or wrong: reload the page and try again", 403)
      }
      return yield* handle(viewer, fields)
    })
  )

/** A multipart form post (file uploads): the same checks, with the parsed FormData. */
export const multipartPost = <R>(
  access: Access,
  handle: (viewer: Viewer, form: FormData) => Effect.Effect<HttpServerResponse.HttpServerResponse, never, R>
) =>
  withViewer(access, (viewer) =>
    Effect.gen(function* () {
      const request = yield* HttpServerRequest.HttpServerRequest
      const settings = yield* WebSettingsTag
      const parsed = yield* Effect.either(
        Effect.flatMap(request.arrayBuffer, (body) =>
          Effect.tryPromise(() => new Response(body, { headers: { "content-type": request.headers["content-type"] ?? "" } }).formData())
        )
      )
      if (parsed._tag === "Left") return simplePage(viewer, "Bad request", "unreadable form body (expected multipart/form-data)", 400)
      const token = parsed.right.get("_csrf")
      if (!checkCsrf(settings.secret, viewer.login, viewer.binding, typeof token === "string" ? token : undefined)) {
        yield* Effect.logWarning(`web: ${request.method} ${request.url} by ${viewer.login} refused: CSRF token missing or wrong`)
        return simplePage(viewer, "Forbidden", "CSRF token missing or wrong: reload the page and try again", 403)
      }
      return yield* handle(viewer, parsed.right)
    })
  )

export const seeOther = (location: string) => HttpServerResponse.redirect(location, { status: 303 })
