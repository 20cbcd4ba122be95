import * as HttpServer from "@effect/platform/HttpServer"
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Layer, Redacted, Stream } from "effect"
import { ActorTree } from "../../src/runtime/actor-tree.js"
import { makeRpcClient, rpcUrl } from "../../src/runtime/cli-client.js"
import { httpHostLayer, runtimeRoutes, serverUrl } from "../../src/runtime/http-host.js"
import { Metrics } from "../../src/runtime/metrics.js"
import { rpcRoute } from "../../src/runtime/rpc-route.js"
import { EchoRpcs, echoHandlers } from "./rpc-echo-group.js"

const secret = Redacted.make("echo-secret")

const Host = httpHostLayer(
  Layer.merge(runtimeRoutes, rpcRoute({ service: "echo", group: EchoRpcs, handlers: echoHandlers, secret })),
  { listen: { host: "127.0.0.1", port: 0 } }
).pipe(Layer.provide(ActorTree.layer), Layer.provide(Metrics.layer))

const nodeUrl = Effect.map(HttpServer.HttpServer, (s) => serverUrl(s.address))

const clientWith = (key?: string) =>
  Effect.flatMap(nodeUrl, (url) =>
    makeRpcClient(EchoRpcs, key === undefined ? { url, service: "echo" } : { url, service: "echo", secret: Redacted.make(key) })
  )

describe("rpcRoute + makeRpcClient over HTTP", () => {
  it("joins the node URL and the service path whatever the trailing slashes", () => {
    expect(rpcUrl("http://gw:20000", "mdb")).toBe("http://gw:20000/rpc/mdb")
    expect(rpcUrl("http://gw:20000//", "mdb")).toBe("http://gw:20000/rpc/mdb")
  })

  it("refuses a service name that is not a plain path segment", () => {
    expect(() => rpcRoute({ service: "../x", group: EchoRpcs, handlers: echoHandlers, secret })).toThrow(/service name/)
  })

  it.live("serves unary calls, typed errors and streams at /rpc/<service> with the right secret", () =>
    Effect.gen(function* () {
      const client = yield* clientWith("echo-secret")
      expect(yield* client.Echo({ text: "hi" })).toBe("echo: hi")
      expect(yield* client.Lookup({ word: "answer" })).toBe(42)
      const missing = yield* client.Lookup({ word: "nope" }).pipe(
        Effect.catchTag("NoSuchWord", (e) => Effect.succeed(`no ${e.word}`))
      )
      expect(missing).toBe("no nope")
      const counted = yield* Stream.runCollect(client.Count({ upTo: 5 }))
      expect(Chunk.toReadonlyArray(counted)).toEqual([1, 2, 3, 4, 5])
    }).pipe(Effect.scoped, Effect.provide(Host))
  )

  it.live("refuses a wrong or missing secret with Unauthorized, but lets public rpcs through", () =>
    Effect.gen(function* () {
      const wrong = yield* clientWith("not-the-secret")
      const refused = yield* Effect.flip(wrong.Echo({ text: "hi" }))
      expect(refused._tag).toBe("Unauthorized")
      if (refused._tag === "Unauthorized") expect(refused.reason).toBe("bad_signature")
      const anonymous = yield* clientWith()
      const missing = yield* Effect.flip(anonymous.Echo({ text: "hi" }))
      expect(missing._tag === "Unauthorized" && missing.reason).toBe("missing")
      expect(yield* anonymous.Version()).toBe("echo 1")
      expect(yield* wrong.Version()).toBe("echo 1")
    }).pipe(Effect.scoped, Effect.provide(Host))
  )

  // Issue 17 item 7: unparseable ndjson was a 200 with an empty body; a payload its schema
  // refuses was a protocol Defect (a server bug, as a client reports it).
  it.live("a body that is not ndjson rpc messages, or a payload its schema refuses, is a 400 InvalidRpcRequest", () =>
    Effect.gen(function* () {
      const url = rpcUrl(yield* nodeUrl, "echo")
      const post = (body: string) =>
        Effect.promise(async () => {
          const res = await fetch(url, { method: "POST", body, headers: { "content-type": "application/ndjson" } })
          return { status: res.status, body: await res.text() }
        })
      const request = (tag: string, payload: unknown) => `${JSON.stringify({ _tag: "Request", id: "1", tag, payload, headers: [] })}\n`
      const refused = (body: string) =>
        Effect.map(post(body), (r) => {
          expect(r.status, r.body).toBe(400)
          return JSON.parse(r.body) as Record<string, unknown>
        })

      expect(yield* refused("{not json")).toMatchObject({
        _tag: "InvalidRpcRequest",
        service: "echo",
        line: 0,
        message: "the last line has no newline: ndjson messages end with \\n"
      })
      expect(yield* refused("{not json\n")).toMatchObject({ line: 1, message: expect.stringMatching(/^not JSON \(/) })
      expect(yield* refused("")).toMatchObject({ line: 0, message: expect.stringMatching(/^empty body/) })
      expect(yield* refused("[1, 2]\n")).toMatchObject({ line: 1, message: expect.stringMatching(/^not an rpc message/) })
      expect(yield* refused(request("Nope", {}))).toMatchObject({ line: 1, message: 'unknown rpc "Nope" (known: Echo, Lookup, Count, Version)' })
      const schema = yield* refused(request("Version", {}) + request("Count", { upTo: "x" }))
      expect(schema).toMatchObject({ line: 2, rpc: "Count" })
      expect(schema["message"]).toMatch(/^invalid payload for Count: [\s\S]*upTo[\s\S]*Expected number, actual "x"/)
      // a well-formed request still reaches the server (Version is public)
      const ok = yield* post(request("Version", {}))
      expect(ok.status).toBe(200)
      expect(ok.body).toContain("echo 1")
    }).pipe(Effect.provide(Host))
  )

  it.live("answers 404 for a service that is not mounted", () =>
    Effect.gen(function* () {
      const url = yield* nodeUrl
      const res = yield* Effect.promise(() => fetch(rpcUrl(url, "other"), { method: "POST", body: "" }))
      expect(res.status).toBe(404)
    }).pipe(Effect.provide(Host))
  )
})
