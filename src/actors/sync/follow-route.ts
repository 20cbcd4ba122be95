import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Socket from "@effect/platform/Socket"
import { Deferred, Effect, Either, Exit, Fiber, Option, Queue, Schema, Stream } from "effect"
import {
  FOLLOW_WINDOW,
  FollowMessage,
  FollowRequest,
  type Frame,
  type SubscribeError,
  subscribeMessage
} from "../../protocols/sync.js"
import type { SyncHubService } from "./hub.js"

// The hub side of `GET /sync/<topic>/follow` (wire contract in protocols/sync.ts). The topic
// hub offers the same frame object to every subscriber, so its bytes are cached per object: one
// JSON encoding per batch whatever the number of subscribers.

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
    }
    return bytes
  }
}

const failureBytes = (error: SubscribeError): Uint8Array =>
  encoder.encode(JSON.stringify(encodeMessage({ _tag: "Failure", error })))

const serve = (hub: SyncHubService, topic: string, socket: Socket.Socket, encode: (frame: Frame) => Uint8Array) =>
  Effect.gen(function* () {
    const write = yield* socket.writer
    const opening = yield* Deferred.make<string>()
    const credit = yield* Queue.sliding<void>(1)
    let opened = false
    let acked = 0
    const reader = yield* Effect.fork(
      socket.runRaw((data) => {
        const text = typeof data === "string" ? data : decoder.decode(data)
        if (!opened) {
          opened = true
          Deferred.unsafeDone(opening, Exit.succeed(text))
          return
        }
        const consumed = Number(text)
        if (Number.isSafeInteger(consumed) && consumed > acked) {
          acked = consumed
          Queue.unsafeOffer(credit, undefined)
        }
      })
    )

    const session = Effect.gen(function* () {
      const request = decodeRequest(yield* Deferred.await(opening))
      if (Either.isLeft(request)) {
        return yield* write(new Socket.CloseEvent(1008, "malformed follow request"))
      }
      let sent = 0
      // The common case (credit left) without a generator: this runs per frame per subscriber.
      const send = (bytes: Uint8Array): Effect.Effect<void, Socket.SocketError> => {
        if (sent - acked >= FOLLOW_WINDOW) return Effect.zipRight(Queue.take(credit), Effect.suspend(() => send(bytes)))
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
    // Whichever ends first: the subscription, or the subscriber's connection (which ends it).
    yield* Effect.raceFirst(Effect.ignore(session), Effect.ignore(Fiber.join(reader)))
  }).pipe(Effect.scoped)

/** The route's handler; `encode` is shared by all subscribers of the hub. */
export const followHandler = (hub: SyncHubService, encode: (frame: Frame) => Uint8Array, topic: string) =>
  Effect.gen(function* () {
    const request = yield* HttpServerRequest.HttpServerRequest
    const socket = yield* Effect.orDie(request.upgrade)
    yield* serve(hub, topic, socket, encode)
    return HttpServerResponse.empty()
  })
