import * as NodeSocket from "@effect/platform-node/NodeSocket"
import * as NodeSocketServer from "@effect/platform-node/NodeSocketServer"
import type { Rpc, RpcGroup } from "@effect/rpc"
import * as RpcClient from "@effect/rpc/RpcClient"
import * as RpcSerialization from "@effect/rpc/RpcSerialization"
import * as RpcServer from "@effect/rpc/RpcServer"
import { Effect, Layer, type Redacted } from "effect"
import type { ListenAddress } from "./http-host.js"
import { timeAuthClient, timeAuthServer } from "./rpc-auth.js"

// The second transport, for the latency-sensitive pair master <-> workers: one long-lived TCP
// connection per client, msgpack frames, the same TimeAuth tokens as over HTTP (carried in
// each request's headers). Median sequential call: ~0.6 ms, against 4-16 ms over HTTP+ndjson
// on a loaded 2-core box (`npm run bench:rpc`).
// The group and handlers are the same values the HTTP route would take: a service can be
// offered on both transports at once.

export interface RpcTcpServerOptions<Rpcs extends Rpc.Any, EH, RH> {
  readonly service: string
  readonly group: RpcGroup.RpcGroup<Rpcs>
  readonly handlers: Layer.Layer<Rpc.ToHandler<Rpcs>, EH, RH>
  readonly secret: Redacted.Redacted<string>
  /** Its own port, beside the node's HTTP one; port 0 picks a free one (read it from `SocketServer`). */
  readonly listen: ListenAddress
}

/** Serves an rpc group on its own TCP port; outputs the `SocketServer` to learn the bound address. */
export const rpcTcpServerLayer = <Rpcs extends Rpc.Any, EH, RH>(options: RpcTcpServerOptions<Rpcs, EH, RH>) =>
  RpcServer.layer(options.group).pipe(
    Layer.provide(options.handlers),
    Layer.provide(timeAuthServer(options.service, options.secret)),
    Layer.provide(RpcServer.layerProtocolSocketServer),
    Layer.provide(RpcSerialization.layerMsgPack),
    Layer.provideMerge(NodeSocketServer.layer({ host: options.listen.host, port: options.listen.port }))
  )

export interface RpcTcpClientOptions {
  readonly host: string
  readonly port: number
  readonly secret: Redacted.Redacted<string>
}

/**
 * A typed client over one TCP connection, closed with the scope. A dropped connection is
 * reopened on the next call (calls in flight fail with an RpcClientError).
 */
export const makeRpcTcpClient = <Rpcs extends Rpc.Any>(
  group: RpcGroup.RpcGroup<Rpcs>,
  options: RpcTcpClientOptions
) =>
  // Built into the caller's scope: `Effect.provide(layer)` would close the connection as soon
  // as the client is made.
  Effect.flatMap(
    Layer.build(
      RpcClient.layerProtocolSocket({ retryTransientErrors: true }).pipe(
        Layer.provide(NodeSocket.layerNet({ host: options.host, port: options.port })),
        Layer.provide(RpcSerialization.layerMsgPack),
        Layer.merge(timeAuthClient(options.secret))
      )
    ),
    (context) => RpcClient.make(group).pipe(Effect.provide(context))
  )
