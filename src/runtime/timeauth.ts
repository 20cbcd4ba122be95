import { createHmac, createSecretKey, type KeyObject, timingSafeEqual } from "node:crypto"
import { Clock, Effect, Redacted, Schema } from "effect"

// The original's window (prologin/timeauth.py TOKEN_TIMEOUT), applied both ways:
// unlike the original, a token stamped more than this in the future is refused too.
export const TOKEN_WINDOW_SECONDS = 120

export const RejectReason = Schema.Literal("missing", "malformed", "expired", "future", "bad_signature")
export type RejectReason = typeof RejectReason.Type

export class TokenRejected extends Schema.TaggedError<TokenRejected>()("TokenRejected", {
  reason: RejectReason
}) {
  override get message(): string {
    return `token rejected: ${this.reason}`
  }
}

// The original signs `str(message)`, so an absent message signs the text "None" (sync /poll).
const messageText = (message: string | null | undefined): string => message ?? "None"

// One key object per secret: importing the key is a third of an HMAC's cost on every call.
const keys = new WeakMap<Redacted.Redacted<string>, KeyObject>()
const keyOf = (secret: Redacted.Redacted<string>): KeyObject => {
  let key = keys.get(secret)
  if (key === undefined) {
    key = createSecretKey(Buffer.from(Redacted.value(secret), "utf8"))
    keys.set(secret, key)
  }
  return key
}

// UTF-8: the same bytes as the original's ASCII for every message it could sign.
const mac = (secret: Redacted.Redacted<string>, text: string, seconds: string): Buffer =>
  createHmac("sha256", keyOf(secret)).update(text, "utf8").update(seconds, "utf8").digest()

const nowSeconds = Effect.map(Clock.currentTimeMillis, (ms) => Math.floor(ms / 1000))

/** `"<unix seconds>:<lowercase hex HMAC-SHA256(secret, message + seconds)>"`, stamped with `Clock`. */
export const generate = (
  secret: Redacted.Redacted<string>,
  message: string | null | undefined
): Effect.Effect<string> =>
  Effect.map(nowSeconds, (now) => {
    const seconds = String(now)
    return `${seconds}:${mac(secret, messageText(message), seconds).toString("hex")}`
  })

const SECONDS = /^[0-9]{1,15}$/
const HEX_MAC = /^[0-9a-f]{64}$/

/**
 * Why `token` is refused at `now` (unix seconds), or undefined when it is valid. Time is checked
 * before the signature (as the original does), so a stale token costs no HMAC. The HMAC covers
 * the received text of the seconds part.
 */
export const rejection = (
  token: string | null | undefined,
  secret: Redacted.Redacted<string>,
  message: string | null | undefined,
  now: number
): RejectReason | undefined => {
  if (token === undefined || token === null || token === "") return "missing"
  const colon = token.indexOf(":")
  const seconds = token.slice(0, colon)
  const hex = token.slice(colon + 1)
  if (colon < 0 || !SECONDS.test(seconds) || !HEX_MAC.test(hex)) return "malformed"
  const stamped = Number(seconds)
  if (now - stamped > TOKEN_WINDOW_SECONDS) return "expired"
  if (stamped - now > TOKEN_WINDOW_SECONDS) return "future"
  return timingSafeEqual(mac(secret, messageText(message), seconds), Buffer.from(hex, "hex")) ? undefined : "bad_signature"
}

/** Verifies a token against `Clock`. */
export const check = (
  token: string | null | undefined,
  secret: Redacted.Redacted<string>,
  message: string | null | undefined
): Effect.Effect<void, TokenRejected> =>
  Effect.flatMap(nowSeconds, (now) => {
    const reason = rejection(token, secret, message, now)
    return reason === undefined ? Effect.void : Effect.fail(new TokenRejected({ reason }))
  })
