import * as NodeSocket from "@effect/platform-node/NodeSocket"
import * as Socket from "@effect/platform/Socket"
import { RpcClient, RpcSerialization } from "@effect/rpc"
import { Cause, Effect, Either, Exit, Layer, Mailbox, Option, Schema, Scope, Stream } from "effect"
import {
  FOLLOW_WINDOW,
  FollowMessage,
  followPath,
  type Frame,
  type Position,
  type PublishError,
  type SubscribeError,
  subscribeMessage,
  SyncRpcs
} from "../../protocols/sync.js"
import { SyncHub } from "./hub.js"

// How a sync client reaches a hub. One connection per subscription attempt: a broken stream
// drops its connection and the follower opens a fresh one, so no transport state is reused.

/** The hub could not be reached or the connection broke; the caller retries. */
export class SyncTransportError extends Schema.TaggedError<SyncTransportError>()("SyncTransportError", {
  reason: Schema.String
}) {
  override get message(): string {
    return `sync hub unreachable: ${this.reason}`
  }
}

export interface SubscribeRequest {
  readonly topic: string
  readonly since?: Position
  readonly token: string
}

export interface PublishRequest {
  readonly topic: string
  readonly data: string
  readonly token: string
}

export interface SyncConnection {
  readonly subscribe: (request: SubscribeRequest) => Stream.Stream<Frame, SubscribeError | SyncTransportError>
  readonly publish: (request: PublishRequest) => Effect.Effect<number, PublishError | SyncTransportError>
}

/** Opens a connection that lives as long as the scope. */
export type SyncConnector = Effect.Effect<SyncConnection, SyncTransportError, Scope.Scope>

/** `http://host:port` → `ws://host:port/rpc/sync`. */
export const syncSocketUrl = (baseUrl: string): string => {
  const url = new URL("/rpc/sync", baseUrl)
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:"
  return url.toString()
}

const describe = (e: unknown): string =>
  typeof e === "object" && e !== null && "message" in e && typeof e.message === "string" ? e.message : String(e)

/** `http://host:port` → `ws://host:port/sync/<topic>/follow`. */
export const followSocketUrl = (baseUrl: string, topic: string): string => {
  const url = new URL(followPath(topic), baseUrl)
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:"
  return url.toString()
}

const decoder = new TextDecoder()
const decodeMessage = Schema.decodeUnknownEither(Schema.parseJson(FollowMessage))

/**
 * Subscribe over the hub's follow route. Frames are acknowledged as the consumer pulls them
 * (not as they arrive), so a consumer that stops pulling stops the hub's sends after one window
 * and the hub then detaches it as lagging.
 */
const follow = (baseUrl: string, request: SubscribeRequest): Stream.Stream<Frame, SubscribeError | SyncTransportError> =>
  Stream.unwrapScoped(
    Effect.gen(function* () {
      const socket = yield* Socket.makeWebSocket(followSocketUrl(baseUrl, request.topic)).pipe(
        Effect.provide(NodeSocket.layerWebSocketConstructor)
      )
      const inbox = yield* Mailbox.make<Frame, SubscribeError | SyncTransportError>()
      const write = yield* socket.writer
      // Sent once the socket is open (a write before that would wait forever on a refused one).
      const opening = write(JSON.stringify(request.since === undefined ? { token: request.token } : { since: request.since, token: request.token }))
      yield* socket.runRaw((data) => {
        const message = decodeMessage(typeof data === "string" ? data : decoder.decode(data))
        if (Either.isLeft(message)) {
          inbox.unsafeDone(Exit.fail(new SyncTransportError({ reason: `malformed message from the hub: ${message.left.message}` })))
        } else if (message.right._tag === "Failure") inbox.unsafeDone(Exit.fail(message.right.error))
        else inbox.unsafeOffer(message.right)
      }, { onOpen: Effect.ignore(opening) }).pipe(
        Effect.matchCause({
          onSuccess: () => inbox.unsafeDone(Exit.void),
          onFailure: (cause) => {
            const error = Cause.squash(cause)
            // 1001: the hub's node is stopping; the follower resumes from its revision, as after any break.
            const reason = Socket.SocketCloseError.is(error) && error.code === 1001
              ? "the hub is going away (its node is stopping)"
              : describe(error)
            inbox.unsafeDone(Exit.fail(new SyncTransportError({ reason })))
          }
        }),
        Effect.forkScoped
      )
      let consumed = 0
      let acked = 0
      return Stream.mapChunksEffect(Mailbox.toStream(inbox), (chunk) => {
        consumed += chunk.length
        if (consumed - acked < FOLLOW_WINDOW / 2) return Effect.succeed(chunk)
        acked = consumed
        return Effect.as(Effect.ignore(write(String(consumed))), chunk)
      })
    })
  )

/**
 * Subscribes over the hub's follow route (`<baseUrl>/sync/<topic>/follow`, a websocket whose
 * credit window carries the reader's backpressure to the hub, which is what lets the hub notice
 * a subscriber that stopped reading); publishes over the rpc group at `<baseUrl>/rpc/sync`,
 * connected on the first publish.
 */
export const websocketConnector = (baseUrl: string): SyncConnector =>
  Effect.gen(function* () {
    const scope = yield* Effect.scope
    const rpc = yield* Effect.cached(
      Effect.gen(function* () {
        const context = yield* Layer.build(
          RpcClient.layerProtocolSocket().pipe(
            Layer.provide(NodeSocket.layerWebSocket(syncSocketUrl(baseUrl))),
            Layer.provide(RpcSerialization.layerJson)
          )
        )
        return yield* RpcClient.make(SyncRpcs).pipe(Effect.provide(context))
      }).pipe(Scope.extend(scope))
    )
    const transport = (e: { readonly _tag: "RpcClientError" }) => new SyncTransportError({ reason: describe(e) })
    const connection: SyncConnection = {
      subscribe: (request) => follow(baseUrl, request),
      publish: (request) =>
        Effect.flatMap(rpc, (client) => client.Publish(request)).pipe(
          Effect.map((r) => r.revision),
          Effect.catchTag("RpcClientError", (e) => Effect.fail(transport(e)))
        )
    }
    return connection
  })

/** A connection to a hub in the same process (tests, and `--layer all` followers). */
export const inProcessConnector: Effect.Effect<SyncConnection, never, SyncHub> = Effect.map(SyncHub, (hub) => ({
  subscribe: (request) =>
    hub.subscribeSigned(request.topic, Option.fromNullable(request.since), request.token, subscribeMessage(request.topic)),
  publish: (request) => hub.publishSigned(request.topic, request.data, request.token)
}))
