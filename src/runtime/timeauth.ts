import { createHmac, timingSafeEqual } from "node:crypto"
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

// UTF-8: the same bytes as the original's ASCII for every message it could sign.
const sign = (secret: Redacted.Redacted<string>, text: string, seconds: string): string =>
  createHmac("sha256", Buffer.from(Redacted.value(secret), "utf8"))
    .update(Buffer.from(text + seconds, "utf8"))
    .digest("hex")

const nowSeconds = Effect.map(Clock.currentTimeMillis, (ms) => Math.floor(ms / 1000))

/** `"<unix seconds>:<lowercase hex HMAC-SHA256(secret, message + seconds)>"`, stamped with `Clock`. */
export const generate = (
  secret: Redacted.Redacted<string>,
  message: string | null | undefined
): Effect.Effect<string> =>
  Effect.map(nowSeconds, (now) => {
    const seconds = String(now)
    return `${seconds}:${sign(secret, messageText(message), seconds)}`
  })

const SECONDS = /^[0-9]{1,15}$/
const HEX_MAC = /^[0-9a-f]{64}$/

/**
 * Verifies a token against `Clock`. Time is checked before the signature (as the original
 * does), so a stale token costs no HMAC. The HMAC covers the received text of the seconds part.
 */
export const check = (
  token: string | null | undefined,
  secret: Redacted.Redacted<string>,
  message: string | null | undefined
): Effect.Effect<void, TokenRejected> =>
  Effect.gen(function* () {
    if (token === undefined || token === null || token === "") {
      return yield* new TokenRejected({ reason: "missing" })
    }
    const parts = token.split(":")
    const [seconds, mac] = parts
    if (parts.length !== 2 || seconds === undefined || mac === undefined || !SECONDS.test(seconds) || !HEX_MAC.test(mac)) {
      return yield* new TokenRejected({ reason: "malformed" })
    }
    const now = yield* nowSeconds
    const stamped = Number(seconds)
    if (now - stamped > TOKEN_WINDOW_SECONDS) return yield* new TokenRejected({ reason: "expired" })
    if (stamped - now > TOKEN_WINDOW_SECONDS) return yield* new TokenRejected({ reason: "future" })
    const expected = Buffer.from(sign(secret, messageText(message), seconds), "ascii")
    if (!timingSafeEqual(expected, Buffer.from(mac, "ascii"))) {
      return yield* new TokenRejected({ reason: "bad_signature" })
    }
  })
