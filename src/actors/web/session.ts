import { Redacted } from "effect"
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto"

// The session cookie and the CSRF tokens, both HMAC-SHA256 under `web.yml: session_secret`.
//
// Cookie value: `<login>.<expiry ms>.<nonce>.<mac>`; the nonce makes every login a new session
// (its CSRF token differs from the last one's). The CSRF token of a page is bound to the
// session (the cookie's nonce) so a token copied from another session, or forged without the
// secret, is refused; SSO users have no cookie: their token is bound to the login and the day.

export const SESSION_COOKIE = "prolo_session"

export interface Session {
  readonly login: string
  readonly expires: number
  readonly nonce: string
}

const mac = (secret: Redacted.Redacted<string>, message: string): string =>
  createHmac("sha256", Redacted.value(secret)).update(message).digest("base64url")

const sameMac = (a: string, b: string): boolean => {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

export const newNonce = (): string => randomBytes(12).toString("base64url")

export const signSession = (secret: Redacted.Redacted<string>, session: Session): string => {
  const body = `${session.login}.${session.expires}.${session.nonce}`
  return `${body}.${mac(secret, `session\n${body}`)}`
}

/** The session a cookie value carries, if its MAC is right and it has not expired at `now`. */
export const readSession = (secret: Redacted.Redacted<string>, value: string, now: number): Session | undefined => {
  const parts = value.split(".")
  if (parts.length !== 4) return undefined
  const [login = "", expiresText = "", nonce = "", given = ""] = parts
  if (!sameMac(given, mac(secret, `session\n${login}.${expiresText}.${nonce}`))) return undefined
  const expires = Number(expiresText)
  if (!Number.isSafeInteger(expires) || expires <= now) return undefined
  return { login, expires, nonce }
}

/** The CSRF token of forms served to `login` in the session (or SSO binding) `binding`. */
export const csrfToken = (secret: Redacted.Redacted<string>, login: string, binding: string): string =>
  mac(secret, `csrf\n${login}\n${binding}`)

export const checkCsrf = (secret: Redacted.Redacted<string>, login: string, binding: string, given: string | undefined): boolean =>
  given !== undefined && sameMac(given, csrfToken(secret, login, binding))
