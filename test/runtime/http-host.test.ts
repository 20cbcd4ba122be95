import * as HttpLayerRouter from "@effect/platform/HttpLayerRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Deferred, Effect, Either, Exit, Fiber, Layer, Logger, Metric, Scope, TestClock } from "effect"
import { execFile } from "node:child_process"
import { request } from "node:http"
import { ActorTree } from "../../src/runtime/actor-tree.js"
import { httpHostLayer, parseListen, runtimeRoutes, serverUrl } from "../../src/runtime/http-host.js"
import { lineLogger } from "../../src/runtime/logging.js"
import { Metrics } from "../../src/runtime/metrics.js"
import { RootSupervisor } from "../../src/runtime/supervisor.js"

const local = { host: "127.0.0.1", port: 0 }

const baseUrl = Effect.map(HttpServer.HttpServer, (server) => serverUrl(server.address))

const get = (url: string) =>
  Effect.tryPromise(async () => {
    const res = await fetch(url)
    return { status: res.status, type: res.headers.get("content-type") ?? "", body: await res.text() }
  })

// A raw node request, so the test sees exactly when the server answers or cuts the connection.
const rawGet = (url: string) =>
  Effect.async<{ status: number; body: string }, Error>((resume) => {
    const req = request(url, { agent: false }, (res) => {
      let body = ""
      res.setEncoding("utf8")
      res.on("data", (chunk: string) => (body += chunk))
      res.on("end", () => resume(Effect.succeed({ status: res.statusCode ?? 0, body })))
      res.on("error", (e) => resume(Effect.fail(e)))
    })
    req.on("error", (e) => resume(Effect.fail(e)))
    req.end()
    return Effect.sync(() => req.destroy())
  })

const promtool = (text: string) =>
  Effect.async<{ code: number; output: string }>((resume) => {
    const child = execFile("/usr/bin/promtool", ["check", "metrics"], (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === "number" ? error.code : 1
      resume(Effect.succeed({ code, output: stdout + stderr }))
    })
    child.stdin?.end(text)
  })

const requests = Metric.counter("prolo_test_requests_total", { description: "test counter", incremental: true })

const recordedExits: Array<number> = []
const Host = httpHostLayer(runtimeRoutes, { listen: local }).pipe(
  Layer.provideMerge(RootSupervisor.layerWithExit((code) => Effect.sync(() => void recordedExits.push(code)))),
  Layer.provideMerge(ActorTree.layer),
  Layer.provideMerge(Metrics.layer)
)

describe("parseListen", () => {
  it("accepts HOST:PORT, [v6]:PORT and port 0", () => {
    expect(parseListen("0.0.0.0:20000")).toEqual(Either.right({ host: "0.0.0.0", port: 20000 }))
    expect(parseListen("[::1]:8080")).toEqual(Either.right({ host: "::1", port: 8080 }))
    expect(parseListen("localhost:0")).toEqual(Either.right({ host: "localhost", port: 0 }))
  })
  it("refuses anything else with a message naming the input", () => {
    for (const bad of ["20000", "host:", ":80", "host:70000", "host:-1", "a b:80", "::1:80", "host:80x"]) {
      const result = parseListen(bad)
      expect(Either.isLeft(result), bad).toBe(true)
      if (Either.isLeft(result)) {
        expect(result.left.message).toContain(JSON.stringify(bad))
        expect(result.left.message).toContain("HOST:PORT")
      }
    }
  })
})

// Not `layer(Host)`: @effect/vitest 0.30's `layer` overwrites the module-wide `it.effect`
// (Object.assign on the shared api), which silently drops TestClock from later tests.
describe("http host", () => {
  {
    it.live("GET /__ping answers pong in text/plain", () =>
      Effect.gen(function* () {
        const res = yield* get(`${yield* baseUrl}/__ping`)
        expect(res).toEqual({ status: 200, type: "text/plain", body: "pong" })
      }).pipe(Effect.provide(Host))
    )

    it.live("GET /__actors lists the root supervisor", () =>
      Effect.gen(function* () {
        const res = yield* get(`${yield* baseUrl}/__actors`)
        expect(res.status).toBe(200)
        expect(res.type).toContain("application/json")
        const actors = JSON.parse(res.body) as Array<{ path: string; kind?: string }>
        expect(actors.filter((a) => a.path === "/root")).toHaveLength(1)
        expect(actors.find((a) => a.path === "/root")?.kind).toBe("supervisor")
      }).pipe(Effect.provide(Host))
    )

    it.live("GET /metrics passes promtool check metrics, with process and Effect metrics", () =>
      Effect.gen(function* () {
        yield* Metric.increment(requests)
        const res = yield* get(`${yield* baseUrl}/metrics`)
        expect(res.status).toBe(200)
        expect(res.type).toContain("text/plain")
        expect(res.body).toContain("process_cpu_user_seconds_total")
        expect(res.body).toContain("prolo_test_requests_total")
        const checked = yield* promtool(res.body)
        expect(checked.output).toBe("")
        expect(checked.code).toBe(0)
      }).pipe(Effect.provide(Host))
    )

    it.live("an unknown path is a 404 and the host keeps serving", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        expect((yield* get(`${url}/nope`)).status).toBe(404)
        expect((yield* get(`${url}/__ping`)).body).toBe("pong")
      }).pipe(Effect.provide(Host))
    )
  }

  it.live("a handler that dies answers 500 and logs the defect with the request", () =>
    Effect.gen(function* () {
      const lines: Array<string> = []
      const host = httpHostLayer(
        HttpLayerRouter.add("GET", "/boom", Effect.dieMessage("handler bug")),
        { listen: local }
      ).pipe(Layer.provide(Logger.replace(Logger.defaultLogger, lineLogger((l) => lines.push(l)))))
      yield* Effect.gen(function* () {
        const res = yield* get(`${yield* baseUrl}/boom`)
        expect(res.status).toBe(500)
        expect(lines.filter((l) => /^\S+Z \[ERROR\] http: GET \/boom died\n/.test(l))).toHaveLength(1)
        expect(lines.join("\n")).toContain("handler bug")
        yield* get(`${yield* baseUrl}/nothing-here`)
        expect(lines).toHaveLength(1)
      }).pipe(Effect.provide(host))
    })
  )

  it("promtool itself rejects malformed exposition (the check above can fail)", async () => {
    const bad = await Effect.runPromise(promtool("# TYPE x counter\nx{a=} 1\n"))
    expect(bad.code).not.toBe(0)
  })
})

// A route that answers only when the test says so, to hold a request in flight.
const slowHost = (release: Deferred.Deferred<void>, started: Deferred.Deferred<void>) =>
  httpHostLayer(
    Layer.merge(
      runtimeRoutes,
      HttpLayerRouter.add(
        "GET",
        "/slow",
        Deferred.succeed(started, undefined).pipe(
          Effect.zipRight(Deferred.await(release)),
          Effect.as(HttpServerResponse.text("done"))
        )
      )
    ),
    { listen: local, drainTimeout: "5 seconds" }
  ).pipe(Layer.provide(ActorTree.layer), Layer.provide(Metrics.layer))

describe("http host start", () => {
  it.live("answers 503 while the routes are still starting, instead of leaving the request unanswered", () =>
    Effect.gen(function* () {
      const address = yield* Deferred.make<string>()
      const release = yield* Deferred.make<void>()
      // A subsystem slow to start (the embedded database): the socket is already bound meanwhile.
      const slowStart = Layer.effectDiscard(
        Effect.gen(function* () {
          yield* Deferred.succeed(address, serverUrl((yield* HttpServer.HttpServer).address))
          yield* Deferred.await(release)
        })
      )
      const scope = yield* Scope.make()
      const host = httpHostLayer(Layer.merge(runtimeRoutes, slowStart), { listen: local }).pipe(
        Layer.provide(ActorTree.layer),
        Layer.provide(Metrics.layer)
      )
      const building = yield* Effect.fork(Layer.buildWithScope(host, scope))
      const url = yield* Deferred.await(address)
      const early = yield* rawGet(`${url}/__ping`).pipe(
        Effect.timeoutFail({
          duration: "30 seconds",
          onTimeout: () => new Error("a request sent while the node was starting got no answer")
        })
      )
      expect(early).toEqual({ status: 503, body: "starting: not serving yet\n" })
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(building)
      expect(yield* get(`${url}/__ping`)).toEqual({ status: 200, type: "text/plain", body: "pong" })
      yield* Scope.close(scope, Exit.void)
    })
  )
})

/** A host whose `/slow` waits for `release` (after signalling `started`), in a scope the test closes. */
const startSlowHost = Effect.gen(function* () {
  const release = yield* Deferred.make<void>()
  const started = yield* Deferred.make<void>()
  const scope = yield* Scope.make()
  const ctx = yield* Layer.buildWithScope(slowHost(release, started), scope)
  const url = serverUrl((ctx.unsafeMap.get(HttpServer.HttpServer.key) as HttpServer.HttpServer).address)
  return { release, started, scope, url }
})

describe("http host shutdown", () => {
  it.live("finishes an in-flight request before the scope closes, and stops accepting", () =>
    Effect.gen(function* () {
      const { release, started, scope, url } = yield* startSlowHost
      const inFlight = yield* Effect.fork(rawGet(`${url}/slow`))
      yield* Deferred.await(started)
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      // the listening socket closes first: new connections are refused while the request runs
      let refused = false
      for (let attempt = 0; attempt < 50 && !refused; attempt++) {
        yield* Effect.yieldNow()
        refused = Either.isLeft(yield* Effect.either(get(`${url}/__ping`)))
      }
      expect(refused).toBe(true)
      expect(closing.unsafePoll()).toBeNull()
      yield* Deferred.succeed(release, undefined)
      expect(yield* Fiber.join(inFlight)).toEqual({ status: 200, body: "done" })
      yield* Fiber.join(closing)
    })
  )

  it.effect("cuts a request still running after the drain timeout (TestClock)", () =>
    Effect.gen(function* () {
      const { release, started, scope, url } = yield* startSlowHost
      const inFlight = yield* Effect.fork(Effect.either(rawGet(`${url}/slow`)))
      yield* Deferred.await(started)
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      // wait until the drain timer is armed, so that adjusting the clock reaches it
      while (Chunk.isEmpty(yield* TestClock.sleeps())) yield* Effect.yieldNow()
      yield* TestClock.adjust("4 seconds")
      expect(closing.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(closing)
      const cut = yield* Fiber.join(inFlight)
      expect(Either.isLeft(cut)).toBe(true)
    })
  )
})
