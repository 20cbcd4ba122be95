import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import type { Rpc, RpcGroup } from "@effect/rpc"
import * as RpcSerialization from "@effect/rpc/RpcSerialization"
import * as RpcServer from "@effect/rpc/RpcServer"
import { Effect, Either, Layer, type Redacted } from "effect"
import { bodyLimitLayer } from "./http-body.js"
import type { Metrics } from "./metrics.js"
import { type TimeAuth, timeAuthServer } from "./rpc-auth.js"
import { checkRpcBody } from "./rpc-request-check.js"

/** Where a service's rpc group is served on a node: `POST /rpc/<service>`. */
export const rpcPath = (service: string): `/${string}` => `/rpc/${service}`

const SERVICE_NAME = /^[a-z][a-z0-9-]*$/

export interface RpcRouteOptions<Rpcs extends Rpc.Any, EH, RH> {
  /** Names the mount point and the TimeAuth secret's scope, e.g. "mdb". */
  readonly service: string
  /** A group built with `.middleware(TimeAuth)`. */
  readonly group: RpcGroup.RpcGroup<Rpcs>
  /** `group.toLayer(...)`. */
  readonly handlers: Layer.Layer<Rpc.ToHandler<Rpcs>, EH, RH>
  readonly secret: Redacted.Redacted<string>
}

/**
 * `RpcServer.layerProtocolHttpRouter`, with the body checked first (rpc-request-check.ts): a
 * body that is not ndjson rpc messages, or a payload its rpc's schema refuses, is a 400
 * `InvalidRpcRequest` rather than an empty 200 or a protocol Defect. A body that cannot be
 * read at all is left to the rpc server's own handling.
 */
const checkedHttpProtocol = <Rpcs extends Rpc.Any>(service: string, group: RpcGroup.RpcGroup<Rpcs>) =>
  Layer.effect(
    RpcServer.Protocol,
    Effect.gen(function* () {
      const router = yield* HttpLayerRouter.HttpRouter
      const { httpApp, protocol } = yield* RpcServer.makeProtocolWithHttpApp
      const checked = Effect.flatMap(HttpServerRequest.HttpServerRequest, (request) =>
        Effect.matchEffect(request.text, {
          onFailure: () => httpApp,
          onSuccess: (body) =>
            Either.match(checkRpcBody(service, group, body), {
              onLeft: (e) =>
                Effect.succeed(
                  HttpServerResponse.unsafeJson({ _tag: e._tag, service: e.service, line: e.line, rpc: e.rpc, message: e.message }, { status: 400 })
                ),
              onRight: () => httpApp
            })
        })
      )
      yield* router.add("POST", rpcPath(service), checked)
      return protocol
    })
  )

/**
 * Mounts an rpc group on the node's HTTP host at `/rpc/<service>`, behind TimeAuth with the
 * service's secret, in ndjson: responses stream, so streaming rpcs (change feeds) work and a
 * unary call is one short body. Clients: `makeRpcClient` in cli-client.ts.
 */
export const rpcRoute = <Rpcs extends Rpc.Any, EH, RH>(options: RpcRouteOptions<Rpcs, EH, RH>) => {
  if (!SERVICE_NAME.test(options.service)) {
    throw new Error(`rpcRoute: service name ${JSON.stringify(options.service)} must match ${SERVICE_NAME}`)
  }
  return RpcServer.layer(options.group).pipe(
    Layer.provide(checkedHttpProtocol(options.service, options.group)),
    Layer.provide(options.handlers),
    Layer.provide(timeAuthServer(options.service, options.secret)),
    Layer.provide(RpcSerialization.layerNdjson),
    // Bodies bounded before the rpc server reads them (its own read has no limit).
    Layer.provide(bodyLimitLayer((limits) => limits.rpcBodyBytes))
  ) satisfies Layer.Layer<never, EH, HttpLayerRouter.HttpRouter | Metrics | RH | Rpc.Context<Rpcs> | Exclude<Rpc.Middleware<Rpcs>, TimeAuth>>
}
