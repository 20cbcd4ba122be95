import type * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import type * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import type * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { Effect } from "effect"
import { bodyLimitFor, boundedBody } from "../../runtime/http-body.js"
import type { HttpLimits } from "../../runtime/http-limits.js"
import type { WebDirectory } from "./directory.js"
import type { WebSettingsTag } from "./viewer.js"

// Route handlers run in the request's context, not the layer's: the website's services are
// captured once when the routes are added and given to every handler. POST bodies are read
// bounded (node.yml `http.formBodyBytes` unless the route says otherwise) before the handler.

type Handler<R> = (request: HttpServerRequest.HttpServerRequest) => Effect.Effect<HttpServerResponse.HttpServerResponse, never, R>
type Shared = WebDirectory | WebSettingsTag | HttpServerRequest.HttpServerRequest

export const webRouter = <Extra = never>(router: HttpLayerRouter.HttpRouter) =>
  Effect.gen(function* () {
    const context = yield* Effect.context<WebDirectory | WebSettingsTag | Extra>()
    const formLimit = yield* bodyLimitFor((l) => l.formBodyBytes)
    return {
      get: (path: HttpLayerRouter.PathInput, handle: Handler<Shared | Extra>) =>
        router.add("GET", path, (request) => Effect.provide(handle(request), context)),
      /** No body is read (DELETE /api/champions/ID/). */
      delete: (path: HttpLayerRouter.PathInput, handle: Handler<Shared | Extra>) =>
        router.add("DELETE", path, (request) => Effect.provide(handle(request), context)),
      post: (path: HttpLayerRouter.PathInput, handle: Handler<Shared | Extra>, limit?: (l: HttpLimits) => number) =>
        Effect.flatMap(limit === undefined ? Effect.succeed(formLimit) : bodyLimitFor(limit), (bounds) =>
          router.add("POST", path, (request) => boundedBody(bounds)(Effect.provide(handle(request), context)))
        )
    }
  })
