import * as NodeSocket from "@effect/platform-node/NodeSocket"
import { RpcClient, RpcSerialization } from "@effect/rpc"
import { Effect, Layer, Option, Schema, type Scope, Stream } from "effect"
import {
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

/**
 * The hub's rpc group over a websocket at `<baseUrl>/rpc/sync`. A websocket (not the http
 * protocol) because its acknowledgements carry the reader's backpressure to the hub, which is
 * what lets the hub notice a subscriber that stopped reading.
 */
export const websocketConnector = (baseUrl: string): SyncConnector =>
  Effect.gen(function* () {
    const context = yield* Layer.build(
      RpcClient.layerProtocolSocket().pipe(
        Layer.provide(NodeSocket.layerWebSocket(syncSocketUrl(baseUrl))),
        Layer.provide(RpcSerialization.layerJson)
      )
    )
    const client = yield* RpcClient.make(SyncRpcs).pipe(Effect.provide(context))
    const transport = (e: { readonly _tag: "RpcClientError" }) => new SyncTransportError({ reason: describe(e) })
    const connection: SyncConnection = {
      subscribe: (request) =>
        client
          .Subscribe(request.since === undefined ? { topic: request.topic, token: request.token } : request)
          .pipe(Stream.catchTag("RpcClientError", (e) => Stream.fail(transport(e)))),
      publish: (request) =>
        client.Publish(request).pipe(
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
