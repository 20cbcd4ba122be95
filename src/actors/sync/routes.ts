import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { RpcSerialization, RpcServer } from "@effect/rpc"
import { Effect, Either, Layer, Option, Stream } from "effect"
import { type Frame, subscribeMessage, SYNC_SERVICE, SyncRpcs } from "../../protocols/sync.js"
import { type FollowRouteOptions, makeFollowRoute } from "./follow-route.js"
import { SyncHub, type SyncHubService } from "./hub.js"
import type { Audience } from "./topics.js"
import { pythonJson } from "../../runtime/python-json.js"
import { HttpDraining } from "../../runtime/http-host.js"
import { bodyLimitFor, boundedBody } from "../../runtime/http-body.js"

// What the hub serves on the node's HTTP port:
//   GET  /rpc/sync                 the SyncRpcs group over a websocket (Publish, Subscribe);
//   GET  /sync/<topic>/follow      Subscribe's fast path (websocket, frames encoded once per batch and audience;
//                                   what `websocketConnector` subscribes with);
//   GET  /sync/<topic>/poll?hmac=  the original `/poll`: newline-delimited update lists,
//                                   snapshot first (token over `subscribeMessage(topic)`, where
//                                   the original signed `None`);
//   POST /sync/<topic>/update      the original `/update` form (`data`, `hmac` over
//                                   `publishMessage(topic, data)`, where the original signed `data`);
//                                   refused (403) on the topics that have a single writer.
// The group is served over a websocket rather than the node's `POST /rpc/<service>` http
// protocol: @effect/rpc's http protocol buffers a stream's output without bound, so a stalled
// subscriber would never fill its hub buffer; websocket acknowledgements carry backpressure.

export const syncRpcHandlers = SyncRpcs.toLayer(
  Effect.map(SyncHub, (hub) =>
    SyncRpcs.of({
      Publish: ({ data, token, topic }) => Effect.map(hub.publishSigned(topic, data, token), (revision) => ({ revision })),
      Subscribe: ({ since, token, topic }) =>
        hub.subscribeSigned(topic, Option.fromNullable(since), token, subscribeMessage(topic))
    })
  )
)

export const syncRpcRoute = RpcServer.layerHttpRouter({
  group: SyncRpcs,
  path: `/rpc/${SYNC_SERVICE}`,
  protocol: "websocket"
}).pipe(Layer.provide(syncRpcHandlers), Layer.provide(RpcSerialization.layerJson))

const text = (status: number, body: string) => HttpServerResponse.text(body, { status })

const encoder = new TextEncoder()

/** One `/poll` line per snapshot or batch, in the original's update-message form. */
export const pollLine = (frame: Frame): Option.Option<string> => {
  switch (frame._tag) {
    case "Snapshot":
      return Option.some(`${pythonJson(frame.records.map((data) => ({ type: "update", data })))}\n`)
    case "Batch":
      return Option.some(`${pythonJson(frame.updates)}\n`)
    case "Progress":
      return Option.none() // the original sent no keep-alive lines; its clients decode every line
  }
}

/**
 * `pollLine` as bytes, once per frame object: every `/poll` subscriber of an audience is handed
 * the same batch object (hub.ts), so a batch is serialised once, not once per subscriber.
 */
const makePollLines = () => {
  const cache = new WeakMap<Frame, Uint8Array>()
  return (frame: Frame): Option.Option<Uint8Array> => {
    const cached = cache.get(frame)
    if (cached !== undefined) return Option.some(cached)
    return Option.map(pollLine(frame), (line) => {
      const bytes = encoder.encode(line)
      cache.set(frame, bytes)
      return bytes
    })
  }
}

const queryParam = (request: HttpServerRequest.HttpServerRequest, name: string): string | undefined => {
  const value = new URL(request.url, "http://localhost").searchParams.get(name)
  return value === null ? undefined : value.trim()
}

const topicParam = Effect.map(HttpRouter.params, (p) => p["topic"] ?? "")

const poll = (
  hub: SyncHubService,
  lines: (frame: Frame) => Option.Option<Uint8Array>,
  stopping: Effect.Effect<void>
) => Effect.gen(function* () {
  const request = yield* HttpServerRequest.HttpServerRequest
  const topic = yield* topicParam
  const token = queryParam(request, "hmac")
  if (token === undefined) return text(400, "Missing argument hmac")
  // Checked once (a token is spent), before streaming so that a refusal is a plain HTTP status.
  const audience = yield* hub.authorize(topic, token, subscribeMessage(topic)).pipe(
    Effect.map((a): Either.Either<Audience, HttpServerResponse.HttpServerResponse> => Either.right(a)),
    Effect.catchTags({
      SyncUnauthorized: () => Effect.succeed(Either.left(text(403, "Invalid token"))),
      UnknownTopic: (e) => Effect.succeed(Either.left(text(404, e.message)))
    })
  )
  if (Either.isLeft(audience)) return audience.left
  const body = hub.subscribeAs(topic, Option.none(), audience.right).pipe(
    Stream.filterMap(lines),
    // Lagging, hub restart, node stopping: end the response; original clients reconnect on a
    // closed stream.
    Stream.catchAll(() => Stream.empty),
    Stream.interruptWhen(stopping)
  )
  return HttpServerResponse.stream(body, { contentType: "application/json" })
})

const update = (hub: SyncHubService) => Effect.gen(function* () {
  const request = yield* HttpServerRequest.HttpServerRequest
  const topic = yield* topicParam
  const form = yield* Effect.either(request.urlParamsBody)
  if (form._tag === "Left") return text(400, `unreadable form body: ${form.left.message}`)
  const field = (name: string) => form.right.find(([k]) => k === name)?.[1]?.trim()
  const data = field("data")
  const token = field("hmac")
  if (token === undefined) return text(400, "Missing argument hmac")
  if (data === undefined) return text(400, "Missing argument data")
  return yield* hub.publishSigned(topic, data, token).pipe(
    Effect.as(text(200, "")),
    Effect.catchTags({
      SyncUnauthorized: () => Effect.succeed(text(403, "Invalid token")),
      UnknownTopic: (e) => Effect.succeed(text(404, e.message)),
      InvalidBatch: (e) => Effect.succeed(text(400, e.message)),
      SyncUnavailable: (e) => Effect.succeed(text(503, e.message)),
      TopicNotWritable: (e) => Effect.succeed(text(403, e.message))
    })
  )
})

/**
 * The plain routes; `options.stopping` (default: the host's `HttpDraining`) tells follow
 * sessions and `/poll` streams that the node is stopping.
 */
export const syncPlainRoutesWith = (
  options: FollowRouteOptions
): Layer.Layer<never, never, HttpLayerRouter.HttpRouter | SyncHub> => HttpLayerRouter.use((router) =>
  Effect.gen(function* () {
    const hub = yield* SyncHub
    const stopping = options.stopping ?? (yield* HttpDraining)
    const follow = yield* makeFollowRoute(hub, { ...options, stopping })
    yield* router.add("GET", "/sync/:topic/follow", Effect.flatMap(topicParam, follow))
    yield* router.add("GET", "/sync/:topic/poll", poll(hub, makePollLines(), stopping))
    yield* router.add("POST", "/sync/:topic/update", boundedBody(yield* bodyLimitFor((l) => l.rpcBodyBytes))(update(hub)))
  })
)

export const syncPlainRoutes = syncPlainRoutesWith({})

/** Everything the hub serves; needs `SyncHub` and the node's router. */
export const syncRoutesWith = (options: FollowRouteOptions) => Layer.mergeAll(syncRpcRoute, syncPlainRoutesWith(options))
export const syncRoutes = syncRoutesWith({})
