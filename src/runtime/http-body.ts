import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import { Context, Duration, Effect, Option } from "effect"
import type { IncomingMessage } from "node:http"
import { type HttpLimits, HttpLimitsRef } from "./http-limits.js"
import { jsonTooDeep } from "./json-depth.js"

// Request bodies, read once with a bound (issue 17 item 2). @effect/platform's own reader
// appends chunks to one string without a limit: a 600 MB body ended the process with
// `RangeError: Invalid string length`, and five 100 MB bodies took it to 1.69 GB. Here a
// route's body is refused with 413 before any byte is buffered when its Content-Length is over
// the route's limit, and cut with 413 as soon as the bytes received pass it (chunked bodies);
// the bytes held across all requests of the host are counted and bounded (503 beyond); the
// body must arrive within `requestTimeoutSeconds` (Clock: 408); JSON bodies nested deeper than
// `maxJsonDepth` are refused with 400. The handler then reads the buffered body as usual
// (`request.text`, `urlParamsBody`, the rpc server's own read).

/** What a host's request bodies hold right now: read by /metrics and by tests. */
export interface BodyAccounting {
  /** Bytes of request bodies buffered now, across every request. */
  held: number
  /** The most ever held at once. */
  peak: number
  /** Bodies refused (too large, too slow, too deep, over the budget). */
  refused: number
  readonly budget: number
}

export const makeBodyAccounting = (budget: number): BodyAccounting => ({ held: 0, peak: 0, refused: 0, budget })

/** The host's accounting; routes take it when they are built. Outside a host: one per process. */
export class HttpBodyAccounting extends Context.Reference<HttpBodyAccounting>()("prolo/HttpBodyAccounting", {
  defaultValue: (): BodyAccounting => makeBodyAccounting(64 * 1024 * 1024)
}) {}

interface Refusal {
  readonly status: number
  readonly message: string
}

const refusal = (accounting: BodyAccounting, status: number, message: string): Refusal => {
  accounting.refused++
  return { status, message }
}

// `connection: close`: the rest of a refused body is not read; Node would otherwise drain it
// (all 600 MB of it) to keep the connection.
const refuse = (r: Refusal) =>
  HttpServerResponse.text(`${r.message}\n`, { status: r.status, headers: { connection: "close" } })

/** Reads `incoming` whole, counting each chunk against `limit` and the host's budget. */
const readBody = (incoming: IncomingMessage, limit: number, accounting: BodyAccounting, held: { bytes: number }) =>
  Effect.async<Uint8Array<ArrayBuffer>, Refusal>((resume) => {
    const chunks: Array<Buffer> = []
    const stop = () => {
      incoming.off("data", onData)
      incoming.off("end", onEnd)
      incoming.off("error", onFail)
      incoming.off("close", onFail)
      incoming.pause()
    }
    const fail = (status: number, message: string) => {
      stop()
      resume(Effect.fail(refusal(accounting, status, message)))
    }
    function onData(chunk: Buffer) {
      if (held.bytes + chunk.length > limit) return fail(413, `request body over this route's limit of ${limit} bytes`)
      if (accounting.held + chunk.length > accounting.budget) {
        return fail(503, "the node holds too many request bodies right now, retry later")
      }
      held.bytes += chunk.length
      accounting.held += chunk.length
      accounting.peak = Math.max(accounting.peak, accounting.held)
      chunks.push(chunk)
    }
    function onEnd() {
      stop()
      resume(Effect.succeed(Buffer.concat(chunks, held.bytes)))
    }
    function onFail() {
      fail(400, "request body interrupted")
    }
    incoming.on("data", onData)
    incoming.once("end", onEnd)
    incoming.once("error", onFail)
    incoming.once("close", onFail)
    return Effect.sync(stop)
  })

const BODILESS = new Set(["GET", "HEAD"])

export interface BodyLimitOptions {
  /** This route's limit in bytes. */
  readonly limit: number
  readonly limits: HttpLimits
  readonly accounting: BodyAccounting
}

/**
 * Wraps a route's handler: the body is read here, bounded, before the handler runs; the
 * handler sees a request whose body is those bytes.
 */
export const boundedBody =
  ({ accounting, limit, limits }: BodyLimitOptions) =>
  <E, R>(
    handler: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>
  ): Effect.Effect<HttpServerResponse.HttpServerResponse, E, R | HttpServerRequest.HttpServerRequest> =>
    Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) => {
      const declared = request.headers["content-length"]
      if (declared !== undefined && !(Number(declared) <= limit)) {
        return Effect.succeed(refuse(refusal(accounting, 413, `request body of ${declared} bytes over this route's limit of ${limit} bytes`)))
      }
      // No handler reads the body of these (and a fetch Request cannot carry one): Node discards
      // whatever comes, without buffering it, once the answer is sent.
      if (BODILESS.has(request.method)) return handler
      const held = { bytes: 0 }
      const read = readBody(NodeHttpServerRequest.toIncomingMessage(request), limit, accounting, held).pipe(
        Effect.timeoutFail({
          duration: Duration.seconds(limits.requestTimeoutSeconds),
          onTimeout: () => refusal(accounting, 408, `request body not received within ${limits.requestTimeoutSeconds} s`)
        })
      )
      return Effect.either(read).pipe(
        Effect.flatMap((outcome) => {
          if (outcome._tag === "Left") return Effect.succeed(refuse(outcome.left))
          const body = outcome.right
          const contentType = request.headers["content-type"] ?? ""
          if (contentType.includes("json") && jsonTooDeep(new TextDecoder().decode(body), limits.maxJsonDepth) !== undefined) {
            return Effect.succeed(refuse(refusal(accounting, 400, `JSON body nested deeper than ${limits.maxJsonDepth} levels`)))
          }
          const buffered = HttpServerRequest.fromWeb(
            new Request(`http://localhost${request.url}`, { method: request.method, headers: request.headers, body })
          ).modify({ url: request.url, ...Option.match(request.remoteAddress, { onNone: () => ({}), onSome: (remoteAddress) => ({ remoteAddress }) }) })
          return Effect.provideService(handler, HttpServerRequest.HttpServerRequest, buffered)
        }),
        Effect.ensuring(
          Effect.sync(() => {
            accounting.held -= held.bytes
          })
        )
      )
    })

/**
 * The same as a router middleware layer, for route layers that add their routes themselves
 * (`rpcRoute`): `routes.pipe(Layer.provide(bodyLimitLayer((l) => l.rpcBodyBytes)))`.
 */
export const bodyLimitLayer = (pick: (limits: HttpLimits) => number) =>
  HttpLayerRouter.middleware(
    Effect.gen(function* () {
      const limits = yield* HttpLimitsRef
      const accounting = yield* HttpBodyAccounting
      return boundedBody({ limit: pick(limits), limits, accounting })
    })
  ).layer

/** The options of `boundedBody` for a route built in the current context. */
export const bodyLimitFor = (pick: (limits: HttpLimits) => number): Effect.Effect<BodyLimitOptions> =>
  Effect.gen(function* () {
    const limits = yield* HttpLimitsRef
    return { limit: pick(limits), limits, accounting: yield* HttpBodyAccounting }
  })
