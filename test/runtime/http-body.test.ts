import * as HttpServer from "@effect/platform/HttpServer"
import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Exit, Fiber, Layer, Redacted, Scope, TestClock } from "effect"
import * as http from "node:http"
import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import { ActorTree } from "../../src/runtime/actor-tree.js"
import { addCallRoutes } from "../../src/runtime/call-compat.js"
import { type BodyAccounting, makeBodyAccounting } from "../../src/runtime/http-body.js"
import { httpHostLayer, runtimeRoutes, serverUrl } from "../../src/runtime/http-host.js"
import { defaultHttpLimits, type HttpLimits } from "../../src/runtime/http-limits.js"
import { Metrics } from "../../src/runtime/metrics.js"
import { rpcRoute } from "../../src/runtime/rpc-route.js"
import { EchoRpcs, echoHandlers } from "./rpc-echo-group.js"

// Issue 17 item 2: one body must never take the node down. Real HTTP on loopback; the server's
// own accounting says what it held.

const KiB = 1024
const limits: HttpLimits = {
  ...defaultHttpLimits,
  callBodyBytes: 8 * KiB,
  rpcBodyBytes: 64 * KiB,
  bodyBudgetBytes: 256 * KiB,
  maxJsonDepth: 64,
  requestTimeoutSeconds: 30
}

const callRoutes = HttpLayerRouter.use((router) =>
  addCallRoutes<{ readonly _tag: "Db"; readonly message: string }>(router, {
    prefix: "/call",
    methods: { echo: (call) => Effect.succeed(call.kwargs) },
    exnTypes: {},
    databaseError: { tag: "Db", exnType: "DbError", log: "database" }
  })
)

const serve = (accounting: BodyAccounting) =>
  Effect.gen(function* () {
    const scope = yield* Scope.make()
    yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
    const ctx = yield* Layer.buildWithScope(
      httpHostLayer(
        Layer.mergeAll(runtimeRoutes, callRoutes, rpcRoute({ service: "echo", group: EchoRpcs, handlers: echoHandlers, secret: Redacted.make("s") })),
        { listen: { host: "127.0.0.1", port: 0 }, drainTimeout: "1 second", limits, accounting }
      ).pipe(Layer.provide(ActorTree.layer), Layer.provide(Metrics.layer)),
      scope
    )
    return serverUrl(Context.get(ctx, HttpServer.HttpServer).address)
  })

interface Answer {
  readonly status: number
  readonly body: string
  /** Bytes of body the client had written when the answer came. */
  readonly written: number
}

/**
 * POSTs `total` bytes in 64 KiB writes (each waits for the socket), stopping as soon as the
 * server answers: a server that reads everything gets everything; one that refuses early, not.
 */
const post = (url: string, path: string, total: number, headers: http.OutgoingHttpHeaders, fill = "x") =>
  Effect.async<Answer, Error>((resume) => {
    let written = 0
    let answered = false
    const req = http.request(`${url}${path}`, { method: "POST", headers, agent: false }, (res) => {
      answered = true
      let body = ""
      res.setEncoding("utf8")
      res.on("data", (c: string) => (body += c))
      res.on("end", () => resume(Effect.succeed({ status: res.statusCode ?? 0, body, written })))
      res.on("error", () => resume(Effect.succeed({ status: res.statusCode ?? 0, body, written })))
    })
    req.on("error", (e) => (answered ? undefined : resume(Effect.fail(e))))
    const chunk = Buffer.alloc(64 * KiB, fill)
    const next = () => {
      if (answered || req.destroyed) return
      if (written >= total) return void req.end()
      const n = Math.min(chunk.length, total - written)
      written += n
      req.write(n === chunk.length ? chunk : chunk.subarray(0, n), next)
    }
    next()
    return Effect.sync(() => req.destroy())
  })

const ping = (url: string) => Effect.promise(() => fetch(`${url}/__ping`).then((r) => r.text()))

describe("request bodies", () => {
  it.live("600 MB announced to /call/query or /rpc/echo: 413 at once, nothing buffered, the node keeps answering", () =>
    Effect.gen(function* () {
      const accounting = makeBodyAccounting(limits.bodyBudgetBytes)
      const url = yield* serve(accounting)
      const big = 600 * 1024 * 1024
      for (const path of ["/call/echo", "/rpc/echo"]) {
        const answer = yield* post(url, path, big, { "content-length": big, "content-type": "application/json" })
        expect(answer.status).toBe(413)
        expect(answer.body).toContain("over this route's limit")
        expect(answer.written).toBeLessThan(big / 10)
      }
      // Chunked: no length announced; counted while it streams, cut just past the limit.
      const chunked = yield* post(url, "/rpc/echo", big, { "transfer-encoding": "chunked", "content-type": "application/ndjson" })
      expect(chunked.status).toBe(413)
      expect(chunked.written).toBeLessThan(big / 10)
      expect(accounting.peak).toBeLessThanOrEqual(limits.rpcBodyBytes)
      expect(accounting.held).toBe(0)
      // A GET saying `content-length: 0` (some clients do) is an ordinary call.
      const get = yield* Effect.async<number>((resume) => {
        const req = http.request(`${url}/call/echo`, { method: "GET", headers: { "content-length": 0 }, agent: false }, (res) => {
          res.resume()
          resume(Effect.succeed(res.statusCode ?? 0))
        })
        req.on("error", () => resume(Effect.succeed(-1)))
        req.end()
      })
      expect(get).toBe(200)
      expect(yield* ping(url)).toBe("pong")
    }).pipe(Effect.scoped)
  )

  it.live("concurrent big bodies: what the node holds stays under its budget, and all of it is given back", () =>
    Effect.gen(function* () {
      const accounting = makeBodyAccounting(limits.bodyBudgetBytes)
      const url = yield* serve(accounting)
      // Eight bodies just under the route's limit (eight of them are twice the budget), and
      // five over it, all at once.
      const under = Array.from({ length: 8 }, () => post(url, "/rpc/echo", 60 * KiB, { "transfer-encoding": "chunked", "content-type": "text/plain" }))
      const over = Array.from({ length: 5 }, () => post(url, "/rpc/echo", 100 * 1024 * 1024, { "transfer-encoding": "chunked" }))
      const answers = yield* Effect.all([...under, ...over], { concurrency: "unbounded" })
      // Bodies within the limit are read whole, then refused as not rpc messages (400).
      for (const a of answers) expect([200, 400, 413, 503]).toContain(a.status)
      expect(answers.slice(8).every((a) => a.status === 413 || a.status === 503)).toBe(true)
      expect(accounting.peak).toBeLessThanOrEqual(limits.bodyBudgetBytes)
      expect(accounting.held).toBe(0)
      expect(yield* ping(url)).toBe("pong")
    }).pipe(Effect.scoped)
  )

  it.live("JSON nested deeper than the bound: 400 before it is parsed", () =>
    Effect.gen(function* () {
      const accounting = makeBodyAccounting(limits.bodyBudgetBytes)
      const url = yield* serve(accounting)
      const deep = (n: number) => `{"kwargs":{"a":${"[".repeat(n)}${"]".repeat(n)}}}`
      const fetchPost = (path: string, body: string, type?: string) =>
        Effect.promise(async () => {
          const res = await fetch(`${url}${path}`, { method: "POST", body, ...(type === undefined ? {} : { headers: { "content-type": type } }) })
          return { status: res.status, body: await res.text() }
        })
      // Within the body limit (8 KiB), 3000 deep.
      const typed = yield* fetchPost("/call/echo", deep(3000), "application/json")
      expect(typed).toMatchObject({ status: 400 })
      expect(typed.body).toContain("nested deeper than 64")
      const untyped = yield* fetchPost("/call/echo", deep(3000))
      expect(untyped.status).toBe(400)
      expect(untyped.body).toContain("nested deeper than 64")
      // Brackets inside strings are text, not nesting.
      expect(yield* fetchPost("/call/echo", `{"kwargs":{"a":"${"[".repeat(3000)}"}}`)).toMatchObject({ status: 200 })
      expect(yield* fetchPost("/call/echo", deep(60))).toMatchObject({ status: 200 })
      const rpc = yield* fetchPost("/rpc/echo", `${"[".repeat(3000)}${"]".repeat(3000)}\n`, "application/ndjson")
      expect(rpc.status).toBe(400)
    }).pipe(Effect.scoped)
  )

  // Clock-tested: the route's body read has a Clock timeout; Node's requestTimeout (real time,
  // requestTimeoutSeconds + 1) stays the backstop for routes that read no body themselves.
  it.scoped("a body trickled byte by byte is cut with 408 once requestTimeoutSeconds have passed", () =>
    Effect.gen(function* () {
      const accounting = makeBodyAccounting(limits.bodyBudgetBytes)
      const url = yield* serve(accounting)
      const req = yield* Effect.acquireRelease(
        Effect.sync(() => {
          const req = http.request(`${url}/call/echo`, { method: "POST", headers: { "content-length": 100 }, agent: false })
          req.on("error", () => {})
          req.flushHeaders()
          req.write("{")
          return req
        }),
        (req) => Effect.sync(() => req.destroy())
      )
      const answered = yield* Effect.fork(
        Effect.async<number>((resume) => {
          req.on("response", (res) => {
            res.resume()
            resume(Effect.succeed(res.statusCode ?? 0))
          })
          req.on("close", () => resume(Effect.succeed(-1)))
        })
      )
      // until the route holds the first byte (its read, and so its timeout, has started)
      while (accounting.held === 0) yield* Effect.promise(() => new Promise<void>((r) => setImmediate(r)))
      yield* TestClock.adjust("29 seconds")
      expect(accounting.held).toBe(1)
      expect(answered.unsafePoll()).toBeNull()
      yield* TestClock.adjust("2 seconds")
      expect(yield* Fiber.join(answered)).toBe(408)
      expect(accounting.held).toBe(0)
      expect(yield* ping(url)).toBe("pong")
    })
  )
})
