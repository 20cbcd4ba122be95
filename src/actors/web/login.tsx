import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Clock, Effect } from "effect"
import { verifyCrypt } from "../../runtime/shadow-hash.js"
import { WebDirectory } from "./directory.js"
import { field, formPost, seeOther } from "./guard.js"
import { ErrorBox, htmlResponse, Layout } from "./html.js"
import { newNonce, readSession, SESSION_COOKIE, signSession } from "./session.js"
import { currentViewer, WebSettingsTag } from "./viewer.js"
import { webRouter } from "./web-router.js"

// The login form (for whoever nginx's SSO does not name: a laptop outside the rooms, a test),
// checked against the password hash the udb topic carries; then a signed session cookie.
// The form itself has a CSRF token too (login CSRF): a random value in a short-lived cookie
// that the form must post back (double submit), since there is no session yet to bind it to.

const LOGIN_CSRF_COOKIE = "prolo_login_csrf"

/** Only a local path: `?next=https://evil/` must not turn the login form into an open redirect. */
export const safeNext = (next: string | undefined): string =>
  next !== undefined && next.startsWith("/") && !next.startsWith("//") && !next.includes("\\") ? next : "/"

const LoginPage = (props: { token: string; next: string; login?: string; error?: string }) => (
  <Layout viewer={undefined} title="Log in">
    <ErrorBox message={props.error} />
    <form method="post" action="/login" id="login">
      <input type="hidden" name="_csrf" value={props.token} />
      <input type="hidden" name="next" value={props.next} />
      <p>
        <label>
          login <input name="login" value={props.login ?? ""} autofocus />
        </label>
      </p>
      <p>
        <label>
          password <input name="password" type="password" />
        </label>
      </p>
      <button type="submit">log in</button>
    </form>
  </Layout>
)

const loginForm = (next: string, status = 200, extra: { login?: string; error?: string } = {}) => {
  const token = newNonce()
  return htmlResponse(<LoginPage token={token} next={next} {...extra} />, status).pipe(
    HttpServerResponse.unsafeSetCookie(LOGIN_CSRF_COOKIE, token, { httpOnly: true, sameSite: "strict", path: "/login", maxAge: "1 hour" })
  )
}

export const loginRoutes = HttpLayerRouter.use((router) =>
  Effect.gen(function* () {
    const web = yield* webRouter(router)
    yield* web.get("/login", (request) =>
      Effect.map(Effect.either(currentViewer), (viewer) => {
        const next = safeNext(new URL(request.url, "http://x").searchParams.get("next") ?? undefined)
        return viewer._tag === "Right" && viewer.right !== undefined ? seeOther(next) : loginForm(next)
      })
    )
    yield* web.post("/login", () =>
      Effect.gen(function* () {
        const request = yield* HttpServerRequest.HttpServerRequest
        const settings = yield* WebSettingsTag
        const directory = yield* WebDirectory
        const body = yield* Effect.either(request.urlParamsBody)
        if (body._tag === "Left") return yield* Effect.succeed(loginForm("/", 400, { error: "unreadable form" }))
        const form = body.right
        const next = safeNext(field(form, "next"))
        const expected = request.cookies[LOGIN_CSRF_COOKIE]
        const given = field(form, "_csrf")
        if (expected === undefined || given !== expected) return loginForm(next, 403, { error: "CSRF token missing or wrong: try again" })
        const login = field(form, "login")?.trim() ?? ""
        const password = field(form, "password") ?? ""
        const user = yield* Effect.either(directory.user(login))
        if (user._tag === "Left") return loginForm(next, 503, { login, error: user.left.message })
        const hash = user.right?.passwordHash
        // One message for an unknown login and a wrong password: the form tells nobody who exists.
        if (hash === undefined || !verifyCrypt(password, hash)) {
          yield* Effect.logInfo(`web: failed login for ${JSON.stringify(login)}`)
          return loginForm(next, 401, { login, error: "wrong login or password" })
        }
        const now = yield* Clock.currentTimeMillis
        const cookie = signSession(settings.secret, { login, expires: now + settings.sessionMillis, nonce: newNonce() })
        return seeOther(next).pipe(
          HttpServerResponse.unsafeSetCookie(SESSION_COOKIE, cookie, {
            httpOnly: true,
            sameSite: "lax",
            path: "/",
            secure: settings.secureCookie,
            maxAge: `${Math.round(settings.sessionMillis / 1000)} seconds`
          }),
          HttpServerResponse.expireCookie(LOGIN_CSRF_COOKIE, { path: "/login" })
        )
      })
    )
    yield* web.post("/logout", () =>
      formPost("user", (viewer) =>
        Effect.gen(function* () {
          // Server-side too: the session's nonce is revoked, so a copy of the cookie is refused.
          const request = yield* HttpServerRequest.HttpServerRequest
          const settings = yield* WebSettingsTag
          const now = yield* Clock.currentTimeMillis
          const session = readSession(settings.secret, request.cookies[SESSION_COOKIE] ?? "", now)
          if (viewer.via === "session" && session !== undefined) settings.revoked.revoke(session.nonce, session.expires, now)
          return seeOther("/login").pipe(HttpServerResponse.expireCookie(SESSION_COOKIE, { path: "/" }))
        })
      )
    )
  })
)
