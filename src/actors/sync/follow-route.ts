import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Socket from "@effect/platform/Socket"
import { Deferred, Effect, Either, Exit, Fiber, FiberSet, Metric, Option, Queue, Schema, Stream } from "effect"
import {
  FOLLOW_WINDOW,
  FollowMessage,
  FollowRequest,
  type Frame,
  type SubscribeError,
  subscribeMessage,
  SyncLagging
} from "../../protocols/sync.js"
import { HttpLimitsRef } from "../../runtime/http-limits.js"
import { jsonTooDeep } from "../../runtime/json-depth.js"
import type { SyncHubService } from "./hub.js"
import { followEncodes, hubMetrics } from "./metrics.js"

// The hub side of `GET /sync/<topic>/follow` (wire contract in protocols/sync.ts). The topic
// hub offers the same frame object to every subscriber (the same shaped object to every
// subscriber of one audience, hub.ts), so its bytes are cached per object: one JSON encoding per
// batch and audience whatever the number of subscribers.

const encoder = new TextEncoder()
const decoder = new TextDecoder()
const encodeMessage = Schema.encodeSync(FollowMessage)
const decodeRequest = Schema.decodeUnknownEither(Schema.parseJson(FollowRequest))

/** Encodes frames once: shared by every subscriber that is sent the same frame object. */
export const makeFrameEncoder = () => {
  const cache = new WeakMap<Frame, Uint8Array>()
  return (frame: Frame): Uint8Array => {
    let bytes = cache.get(frame)
    if (bytes === undefined) {
      bytes = encoder.encode(JSON.stringify(encodeMessage(frame)))
      cache.set(frame, bytes)
      followEncodes.unsafeUpdate(1, [])
    }
    return bytes
  }
}

const failureBytes = (error: SubscribeError): Uint8Array =>
  encoder.encode(JSON.stringify(encodeMessage({ _tag: "Failure", error })))

/** How long a session stopped by its node waits for the subscriber to answer its close frame. */
const GO_AWAY_GRACE = "1 second"

const serve = (
  hub: SyncHubService,
  topic: string,
  socket: Socket.Socket,
  encode: (frame: Frame) => Uint8Array,
  upgraded: Deferred.Deferred<void>,
  stopping: Effect.Effect<void>,
  maxUnsent: number,
  maxDepth: number
) =>
  Effect.gen(function* () {
    const write = yield* socket.writer
    const opening = yield* Deferred.make<string>()
    const credit = yield* Queue.sliding<void>(1)
    let opened = false
    let sent = 0
    let acked = 0
    // The websocket itself, for its count of bytes sent but not yet taken by the kernel.
    let unsent = () => 0
    // Scoped (not a child of this fiber): it outlives an interruption of the session, so that the
    // session can still say goodbye on the socket it reads.
    const reader = yield* Effect.forkScoped(
      socket.runRaw((data) => {
        const text = typeof data === "string" ? data : decoder.decode(data)
        if (!opened) {
          opened = true
          Deferred.unsafeDone(opening, Exit.succeed(text))
          // Given to the reader's effects by @effect/platform (not in runRaw's type, hence the option).
          return Effect.map(Effect.serviceOption(Socket.WebSocket), Option.map((ws) => {
            unsent = () => ws.bufferedAmount
          }))
        }
        // Credit for frames never sent is no credit: a client announcing "1000000000" once
        // would otherwise be sent everything, read or not (issue 17 item 4).
        const consumed = Math.min(Number(text), sent)
        if (Number.isSafeInteger(consumed) && consumed > acked) {
          acked = consumed
          Queue.unsafeOffer(credit, undefined)
        }
      }, { onOpen: Deferred.succeed(upgraded, undefined) })
    )

    const session = Effect.gen(function* () {
      const first = yield* Deferred.await(opening)
      // A request nested deeper than any follow request is refused unparsed, as malformed.
      const request = decodeRequest(jsonTooDeep(first, maxDepth) === undefined ? first : "")
      if (Either.isLeft(request)) {
        return yield* write(new Socket.CloseEvent(1008, "malformed follow request"))
      }
      // The common case (credit left) without a generator: this runs per frame per subscriber.
      // A peer whose socket does not drain is lagging whatever credit it sends: it could keep
      // acknowledging frames as they are sent without ever reading them.
      const send = (bytes: Uint8Array): Effect.Effect<void, Socket.SocketError | SyncLagging> => {
        if (sent - acked >= FOLLOW_WINDOW) return Effect.zipRight(Queue.take(credit), Effect.suspend(() => send(bytes)))
        if (unsent() > maxUnsent) {
          return Effect.zipRight(
            Metric.increment(hubMetrics(topic).lagging),
            Effect.fail(new SyncLagging({ topic, buffered: sent - acked }))
          )
        }
        sent++
        return write(bytes)
      }
      const { since, token } = request.right
      yield* hub.subscribeSigned(topic, Option.fromNullable(since), token, subscribeMessage(topic)).pipe(
        Stream.runForEach((frame) => send(encode(frame))),
        Effect.catchAll((e) => (e._tag === "SocketError" ? Effect.void : write(failureBytes(e))))
      )
      yield* write(new Socket.CloseEvent(1000))
    })
    // The node is stopping: 1001 "going away" (the subscriber resumes elsewhere or later), then
    // wait, briefly, for its closing handshake. A write on a socket already closed would wait
    // forever, hence the race with the reader's end.
    const goAway = Effect.raceFirst(Effect.ignore(write(new Socket.CloseEvent(1001, "going away"))), Fiber.await(reader)).pipe(
      Effect.zipRight(Fiber.await(reader)),
      Effect.timeout(GO_AWAY_GRACE),
      Effect.ignore
    )
    // Whichever ends first: the subscription, the subscriber's connection (which ends it), or the node.
    yield* Effect.raceAll([Effect.ignore(session), Effect.ignore(Fiber.join(reader)), Effect.zipRight(stopping, goAway)]).pipe(
      Effect.onInterrupt(() => goAway)
    )
  }).pipe(Effect.scoped)

export interface FollowRouteOptions {
  /**
   * Completes when the node starts to stop, before its HTTP server waits for open connections
   * to end: every session then says 1001 at once. Without it, sessions say 1001 when the
   * route's scope closes, which is after that wait.
   */
  readonly stopping?: Effect.Effect<void>
  /** Bytes a subscriber may leave unread on the node before it is detached as lagging (default: node.yml's `http.websocketUnsentBytes`). */
  readonly maxUnsentBytes?: number
}

/**
 * The route's handler, per topic. Sessions belong to the route (they run until the subscriber
 * leaves, the subscription ends, or the node stops, which says 1001 to each), not to the upgrade
 * request: the request ends as soon as the websocket is open, so that neither a subscriber
 * hanging up nor the server stopping interrupts a request that is still running (which the HTTP
 * server reports as a failed request).
 */
export const makeFollowRoute = (hub: SyncHubService, options: FollowRouteOptions = {}) =>
  Effect.gen(function* () {
    const stopping = options.stopping ?? Effect.never
    const limits = yield* HttpLimitsRef
    const maxUnsent = options.maxUnsentBytes ?? limits.websocketUnsentBytes
    const encode = makeFrameEncoder()
    const sessions = yield* FiberSet.make()
    return (topic: string) =>
      Effect.gen(function* () {
        const request = yield* HttpServerRequest.HttpServerRequest
        const socket = yield* Effect.orDie(request.upgrade)
        const upgraded = yield* Deferred.make<void>()
        const session = yield* FiberSet.run(sessions, serve(hub, topic, socket, encode, upgraded, stopping, maxUnsent, limits.maxJsonDepth))
        yield* Effect.raceFirst(Deferred.await(upgraded), Fiber.await(session))
        return HttpServerResponse.empty()
      })
  })
