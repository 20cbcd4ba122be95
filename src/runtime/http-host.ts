import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpMiddleware from "@effect/platform/HttpMiddleware"
import type { ServeError } from "@effect/platform/HttpServerError"
import * as HttpIncomingMessage from "@effect/platform/HttpIncomingMessage"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { Cause, Context, Deferred, Duration, Effect, Either, FiberId, Layer, Option, Schema } from "effect"
import { createServer, type Server } from "node:http"
import { ActorTree } from "./actor-tree.js"
import { Health } from "./health.js"
import { type BodyAccounting, HttpBodyAccounting, makeBodyAccounting } from "./http-body.js"
import { defaultHttpLimits, type HttpLimits, HttpLimitsRef } from "./http-limits.js"
import { Metrics } from "./metrics.js"
import { limitWebsocketMessages } from "./websocket-limit.js"

// One HTTP server per node. Everything a node serves over HTTP is a route layer that needs
// `HttpLayerRouter.HttpRouter`:
//   - an @effect/rpc group: `rpcRoute({ service, group, handlers, secret })` (rpc-route.ts),
//     mounted at POST /rpc/<service>;
//   - a plain endpoint (iPXE script, nginx auth_request, curl-able query):
//     `HttpLayerRouter.add("GET", "/path", handler)`.
// A subsystem layer merges its routes with its actors; the role map (src/roles.ts) merges the
// subsystems of the node's roles and hands them to `httpHostLayer` with `runtimeRoutes`.

export interface ListenAddress {
  readonly host: string
  readonly port: number
}

export class ListenError extends Schema.TaggedError<ListenError>()("ListenError", {
  input: Schema.String,
  message: Schema.String
}) {}

const HOST_PORT = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:\s[\]]+)):([0-9]{1,5})$/

/** Parses `HOST:PORT` (`[::1]:20000` for IPv6); port 0 asks the kernel for a free one. */
export const parseListen = (input: string): Either.Either<ListenAddress, ListenError> => {
  const match = HOST_PORT.exec(input.trim())
  const host = match?.[1] ?? match?.[2]
  const port = Number(match?.[3])
  if (match === null || host === undefined || !(port >= 0 && port <= 65535)) {
    return Either.left(
      new ListenError({ input, message: `--listen ${JSON.stringify(input)}: expected HOST:PORT with a port in 0-65535, e.g. 0.0.0.0:20000` })
    )
  }
  return Either.right({ host, port })
}

/** `http://HOST:PORT` of a bound server, IPv6 hosts bracketed. */
export const serverUrl = (address: HttpServer.Address): string =>
  address._tag === "UnixAddress"
    ? `unix:${address.path}`
    : `http://${address.hostname.includes(":") ? `[${address.hostname}]` : address.hostname}:${address.port}`

/** The endpoints every node serves whatever its roles: liveness, actor tree, metrics. */
export const runtimeRoutes: Layer.Layer<never, never, HttpLayerRouter.HttpRouter | ActorTree | Metrics> =
  HttpLayerRouter.use((router) =>
    Effect.gen(function* () {
      const tree = yield* ActorTree
      const metrics = yield* Metrics
      const health = yield* Health
      // "pong" while healthy; 503 with one "NAME: REASON" line per degraded subsystem.
      yield* router.add(
        "GET",
        "/__ping",
        Effect.map(health.degraded, (degraded) =>
          degraded.length === 0
            ? HttpServerResponse.text("pong")
            : HttpServerResponse.text(`degraded\n${degraded.map((d) => `${d.name}: ${d.reason}`).join("\n")}\n`, { status: 503 })
        )
      )
      yield* router.add("GET", "/__actors", Effect.map(tree.snapshot, (actors) => HttpServerResponse.unsafeJson(actors)))
      yield* router.add(
        "GET",
        "/metrics",
        Effect.map(metrics.render, ({ body, contentType }) => HttpServerResponse.text(body, { contentType }))
      )
    })
  )

// Without this a failing handler answers 500 and nobody hears of it. Per-request logging stays
// off: /metrics is scraped every few seconds.
const logFailures = HttpMiddleware.make((app) =>
  Effect.tapErrorCause(app, (cause) => {
    if (Cause.isInterruptedOnly(cause)) return Effect.void
    const failure = Cause.failureOption(cause)
    const tag = Option.match(failure, {
      onNone: () => undefined,
      onSome: (e) => (typeof e === "object" && e !== null && "_tag" in e ? String(e._tag) : undefined)
    })
    if (tag === "RouteNotFound") return Effect.void
    return Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
      Option.isNone(failure)
        ? Effect.logError(`http: ${request.method} ${request.url} died`, cause)
        : Effect.logWarning(`http: ${request.method} ${request.url} failed`, cause)
    )
  })
)

// Stops accepting, lets in-flight requests finish, then cuts what is left after `timeout`
// (a long-poll or a streaming subscription would otherwise hold shutdown forever).
const drain = (server: Server, timeout: Duration.DurationInput): Effect.Effect<void> =>
  Effect.async<void>((resume) => {
    if (!server.listening) return resume(Effect.void)
    server.close(() => resume(Effect.void))
    server.closeIdleConnections()
  }).pipe(
    // finalizers run uninterruptibly, and a timeout only ends what it can interrupt
    Effect.interruptible,
    Effect.timeoutTo({
      duration: timeout,
      onSuccess: () => Effect.void,
      onTimeout: () =>
        Effect.logWarning(`http: requests still running after ${Duration.format(timeout)}, closing their connections`).pipe(
          Effect.zipRight(Effect.sync(() => server.closeAllConnections()))
        )
    }),
    Effect.flatten
  )

/**
 * Completes when the node's HTTP server starts draining at shutdown. Long-lived responses
 * (websocket sessions, streamed polls) end themselves then (websockets with 1001 "going away"),
 * so that the drain does not wait its whole timeout for them. Outside a host: never.
 */
export class HttpDraining extends Context.Reference<HttpDraining>()("prolo/HttpDraining", {
  defaultValue: (): Effect.Effect<void> => Effect.never
}) {}

export interface HttpHostOptions {
  readonly listen: ListenAddress
  /** How long shutdown waits for in-flight requests. */
  readonly drainTimeout?: Duration.DurationInput
  /** Body limits and timeouts (node.yml `http:`); default: `defaultHttpLimits`. */
  readonly limits?: HttpLimits
  /** Where the routes count the request bodies they hold; default: a fresh one. */
  readonly accounting?: BodyAccounting
}

/**
 * Serves `routes` on one HTTP server. Shutdown order matters: the server drains first, while
 * the subsystems behind the routes are still up, and only then are their finalizers run
 * (HttpLayerRouter.serve would close the listening socket last, after the subsystems).
 */
export const httpHostLayer = <E, R>(
  routes: Layer.Layer<never, E, R>,
  options: HttpHostOptions
): Layer.Layer<HttpServer.HttpServer, E | ServeError, Exclude<Exclude<R, HttpLayerRouter.HttpRouter>, HttpHostProvides>> =>
  Layer.unwrapEffect(
    Effect.sync(() => {
      const limits = options.limits ?? defaultHttpLimits
      const accounting = options.accounting ?? makeBodyAccounting(limits.bodyBudgetBytes)
      // Node's own timers bound what happens before a route runs: headers trickled byte by byte
      // (headersTimeout), and the whole request on routes that read no body themselves
      // (requestTimeout; the routes that do, cut a slow body with a Clock timeout of the same
      // length, see http-body.ts). Node checks them every connectionsCheckingInterval (30 s by
      // default, which would let a trickle live a minute).
      const requestTimeout = limits.requestTimeoutSeconds * 1000
      const server = createServer({
        requestTimeout: requestTimeout + 1000,
        headersTimeout: Math.min(requestTimeout, 60_000),
        connectionsCheckingInterval: Math.min(5000, Math.max(250, requestTimeout / 4))
      })
      limitWebsocketMessages(server, limits.websocketMessageBytes)
      // The socket is bound before the subsystems behind the routes are up (they may need its
      // address), and Node leaves a request nobody listens for unanswered forever: until the
      // router's handler is attached, say 503 so that a caller retries instead of hanging.
      server.on("request", (_req, res) => {
        if (server.listenerCount("request") > 1) return
        res.writeHead(503, { "content-type": "text/plain", "retry-after": "1", connection: "close" }).end("starting: not serving yet\n")
      })
      const draining = Deferred.unsafeMake<void>(FiberId.none)
      const serve = Layer.scopedDiscard(
        Effect.gen(function* () {
          const router = yield* HttpLayerRouter.HttpRouter
          // A route that reads a body without a limit of its own reads at most defaultBodyBytes
          // (the library's reader fails beyond it instead of growing a string until V8 throws).
          const bounded = HttpMiddleware.make((app) =>
            HttpIncomingMessage.withMaxBodySize(app, Option.some(limits.defaultBodyBytes))
          )
          yield* HttpServer.serveEffect(router.asHttpEffect(), (app) => logFailures(bounded(app)))
          yield* Effect.addFinalizer(() =>
            Effect.zipRight(Deferred.succeed(draining, undefined), drain(server, options.drainTimeout ?? "5 seconds"))
          )
        })
      )
      const bound = NodeHttpServer.layer(() => server, { host: options.listen.host, port: options.listen.port })
      return serve.pipe(
        Layer.provideMerge(
          Layer.provide(
            routes,
            Layer.mergeAll(
              Layer.succeed(HttpDraining, Deferred.await(draining)),
              Layer.succeed(HttpLimitsRef, limits),
              Layer.succeed(HttpBodyAccounting, accounting)
            )
          )
        ),
        Layer.provide(HttpLayerRouter.layer),
        Layer.provideMerge(bound)
      )
    })
  )

/** What the host itself gives to route layers (the bound server, Node's platform services). */
export type HttpHostProvides = Layer.Layer.Success<ReturnType<typeof NodeHttpServer.layer>>
