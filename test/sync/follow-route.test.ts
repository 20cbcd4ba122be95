import * as NodeSocket from "@effect/platform-node/NodeSocket"
import * as HttpServer from "@effect/platform/HttpServer"
import * as Socket from "@effect/platform/Socket"
import { describe, expect, it } from "@effect/vitest"
import { Context, Deferred, Effect, Exit, Fiber, Layer, Logger, Metric, Queue, Scope, Stream } from "effect"
import { request } from "node:http"
import { WebSocket } from "ws"
import { type FrameInfo, makeSyncClient } from "../../src/actors/sync/client.js"
import { followSocketUrl, websocketConnector } from "../../src/actors/sync/connection.js"
import { type HubTopic, SyncHub, type SyncHubService } from "../../src/actors/sync/hub.js"
import { makeMemorySource } from "../../src/actors/sync/memory-source.js"
import { followEncodes, hubMetrics } from "../../src/actors/sync/metrics.js"
import { syncRoutes, syncRoutesWith } from "../../src/actors/sync/routes.js"
import { type Frame, subscribeMessage } from "../../src/protocols/sync.js"
import { udbRecordFilter } from "../../src/protocols/udb.js"
import { httpHostLayer, serverUrl } from "../../src/runtime/http-host.js"
import { Metrics } from "../../src/runtime/metrics.js"
import { generate } from "../../src/runtime/timeauth.js"
import { HASH, PUB, SUB } from "./harness.js"
import { testSupervision } from "../support/supervision.js"

// The follow route on a real HTTP port: frames are encoded once per batch and audience, not
// once per subscriber.

// SHA-512-crypt costs ~15 ms: this test counts encodings, not hashes.
const fakeHash = (login: string, password: string) => `hash(${login},${password})`

const topicOf = (name: string, filtered: boolean) =>
  Effect.map(
    makeMemorySource({ topic: name, keyField: "login", retention: 100, epoch: `${name}-epoch` }),
    (source): HubTopic => ({
      definition: { name, keyField: "login", durable: false, profile: name, ...(filtered ? { filter: () => udbRecordFilter(fakeHash) } : {}) },
      secrets: filtered ? { publisher: PUB, subscriber: SUB, hashes: HASH } : { publisher: PUB, subscriber: SUB },
      source
    })
  )

const serve = (topics: ReadonlyArray<HubTopic>, port = 0, routes = syncRoutes) =>
  Effect.gen(function* () {
    const scope = yield* Scope.make()
    yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
    const ctx = yield* Layer.buildWithScope(
      httpHostLayer(routes, { listen: { host: "127.0.0.1", port }, drainTimeout: "1 second" }).pipe(
        // No idle keep-alive during the test: every frame counted is a snapshot, a catch-up or a batch.
        Layer.provideMerge(SyncHub.layer({ topics, options: { progressInterval: "1 hour" } })),
        Layer.provide(Layer.merge(Metrics.layer, testSupervision))
      ),
      scope
    )
    const address = Context.get(ctx, HttpServer.HttpServer).address
    return {
      hub: Context.get(ctx, SyncHub),
      url: serverUrl(address),
      port: address._tag === "TcpAddress" ? address.port : 0,
      stop: Scope.close(scope, Exit.void)
    }
  })

/** A follow-route subscriber whose frames land in a queue; returns once it is live (snapshot and "caught up" seen). */
const follower = (url: string, topic: string, secret: typeof PUB) =>
  Effect.gen(function* () {
    const connection = yield* websocketConnector(url)
    const token = yield* generate(secret, subscribeMessage(topic))
    const frames = yield* Queue.unbounded<Frame>()
    yield* Effect.forkScoped(Stream.runForEach(connection.subscribe({ topic, token }), (f) => Queue.offer(frames, f)))
    expect((yield* Queue.take(frames))._tag).toBe("Snapshot")
    expect((yield* Queue.take(frames))._tag).toBe("Progress")
    return frames
  })

const encodes = Effect.map(Metric.value(followEncodes), (s) => s.count)

describe("sync follow route", () => {
  it.live("encodes each batch once per audience, whatever the number of subscribers", () =>
    Effect.gen(function* () {
      const { hub, url } = yield* serve([yield* topicOf("udb", true), yield* topicOf("plain", false)])
      const publicOnes = yield* Effect.all(Array.from({ length: 3 }, () => follower(url, "udb", SUB)))
      const hashOnes = yield* Effect.all(Array.from({ length: 2 }, () => follower(url, "udb", HASH)))

      const before = yield* encodes
      const user = { login: "alice", uid: 10001, password: "s3cret" }
      yield* hub.publish("udb", [{ type: "update", data: user }])
      for (const frames of publicOnes) {
        expect(yield* Queue.take(frames)).toEqual({ _tag: "Batch", revision: 1, updates: [{ type: "update", data: { login: "alice", uid: 10001 } }] })
      }
      for (const frames of hashOnes) {
        expect(yield* Queue.take(frames)).toEqual({
          _tag: "Batch",
          revision: 1,
          updates: [{ type: "update", data: { login: "alice", uid: 10001, password_hash: "hash(alice,s3cret)" } }]
        })
      }
      // Five subscribers, two audiences: two encodings.
      expect((yield* encodes) - before).toBe(2)

      // A second batch: two more, not five.
      yield* hub.publish("udb", [{ type: "delete", data: { login: "alice", password: "s3cret" } }])
      for (const frames of [...publicOnes, ...hashOnes]) expect((yield* Queue.take(frames))._tag).toBe("Batch")
      expect((yield* encodes) - before).toBe(4)

      // A topic without a filter: one audience whoever signed, one encoding for all.
      const plain = [yield* follower(url, "plain", SUB), yield* follower(url, "plain", PUB), yield* follower(url, "plain", SUB)]
      const plainBefore = yield* encodes
      yield* hub.publish("plain", [{ type: "update", data: user }])
      for (const frames of plain) {
        expect(yield* Queue.take(frames)).toEqual({ _tag: "Batch", revision: 1, updates: [{ type: "update", data: user }] })
      }
      expect((yield* encodes) - plainBefore).toBe(1)
    }).pipe(Effect.scoped)
  )
})

const captureLogs = (lines: Array<string>) =>
  Logger.replace(
    Logger.defaultLogger,
    Logger.make(({ logLevel, message }) => {
      lines.push(`${logLevel.label} ${Array.isArray(message) ? message.join(" ") : String(message)}`)
    })
  )

/** A bare follow websocket that reads the close frame the hub sends; returns once its first frame arrived. */
const bareFollower = (url: string) =>
  Effect.gen(function* () {
    const socket = yield* Socket.makeWebSocket(followSocketUrl(url, "udb")).pipe(Effect.provide(NodeSocket.layerWebSocketConstructor))
    const write = yield* socket.writer
    const firstFrame = yield* Deferred.make<void>()
    const token = yield* generate(SUB, subscribeMessage("udb"))
    const closed = yield* Effect.fork(
      Effect.flip(socket.runRaw(() => Deferred.unsafeDone(firstFrame, Exit.void), { onOpen: Effect.orDie(write(JSON.stringify({ token }))) }))
    )
    yield* Deferred.await(firstFrame)
    return closed
  })

/** Opens `/poll`; returns once its first line arrived, with a fiber that ends with the response. */
const pollUntilEnd = (url: string) =>
  Effect.gen(function* () {
    const first = yield* Deferred.make<void>()
    const fiber = yield* Effect.fork(
      Effect.async<{ status: number; body: string; ended: string }, Error>((resume) => {
        let body = ""
        const req = request(url, { agent: false }, (res) => {
          res.setEncoding("utf8")
          res.on("data", (chunk: string) => {
            body += chunk
            if (body.includes("\n")) Deferred.unsafeDone(first, Exit.void)
          })
          res.on("end", () => resume(Effect.succeed({ status: res.statusCode ?? 0, body, ended: "end" })))
          res.on("error", (e) => resume(Effect.succeed({ status: res.statusCode ?? 0, body, ended: `error: ${e.message}` })))
        })
        req.on("error", (e) => resume(Effect.fail(e)))
        req.end()
        return Effect.sync(() => req.destroy())
      })
    )
    yield* Deferred.await(first)
    return fiber
  })

describe("sync follow route at shutdown", () => {
  it.live("a stopping node closes follow websockets with 1001 and logs no failure; followers resume", () => {
    const lines: Array<string> = []
    return Effect.gen(function* () {
      // The same source across the restart, as the durable topics' change log.
      const topic = yield* topicOf("udb", true)
      let server = yield* serve([topic])
      yield* server.hub.publish("udb", [{ type: "update", data: { login: "alice", uid: 10001, password: "pw" } }])

      const client = makeSyncClient({
        connect: websocketConnector(server.url),
        credentials: () => ({ subscribe: SUB }),
        keyFields: { udb: "login" },
        backoff: { initial: "50 millis", max: "200 millis" }
      })
      const seen = yield* Queue.unbounded<FrameInfo & { logins: Array<string> }>()
      const following = yield* Effect.fork(
        client.follow("udb", (state, _m, info) => Queue.offer(seen, { ...info, logins: [...state.keys()].sort() }))
      )
      expect(yield* Queue.take(seen)).toMatchObject({ kind: "snapshot", revision: 1, logins: ["alice"] })
      const bare = yield* bareFollower(server.url)

      yield* server.stop
      expect(yield* Fiber.join(bare)).toMatchObject({ reason: "Close", code: 1001, closeReason: "going away" })
      // The host logged something (the capture works) but no failed request and no error.
      expect(lines.some((l) => l.includes("sync udb: serving from revision"))).toBe(true)
      expect(lines.filter((l) => /^(ERROR|FATAL)|died|failed/.test(l))).toEqual([])
      // The host's drain told the session first: it did not wait its timeout for the websocket.
      expect(lines.filter((l) => l.startsWith("WARN"))).toEqual([])

      // Back on the same port: the follower resumes from revision 1, no snapshot, and goes on.
      server = yield* serve([topic], server.port)
      yield* server.hub.publish("udb", [{ type: "update", data: { login: "bob", uid: 10002, password: "pw" } }])
      expect(yield* Queue.take(seen)).toMatchObject({ kind: "batch", revision: 2, logins: ["alice", "bob"] })
      expect(lines.some((l) => l.includes("the hub is going away"))).toBe(true)
      yield* Fiber.interrupt(following)
    }).pipe(Effect.scoped, Effect.provide(captureLogs(lines)))
  })

  it.live("when the host drains, sessions say 1001 and /poll responses end at once: the drain does not wait for them", () => {
    const lines: Array<string> = []
    return Effect.gen(function* () {
      const server = yield* serve([yield* topicOf("udb", true)])
      const bare = yield* bareFollower(server.url)
      const polled = yield* pollUntilEnd(`${server.url}/sync/udb/poll?hmac=${yield* generate(SUB, subscribeMessage("udb"))}`)
      const stopped = yield* Effect.fork(server.stop)
      expect(yield* Fiber.join(bare)).toMatchObject({ reason: "Close", code: 1001, closeReason: "going away" })
      // The snapshot line, then a clean end of the response (the original's clients reconnect).
      expect(yield* Fiber.join(polled)).toEqual({ status: 200, body: "[]\n", ended: "end" })
      yield* Fiber.join(stopped)
      // Nothing at warning level or above: in particular no "requests still running" from the drain.
      expect(lines.filter((l) => !l.startsWith("INFO") && !l.startsWith("DEBUG"))).toEqual([])
    }).pipe(Effect.scoped, Effect.provide(captureLogs(lines)))
  })
})

// Issue 17 item 4: a subscriber with a valid token that announced credit "1000000000" and then
// stopped reading was never detached (83 MB buffered after 90 s). Credit is clamped to the
// frames actually sent, and a socket that does not drain counts as lagging whatever it says.
describe("sync follow route: a subscriber that stops reading", () => {
  const laggingCount = Effect.map(Metric.value(hubMetrics("udb").lagging), (s) => s.count)

  /** A real websocket client: sends the follow request, then `credit` once; reads nothing after `pause()`. */
  const stalledFollower = (url: string) =>
    Effect.gen(function* () {
      const token = yield* generate(SUB, subscribeMessage("udb"))
      const ws = yield* Effect.acquireRelease(
        Effect.async<WebSocket, Error>((resume) => {
          const ws = new WebSocket(followSocketUrl(url, "udb"))
          ws.once("open", () => {
            ws.send(JSON.stringify({ token }))
            ws.send("1000000000")
            ws.pause()
            resume(Effect.succeed(ws))
          })
          ws.once("error", (e) => resume(Effect.fail(e)))
        }),
        (ws) => Effect.sync(() => ws.terminate())
      )
      const closed = Effect.async<number>((resume) => {
        if (ws.readyState === WebSocket.CLOSED) return resume(Effect.succeed(0))
        ws.once("close", (code) => resume(Effect.succeed(code)))
      })
      return { ws, closed }
    })

  /** One turn of Node's event loop, so that the sockets move between two publishes. */
  const ioTurn = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))

  /** Until the hub has the subscriber (its follow request was read). */
  const subscribed = (hub: SyncHubService) =>
    Effect.flatMap(hub.topic("udb"), (topic) =>
      Effect.repeat(Effect.zipLeft(topic.subscribers, ioTurn), { until: (s) => s.length > 0 })
    )

  const record = (i: number, size: number) => [{ type: "update", data: { login: `user${i}`, uid: 10000 + i, gecos: "g".repeat(size) } }]

  it.live("credit beyond what was sent is clamped: the subscriber falls a window behind and is detached as lagging", () =>
    Effect.gen(function* () {
      const { hub, url } = yield* serve([yield* topicOf("udb", true)])
      const before = yield* laggingCount
      yield* stalledFollower(url)
      yield* subscribed(hub)
      // The hub keeps 1024 frames per subscriber (its default buffer) and the window is 16: a
      // subscriber that acknowledges nothing real is detached long before 2000 batches.
      let published = 0
      while ((yield* laggingCount) === before && published < 2000) {
        yield* hub.publish("udb", record(published++, 16))
        yield* ioTurn
      }
      expect(yield* laggingCount).toBe(before + 1)
      expect(published).toBeLessThan(2000)
    }).pipe(Effect.scoped)
  )

  it.live("a subscriber that keeps sending credit but does not read is detached once its unsent bytes pass the bound", () =>
    Effect.gen(function* () {
      const maxUnsentBytes = 256 * 1024
      const { hub, url } = yield* serve([yield* topicOf("udb", true)], 0, syncRoutesWith({ maxUnsentBytes }))
      const before = yield* laggingCount
      const { closed, ws } = yield* stalledFollower(url)
      yield* subscribed(hub)
      // 32 KiB per batch; the kernel's buffers take a few MB before the websocket's own grows.
      let published = 0
      while ((yield* laggingCount) === before && published < 1000) {
        yield* hub.publish("udb", record(published++, 32 * 1024))
        // credit for everything, as if read: clamped to what was sent, so the window stays open
        ws.send("1000000000")
        yield* ioTurn
      }
      expect(yield* laggingCount).toBe(before + 1)
      expect(published).toBeLessThan(1000)
      // Detached: the hub ends the session; the socket is closed once the peer reads again.
      ws.resume()
      expect(yield* closed).toBe(1000)
    }).pipe(Effect.scoped)
  )
})
