import * as HttpServer from "@effect/platform/HttpServer"
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Scope } from "effect"
import { WebSocket } from "ws"
import { SyncHub } from "../../src/actors/sync/hub.js"
import { syncRoutes } from "../../src/actors/sync/routes.js"
import { httpHostLayer, runtimeRoutes, serverUrl } from "../../src/runtime/http-host.js"
import { Metrics } from "../../src/runtime/metrics.js"
import { testSupervision } from "../support/supervision.js"

// Issue 17 item 1, the same class on the websocket rpc route (/rpc/sync): a message that is JSON
// but no well-formed rpc request (a request id that is not a number, a null) must close or
// answer that socket only, never throw where nothing catches it.

const serve = Effect.gen(function* () {
  const scope = yield* Scope.make()
  yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
  const ctx = yield* Layer.buildWithScope(
    httpHostLayer(Layer.mergeAll(runtimeRoutes, syncRoutes), { listen: { host: "127.0.0.1", port: 0 }, drainTimeout: "1 second" }).pipe(
      Layer.provideMerge(SyncHub.layer({ topics: [] })),
      Layer.provide(testSupervision),
      Layer.provide(Metrics.layer)
    ),
    scope
  )
  return serverUrl(Context.get(ctx, HttpServer.HttpServer).address)
})

const exchange = (url: string, message: string) =>
  Effect.async<{ readonly messages: ReadonlyArray<string>; readonly closed: boolean }>((resume) => {
    const messages: Array<string> = []
    const ws = new WebSocket(`${url.replace("http:", "ws:")}/rpc/sync`)
    ws.on("open", () => ws.send(message))
    ws.on("message", (m) => {
      messages.push(String(m))
      ws.close()
    })
    ws.on("error", () => {})
    ws.on("close", () => resume(Effect.succeed({ messages, closed: true })))
    return Effect.sync(() => ws.terminate())
  }).pipe(Effect.timeout("20 seconds"))

describe("rpc over the sync websocket: malformed messages", () => {
  it.live("a bad request id, a null, a bad header list: that socket answered with a defect or closed, the node keeps serving", () =>
    Effect.gen(function* () {
      const url = yield* serve
      for (const message of [
        JSON.stringify({ _tag: "Request", id: "x", tag: "Publish", payload: {}, headers: [] }),
        JSON.stringify({ _tag: "Ack", requestId: "x" }),
        JSON.stringify({ _tag: "Interrupt", requestId: "x" }),
        JSON.stringify({ _tag: "Request", id: "1", tag: "Publish", payload: {}, headers: 5 }),
        "null",
        "[[[[[[[[]]]]]]]]"
      ]) {
        const answer = yield* exchange(url, message)
        expect(answer.closed).toBe(true)
      }
      expect(yield* Effect.promise(() => fetch(`${url}/__ping`).then((r) => r.text()))).toBe("pong")
    }).pipe(Effect.scoped)
  )
})
