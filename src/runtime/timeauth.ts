import { createHmac, createSecretKey, type KeyObject, randomBytes, timingSafeEqual } from "node:crypto"
import { Clock, Effect, Metric, Redacted, Schema } from "effect"

// The original's window (prologin/timeauth.py TOKEN_TIMEOUT), applied both ways:
// unlike the original, a token stamped more than this in the future is refused too.
export const TOKEN_WINDOW_SECONDS = 120

/**
 * `replayed`: the same token was accepted before within its window; `busy`: the replay cache of
 * the secret is full of live tokens (see `REPLAY_CACHE_CAPACITY`), so nothing new is accepted.
 */
export const RejectReason = Schema.Literal("missing", "malformed", "expired", "future", "bad_signature", "replayed", "busy")
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
const mac = (secret: Redacted.Redacted<string>, text: string, stamp: string): Buffer =>
  createHmac("sha256", keyOf(secret)).update(text, "utf8").update(stamp, "utf8").digest()

const nowSeconds = Effect.map(Clock.currentTimeMillis, (ms) => Math.floor(ms / 1000))

const sign = (secret: Redacted.Redacted<string>, message: string | null | undefined, stamp: string): string =>
  `${stamp}:${mac(secret, messageText(message), stamp).toString("hex")}`

/**
 * The original's token, `"<unix seconds>:<lowercase hex HMAC-SHA256(secret, message + seconds)>"`,
 * stamped with `Clock`. Two tokens for one message within one second are the same text, so the
 * replay cache accepts only the first: our own clients use `generate`.
 */
export const generateOriginal = (secret: Redacted.Redacted<string>, message: string | null | undefined): Effect.Effect<string> =>
  Effect.map(nowSeconds, (now) => sign(secret, message, String(now)))

/**
 * Our token: `"<unix seconds>.<nonce>:<hex HMAC-SHA256(secret, message + "<seconds>.<nonce>")>"`.
 * The HMAC covers the whole stamp text as the original's does, so the verifier is the same; the
 * random nonce makes every token distinct, so repeating a call within a second is not a replay.
 */
export const generate = (secret: Redacted.Redacted<string>, message: string | null | undefined): Effect.Effect<string> =>
  Effect.map(nowSeconds, (now) => sign(secret, message, `${now}.${randomBytes(9).toString("base64url")}`))

// Seconds, optionally followed by our nonce; the original's tokens have the seconds only.
const STAMP = /^([0-9]{1,15})(?:\.[0-9A-Za-z_-]{1,32})?$/
const HEX_MAC = /^[0-9a-f]{64}$/

const parse = (token: string): { readonly stamp: string; readonly seconds: number; readonly hex: string } | undefined => {
  const colon = token.indexOf(":")
  if (colon < 0) return undefined
  const stamp = token.slice(0, colon)
  const hex = token.slice(colon + 1)
  const seconds = STAMP.exec(stamp)?.[1]
  return seconds === undefined || !HEX_MAC.test(hex) ? undefined : { stamp, seconds: Number(seconds), hex }
}

/**
 * Why `token` is refused at `now` (unix seconds), or undefined when it is valid. Time is checked
 * before the signature (as the original does), so a stale token costs no HMAC. The HMAC covers
 * the received text of the stamp. Pure: says nothing of replays (see `accept`).
 */
export const rejection = (
  token: string | null | undefined,
  secret: Redacted.Redacted<string>,
  message: string | null | undefined,
  now: number
): RejectReason | undefined => {
  if (token === undefined || token === null || token === "") return "missing"
  const parsed = parse(token)
  if (parsed === undefined) return "malformed"
  if (now - parsed.seconds > TOKEN_WINDOW_SECONDS) return "expired"
  if (parsed.seconds - now > TOKEN_WINDOW_SECONDS) return "future"
  return timingSafeEqual(mac(secret, messageText(message), parsed.stamp), Buffer.from(parsed.hex, "hex")) ? undefined : "bad_signature"
}

/** Verifies a token against `Clock`, without remembering it (tests and benches; servers use `accept`). */
export const check = (
  token: string | null | undefined,
  secret: Redacted.Redacted<string>,
  message: string | null | undefined
): Effect.Effect<void, TokenRejected> =>
  Effect.flatMap(nowSeconds, (now) => {
    const reason = rejection(token, secret, message, now)
    return reason === undefined ? Effect.void : Effect.fail(new TokenRejected({ reason }))
  })

// ---------------------------------------------------------------------------------------------
// Replays. Every token a server accepts is remembered, per secret, until its window closes
// (stamp + 120 s); the same token again within that time is refused. Only tokens whose
// signature verified are remembered, so filling the cache takes the secret.

/** Live tokens remembered per secret; past it, new tokens are refused (`busy`) rather than forgotten early. */
export const REPLAY_CACHE_CAPACITY = 100_000

export const replaysRefused = Metric.counter("prolo_auth_replays_refused_total", {
  description: "Tokens refused because they had been accepted before within their window (or the replay cache was full)",
  incremental: true
})

export interface ReplayCache {
  /** Token text -> the last second at which it is still valid. Insertion order ~ stamp order. */
  readonly live: Map<string, number>
  lastFullSweep: number
}

const caches = new WeakMap<Redacted.Redacted<string>, ReplayCache>()

/** The cache of one secret: shared by every endpoint checking that secret object. */
export const replayCacheOf = (secret: Redacted.Redacted<string>): ReplayCache => {
  let cache = caches.get(secret)
  if (cache === undefined) {
    cache = { live: new Map(), lastFullSweep: -1 }
    caches.set(secret, cache)
  }
  return cache
}

/**
 * Records `token` (valid until `validUntil`) at `now`; the reason when it cannot be accepted.
 * Expired entries are dropped from the front as time passes (tokens arrive roughly in stamp
 * order); a full sweep runs when the cache is at capacity, at most once a second.
 */
export const remember = (
  cache: ReplayCache,
  token: string,
  validUntil: number,
  now: number,
  capacity: number = REPLAY_CACHE_CAPACITY
): "replayed" | "busy" | undefined => {
  const live = cache.live
  const until = live.get(token)
  if (until !== undefined && until >= now) return "replayed"
  for (const [t, u] of live) {
    if (u >= now) break
    live.delete(t)
  }
  if (live.size >= capacity && cache.lastFullSweep !== now) {
    cache.lastFullSweep = now
    for (const [t, u] of live) if (u < now) live.delete(t)
  }
  if (live.size >= capacity) return "busy"
  live.set(token, validUntil)
  return undefined
}

/**
 * What a server does with a token: `rejection`, then the replay cache of `secret`. A token is
 * accepted once; the same text again within its window is `replayed`.
 */
export const acceptAt = (
  token: string | null | undefined,
  secret: Redacted.Redacted<string>,
  message: string | null | undefined,
  now: number
): RejectReason | undefined => {
  const reason = rejection(token, secret, message, now)
  if (reason !== undefined) return reason
  // `rejection` parsed it: a non-empty string with a stamp.
  const seconds = parse(token as string)!.seconds
  const replay = remember(replayCacheOf(secret), token as string, seconds + TOKEN_WINDOW_SECONDS, now)
  if (replay !== undefined) replaysRefused.unsafeUpdate(1, [])
  return replay
}

/** `acceptAt` against `Clock`. */
export const accept = (
  token: string | null | undefined,
  secret: Redacted.Redacted<string>,
  message: string | null | undefined
): Effect.Effect<void, TokenRejected> =>
  Effect.flatMap(nowSeconds, (now) => {
    const reason = acceptAt(token, secret, message, now)
    return reason === undefined ? Effect.void : Effect.fail(new TokenRejected({ reason }))
  })

/** What a token signs on an endpoint that signs a `data` text: the endpoint, a newline, the text. */
export const endpointMessage = (endpoint: string, data: string | null | undefined): string => `${endpoint}\n${messageText(data)}`
