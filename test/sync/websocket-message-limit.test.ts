import * as HttpServer from "@effect/platform/HttpServer"
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Scope } from "effect"
import { createRequire } from "node:module"
import { WebSocket } from "ws"
import { SyncHub } from "../../src/actors/sync/hub.js"
import { syncRoutes } from "../../src/actors/sync/routes.js"
import { httpHostLayer, runtimeRoutes, serverUrl } from "../../src/runtime/http-host.js"
import { HttpLimitsProfile } from "../../src/runtime/http-limits.js"
import { Metrics } from "../../src/runtime/metrics.js"
import { testSupervision } from "../support/supervision.js"

// A client that has not authenticated yet must not make the node buffer a huge websocket
// message (ws's default limit is 100 MiB): node.yml's `http.websocketMessageBytes` bounds it.

const LIMIT = 64 * 1024

const serve = Effect.gen(function* () {
  const scope = yield* Scope.make()
  yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
  const limits = HttpLimitsProfile.make({ websocketMessageBytes: LIMIT })
  const ctx = yield* Layer.buildWithScope(
    httpHostLayer(Layer.mergeAll(runtimeRoutes, syncRoutes), { listen: { host: "127.0.0.1", port: 0 }, drainTimeout: "1 second", limits }).pipe(
      Layer.provideMerge(SyncHub.layer({ topics: [] })),
      Layer.provide(testSupervision),
      Layer.provide(Metrics.layer)
    ),
    scope
  )
  return serverUrl(Context.get(ctx, HttpServer.HttpServer).address)
})

/** Sends one message on a fresh socket to `path`; the close code the node answered with. */
const closeCodeAfter = (url: string, path: string, message: Buffer) =>
  Effect.async<number>((resume) => {
    const ws = new WebSocket(`${url.replace("http:", "ws:")}${path}`)
    ws.on("open", () => ws.send(message))
    ws.on("message", () => ws.close())
    ws.on("error", () => {})
    ws.on("close", (code) => resume(Effect.succeed(code)))
    return Effect.sync(() => ws.terminate())
  }).pipe(Effect.timeout("20 seconds"))

describe("websocket messages are bounded before any authentication", () => {
  it("the platform's websocket server is the ws package this node limits", () => {
    const ours = createRequire(import.meta.url).resolve("ws")
    const platform = createRequire(createRequire(import.meta.url).resolve("@effect/platform-node/NodeHttpServer")).resolve("ws")
    expect(platform).toBe(ours)
  })

  it.live("over the limit: closed with 1009 on /rpc/sync and /sync/<topic>/follow; under it: not; the node keeps serving", () =>
    Effect.gen(function* () {
      const url = yield* serve
      for (const path of ["/rpc/sync", "/sync/mdb/follow"]) {
        expect(yield* closeCodeAfter(url, path, Buffer.alloc(LIMIT + 1, 0x20))).toBe(1009)
        expect(yield* closeCodeAfter(url, path, Buffer.from("null"))).not.toBe(1009)
      }
      expect(yield* Effect.promise(() => fetch(`${url}/__ping`).then((r) => r.text()))).toBe("pong")
    }).pipe(Effect.scoped)
  )
})
