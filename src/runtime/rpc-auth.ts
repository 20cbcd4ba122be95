import { Headers } from "@effect/platform"
import { type Rpc, RpcMiddleware } from "@effect/rpc"
import { Clock, Context, Effect, Either, Layer, type Redacted, Schema } from "effect"
import { promCounter, type Metrics } from "./metrics.js"
import { signedMessage } from "./rpc-auth-message.js"
import { acceptAt, generate, RejectReason } from "./timeauth.js"

export { canonicalJson, signedMessage } from "./rpc-auth-message.js"

/** Header carrying the time-auth token of one rpc call. */
export const AUTH_HEADER = "x-prolo-auth"

/**
 * Rpc annotation: `Rpc.make(...).annotate(Public, true)` lets the rpc through without a token
 * (the original's `auth_required=False`, e.g. MDB `query`).
 */
export class Public extends Context.Reference<Public>()("prolo/rpc/Public", { defaultValue: () => false }) {}

/** The caller's token was refused; nothing was executed. */
export class Unauthorized extends Schema.TaggedError<Unauthorized>()("Unauthorized", {
  service: Schema.String,
  rpc: Schema.String,
  reason: RejectReason
}) {
  override get message(): string {
    return `${this.service}: ${this.rpc}: unauthorized (${this.reason})`
  }
}

const isPublic = (rpc: Rpc.AnyWithProps): boolean => Context.get(rpc.annotations, Public)

/**
 * Time-auth middleware: every rpc of a group using it needs a token over
 * `<rpc tag>\n<canonical JSON of the encoded payload>` (see rpc-auth-message.ts), except the
 * rpcs annotated `Public`. The secret is per service. A token is accepted once: the same token
 * again within its window is refused as `replayed` (our clients put a nonce in every token).
 */
export class TimeAuth extends RpcMiddleware.Tag<TimeAuth>()("prolo/TimeAuth", {
  failure: Unauthorized,
  requiredForClient: true
}) {}

// Standalone functions, not statics of TimeAuth: any static on an RpcMiddleware.Tag class
// turns the middleware type of every group using it into `any`.

/** Server side for `service`; rejections are counted in `prolo_auth_rejected_total{service,reason}`. */
export const timeAuthServer = (service: string, secret: Redacted.Redacted<string>): Layer.Layer<TimeAuth, never, Metrics> =>
  Layer.effect(
    TimeAuth,
    Effect.gen(function* () {
      const rejected = yield* promCounter({
        name: "prolo_auth_rejected_total",
        help: "RPC calls refused by time-auth, by service and reason",
        labelNames: ["service", "reason"]
      })
      const reject = (rpc: string, reason: RejectReason) =>
        Effect.zipRight(
          Effect.sync(() => rejected.inc({ service, reason })),
          Effect.fail(new Unauthorized({ service, rpc, reason }))
        )
      return TimeAuth.of(({ rpc, payload, headers }) => {
        if (isPublic(rpc)) return Effect.void
        const message = signedMessage(rpc, payload)
        if (Either.isLeft(message)) return reject(rpc._tag, "malformed")
        return Effect.flatMap(Clock.currentTimeMillis, (ms) => {
          const reason = acceptAt(headers[AUTH_HEADER], secret, message.right, Math.floor(ms / 1000))
          return reason === undefined ? Effect.void : reject(rpc._tag, reason)
        })
      })
    })
  )

/** Client side: signs every non-public call with `secret`. */
export const timeAuthClient = (secret: Redacted.Redacted<string>): Layer.Layer<RpcMiddleware.ForClient<TimeAuth>> =>
  RpcMiddleware.layerClient(TimeAuth, ({ rpc, request }) => {
    if (isPublic(rpc)) return Effect.succeed(request)
    // The payload was built by our own code from the rpc's schema: failing to encode it is a bug.
    const message = signedMessage(rpc, request.payload)
    if (Either.isLeft(message)) return Effect.die(message.left)
    return Effect.map(generate(secret, message.right), (token) => ({
      ...request,
      headers: Headers.set(request.headers, AUTH_HEADER, token)
    }))
  })

/** Client side without a secret, for callers that only use public rpcs (others answer `missing`). */
export const timeAuthAnonymous: Layer.Layer<RpcMiddleware.ForClient<TimeAuth>> = RpcMiddleware.layerClient(
  TimeAuth,
  ({ request }) => Effect.succeed(request)
)
