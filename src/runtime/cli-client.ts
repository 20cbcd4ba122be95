import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import type { Rpc, RpcGroup } from "@effect/rpc"
import * as RpcClient from "@effect/rpc/RpcClient"
import * as RpcSerialization from "@effect/rpc/RpcSerialization"
import { Effect, Layer, type Redacted } from "effect"
import { timeAuthAnonymous, timeAuthClient } from "./rpc-auth.js"
import { rpcPath } from "./rpc-route.js"

export interface RpcClientOptions {
  /** The node, e.g. `http://gw:20000` (`prolo --node`). */
  readonly url: string
  /** The mount point on that node, as given to `rpcRoute`. */
  readonly service: string
  /** The service's TimeAuth secret; without one only `Public` rpcs get through. */
  readonly secret?: Redacted.Redacted<string>
}

/** `http://host:port` + `/rpc/<service>`, whatever trailing slashes the operator typed. */
export const rpcUrl = (url: string, service: string): string => `${url.replace(/\/+$/, "")}${rpcPath(service)}`

/**
 * A typed client of the rpc group a node serves with `rpcRoute`, over HTTP+ndjson, signing each
 * call with the service's secret. Scoped: used by `prolo` subcommands and node-to-node calls.
 * Typed errors arrive as their own classes (`Effect.catchTag` works); transport failures are
 * `RpcClientError`.
 */
export const makeRpcClient = <Rpcs extends Rpc.Any>(group: RpcGroup.RpcGroup<Rpcs>, options: RpcClientOptions) =>
  // Built into the caller's scope, like every scoped client (see rpc-tcp.ts).
  Effect.flatMap(
    Layer.build(
      RpcClient.layerProtocolHttp({ url: rpcUrl(options.url, options.service) }).pipe(
        Layer.provide(FetchHttpClient.layer),
        Layer.provide(RpcSerialization.layerNdjson),
        Layer.merge(options.secret === undefined ? timeAuthAnonymous : timeAuthClient(options.secret))
      )
    ),
    (context) => RpcClient.make(group).pipe(Effect.provide(context))
  )
