import { FetchHttpClient, Headers, HttpLayerRouter, HttpServer } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { Rpc, RpcClient, RpcGroup, RpcMiddleware, RpcSerialization, RpcServer, RpcTest } from "@effect/rpc"
import { describe, expect, it } from "@effect/vitest"
import { Clock, Effect, Either, Layer, Redacted, Schema, TestClock } from "effect"
import { createHmac } from "node:crypto"
import { createServer } from "node:http"
import * as Prom from "prom-client"
import { Metrics } from "../../src/runtime/metrics.js"
import { AUTH_HEADER, canonicalJson, Public, signedMessage, TimeAuth, timeAuthAnonymous, timeAuthClient, timeAuthServer, Unauthorized } from "../../src/runtime/rpc-auth.js"

// A payload whose encoded form differs from its decoded one (Date -> ISO string,
// bigint -> string, optional key), so signing the wrong form would show.
const Stamp = Rpc.make("Stamp", {
  payload: {
    name: Schema.String,
    at: Schema.Date,
    count: Schema.BigInt,
    tags: Schema.optional(Schema.Array(Schema.String))
  },
  success: Schema.String
})
const Ping = Rpc.make("Ping", { success: Schema.String }).annotate(Public, true)
class TestRpcs extends RpcGroup.make(Stamp, Ping).middleware(TimeAuth) {}

const secret = Redacted.make("secret42")
const T0 = 1_700_000_000
const payload = { name: "héllo", at: new Date("2024-05-06T07:08:09.010Z"), count: 12345678901234567890n, tags: ["b", "a"] }

let invocations = 0
const Handlers = TestRpcs.toLayer({
  Stamp: (p) =>
    Effect.sync(() => {
      invocations++
      return `${p.name} ${p.at.toISOString()} ${p.count}`
    }),
  Ping: () => Effect.sync(() => "pong")
})

// Independent of src/runtime/timeauth.ts: the spec's formula written out again.
const tokenAt = (seconds: number, key: string, message: string) =>
  `${seconds}:${createHmac("sha256", key).update(message + seconds).digest("hex")}`

// A client middleware that sends whatever token `forge` makes of the message it should sign.
let forge: (message: string, nowSeconds: number) => string | undefined = () => undefined
const ForgingClient = RpcMiddleware.layerClient(TimeAuth, ({ rpc, request }) =>
  Effect.gen(function* () {
    const message = yield* Effect.orDie(signedMessage(rpc, request.payload))
    const now = Math.floor((yield* Clock.currentTimeMillis) / 1000)
    const token = forge(message, now)
    return token === undefined ? request : { ...request, headers: Headers.set(request.headers, AUTH_HEADER, token) }
  })
)

// What `payload` signs: the tag and the canonical JSON of its encoded form.
const stampMessage =
  'Stamp\n{"at":"2024-05-06T07:08:09.010Z","count":"12345678901234567890","name":"h\\u00e9llo","tags":["b","a"]}'

const rejectedCount = (registry: Prom.Registry, reason: string) =>
  Effect.promise(async () => {
    const metric = registry.getSingleMetric("prolo_auth_rejected_total")
    const values = metric === undefined ? [] : (await metric.get()).values
    return values.find((v) => v.labels.service === "test" && v.labels.reason === reason)?.value ?? 0
  })

const outcome = <E, R>(call: Effect.Effect<string, E, R>) =>
  call.pipe(
    Effect.either,
    Effect.map(
      Either.match({
        onRight: (s) => `ok: ${s}`,
        onLeft: (e) => (e instanceof Unauthorized ? `${e.service}/${e.rpc}/${e.reason}` : `other: ${String(e)}`)
      })
    )
  )

// The cases every transport must tell apart. `now` is the server's clock in seconds.
let lastAccepted = ""
const cases = (margin: number): ReadonlyArray<readonly [string, typeof forge, string]> => [
  ["accepted", (m, now) => (lastAccepted = tokenAt(now, "secret42", m)), "ok: héllo 2024-05-06T07:08:09.010Z 12345678901234567890"],
  // The same valid token again (a sniffed one, sent within its 120 s): spent.
  ["replayed", () => lastAccepted, "test/Stamp/replayed"],
  ["expired", (m, now) => tokenAt(now - 120 - margin, "secret42", m), "test/Stamp/expired"],
  ["future", (m, now) => tokenAt(now + 120 + margin, "secret42", m), "test/Stamp/future"],
  ["forged", (m, now) => tokenAt(now, "secret43", m), "test/Stamp/bad_signature"],
  ["missing", () => undefined, "test/Stamp/missing"],
  ["malformed", () => "not-a-token", "test/Stamp/malformed"],
  [
    "for another payload",
    (_m, now) => tokenAt(now, "secret42", stampMessage.replace("12345678901234567890", "1")),
    "test/Stamp/bad_signature"
  ],
  ["for another rpc", (m, now) => tokenAt(now, "secret42", m.replace(/^Stamp/, "Ping")), "test/Stamp/bad_signature"]
]

describe("rpc-auth message", () => {
  it.effect("signs the rpc tag and the canonical JSON of the encoded payload", () =>
    Effect.gen(function* () {
      expect(yield* signedMessage(Stamp, payload)).toBe(stampMessage)
      // key order and undefined optional keys do not matter
      const { tags: _tags, ...rest } = payload
      expect(yield* signedMessage(Stamp, { tags: undefined, count: rest.count, at: rest.at, name: rest.name })).toBe(
        'Stamp\n{"at":"2024-05-06T07:08:09.010Z","count":"12345678901234567890","name":"h\\u00e9llo"}'
      )
      expect(yield* signedMessage(Ping, undefined)).toBe("Ping\nnull")
      // msgpack may hand the server a Buffer where the client had a Uint8Array
      expect(canonicalJson(Buffer.from([1, 2, 3]))).toBe('"AQID"')
      expect(canonicalJson(new Uint8Array([1, 2, 3]))).toBe('"AQID"')
      expect(canonicalJson(12n)).toBe("12")
      expect(new Unauthorized({ service: "mdb", rpc: "Register", reason: "expired" }).message).toBe(
        "mdb: Register: unauthorized (expired)"
      )
      expect(canonicalJson({ b: [1, undefined, { d: 2, c: null }], a: 1.5, z: "\u{1F600}" })).toBe(
        '{"a":1.5,"b":[1,null,{"c":null,"d":2}],"z":"\\ud83d\\ude00"}'
      )
    })
  )
})

describe("TimeAuth over RpcTest", () => {
  const clientWith = (client: Layer.Layer<RpcMiddleware.ForClient<TimeAuth>>) =>
    RpcTest.makeClient(TestRpcs).pipe(
      Effect.provide(Layer.mergeAll(Handlers, timeAuthServer("test", secret), client).pipe(Layer.provide(Metrics.layer)))
    )

  it.scoped("the real client is accepted; every bad token gets its typed reason and runs nothing", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(T0 * 1000)
      invocations = 0
      const good = yield* clientWith(timeAuthClient(secret))
      expect(yield* outcome(good.Stamp(payload))).toBe("ok: héllo 2024-05-06T07:08:09.010Z 12345678901234567890")
      expect(invocations).toBe(1)

      const forging = yield* clientWith(ForgingClient)
      for (const [name, f, expected] of cases(1)) {
        forge = f
        const before = invocations
        expect([name, yield* outcome(forging.Stamp(payload))]).toEqual([name, expected])
        expect([name, invocations - before]).toEqual([name, expected.startsWith("ok") ? 1 : 0])
      }

      const wrongSecret = yield* clientWith(timeAuthClient(Redacted.make("nope")))
      expect(yield* outcome(wrongSecret.Stamp(payload))).toBe("test/Stamp/bad_signature")
      const anonymous = yield* clientWith(timeAuthAnonymous)
      expect(yield* outcome(anonymous.Stamp(payload))).toBe("test/Stamp/missing")
      expect(yield* outcome(anonymous.Ping())).toBe("ok: pong")
      expect(invocations).toBe(2)
    })
  )
})

describe("TimeAuth over real HTTP (127.0.0.1)", () => {
  // Server and test share one Metrics so the test can read the rejection counter.
  // The replay cache belongs to the secret's Redacted value: a test that replays another test's
  // exact token (same second, same message) serves its own copy of the secret.
  const serve = (metrics: Layer.Layer<Metrics>, serverSecret = secret) =>
    HttpLayerRouter.serve(
      RpcServer.layerHttpRouter({ group: TestRpcs, path: "/rpc", protocol: "http" }).pipe(
        Layer.provide(Handlers),
        Layer.provide(timeAuthServer("test", serverSecret)),
        Layer.provide(metrics),
        Layer.provide(RpcSerialization.layerJson)
      ),
      { disableListenLog: true, disableLogger: true }
    ).pipe(Layer.provideMerge(NodeHttpServer.layer(createServer, { port: 0, host: "127.0.0.1" })))

  const clientAt = (url: string, client: Layer.Layer<RpcMiddleware.ForClient<TimeAuth>>) =>
    RpcClient.make(TestRpcs).pipe(
      Effect.provide(
        Layer.mergeAll(
          RpcClient.layerProtocolHttp({ url }).pipe(
            Layer.provide(RpcSerialization.layerJson),
            Layer.provide(FetchHttpClient.layer)
          ),
          client
        )
      )
    )

  it.scopedLive("accepts, rejects with distinct reasons, counts rejections, runs nothing refused", () =>
    Effect.gen(function* () {
      const metrics = yield* Metrics
      const ctx = yield* Layer.build(serve(Layer.succeed(Metrics, metrics)))
      const server = yield* Effect.provide(HttpServer.HttpServer, ctx)
      if (server.address._tag !== "TcpAddress") throw new Error("expected a TCP address")
      expect(server.address.hostname).toBe("127.0.0.1")
      const url = `http://127.0.0.1:${server.address.port}/rpc`
      invocations = 0

      const good = yield* clientAt(url, timeAuthClient(secret))
      expect(yield* outcome(good.Stamp(payload))).toBe("ok: héllo 2024-05-06T07:08:09.010Z 12345678901234567890")
      expect(invocations).toBe(1)

      const forging = yield* clientAt(url, ForgingClient)
      for (const [name, f, expected] of cases(10)) {
        forge = f
        const before = invocations
        const reason = expected.split("/")[2]
        const counted = reason === undefined ? 0 : yield* rejectedCount(metrics.registry, reason)
        expect([name, yield* outcome(forging.Stamp(payload))]).toEqual([name, expected])
        expect([name, invocations - before]).toEqual([name, expected.startsWith("ok") ? 1 : 0])
        if (reason !== undefined) expect([name, yield* rejectedCount(metrics.registry, reason)]).toEqual([name, counted + 1])
      }

      const anonymous = yield* clientAt(url, timeAuthAnonymous)
      expect(yield* outcome(anonymous.Ping())).toBe("ok: pong")
      expect(yield* outcome(anonymous.Stamp(payload))).toBe("test/Stamp/missing")
      expect(invocations).toBe(2)

      const { body } = yield* metrics.render
      expect(body).toMatch(/^prolo_auth_rejected_total\{service="test",reason="bad_signature"\} 3$/m)
    }).pipe(Effect.provide(Metrics.layer))
  )

  it.scopedLive("a raw request with reordered payload keys and the token in an HTTP header is accepted", () =>
    Effect.gen(function* () {
      const ctx = yield* Layer.build(serve(Metrics.layer, Redacted.make(Redacted.value(secret))))
      const server = yield* Effect.provide(HttpServer.HttpServer, ctx)
      if (server.address._tag !== "TcpAddress") throw new Error("expected a TCP address")
      const url = `http://127.0.0.1:${server.address.port}/rpc`
      invocations = 0
      const now = Math.floor((yield* Clock.currentTimeMillis) / 1000)
      // The wire payload in yet another key order, with the non-ASCII char raw.
      const body = (count: string) =>
        `{"_tag":"Request","id":"1","tag":"Stamp","headers":[],"payload":` +
        `{"tags":["b","a"],"count":"${count}","name":"héllo","at":"2024-05-06T07:08:09.010Z"}}`
      const post = (text: string, token: string) =>
        Effect.promise(() =>
          fetch(url, { method: "POST", body: text, headers: { "content-type": "application/json", [AUTH_HEADER]: token } }).then(
            (r) => r.text()
          )
        )
      const token = tokenAt(now, "secret42", stampMessage)
      expect(yield* post(body("12345678901234567890"), token)).toContain("héllo 2024-05-06T07:08:09.010Z 12345678901234567890")
      expect(invocations).toBe(1)
      // same token, payload changed on the wire
      const refused = yield* post(body("1"), token)
      expect(refused).toContain('"_tag":"Unauthorized"')
      expect(refused).toContain('"reason":"bad_signature"')
      expect(invocations).toBe(1)
    })
  )
})
