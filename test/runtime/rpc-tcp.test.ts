import { describe, expect, it } from "@effect/vitest"
import { RpcSerialization } from "@effect/rpc"
import { Chunk, Context, Effect, Exit, Layer, Redacted, Schedule, Scope, Stream } from "effect"
import * as net from "node:net"
import { Metrics } from "../../src/runtime/metrics.js"
import { canonicalJson } from "../../src/runtime/rpc-auth.js"
import { makeRpcTcpClient, type RpcTcpConnectionStats, RpcTcpServer, rpcTcpServerLayer } from "../../src/runtime/rpc-tcp.js"
import { generate } from "../../src/runtime/timeauth.js"
import { EchoRpcs, echoHandlers } from "./rpc-echo-group.js"

const secret = Redacted.make("tcp-secret")

const Server = rpcTcpServerLayer({
  service: "echo",
  group: EchoRpcs,
  handlers: echoHandlers,
  secret,
  listen: { host: "127.0.0.1", port: 0 }
}).pipe(Layer.provideMerge(Metrics.layer))

const clientWith = (key: string) =>
  Effect.gen(function* () {
    const { address } = yield* RpcTcpServer
    return yield* makeRpcTcpClient(EchoRpcs, { host: "127.0.0.1", port: address.port, secret: Redacted.make(key) })
  })

describe("rpc over TCP + msgpack", () => {
  it.live("carries unary calls, typed errors, streams and TimeAuth like the HTTP transport", () =>
    Effect.gen(function* () {
      const client = yield* clientWith("tcp-secret")
      expect(yield* client.Echo({ text: "hi" })).toBe("echo: hi")
      const missing = yield* Effect.flip(client.Lookup({ word: "nope" }))
      expect(missing._tag === "NoSuchWord" && missing.word).toBe("nope")
      expect(Chunk.toReadonlyArray(yield* Stream.runCollect(client.Count({ upTo: 3 })))).toEqual([1, 2, 3])
      // many calls in flight on the one connection
      const many = yield* Effect.forEach(Array.from({ length: 50 }, (_, i) => i), (i) => client.Echo({ text: String(i) }), {
        concurrency: "unbounded"
      })
      expect(many[49]).toBe("echo: 49")
    }).pipe(Effect.scoped, Effect.provide(Server))
  )

  it.live("refuses a wrong secret with Unauthorized and keeps the connection usable", () =>
    Effect.gen(function* () {
      const wrong = yield* clientWith("other")
      const refused = yield* Effect.flip(wrong.Echo({ text: "hi" }))
      expect(refused._tag === "Unauthorized" && refused.reason).toBe("bad_signature")
      expect(yield* wrong.Version()).toBe("echo 1")
    }).pipe(Effect.scoped, Effect.provide(Server))
  )

  it.live("a call while the server is down fails at once; the next call after it is back reconnects", () =>
    Effect.gen(function* () {
      const serve = (port: number) =>
        Effect.gen(function* () {
          const scope = yield* Scope.make()
          const ctx = yield* Layer.buildWithScope(
            rpcTcpServerLayer({ service: "echo", group: EchoRpcs, handlers: echoHandlers, secret, listen: { host: "127.0.0.1", port } }).pipe(
              Layer.provide(Metrics.layer)
            ),
            scope
          )
          return { port: Context.get(ctx, RpcTcpServer).address.port, stop: Scope.close(scope, Exit.void) }
        })
      const first = yield* serve(0)
      const client = yield* makeRpcTcpClient(EchoRpcs, { host: "127.0.0.1", port: first.port, secret })
      expect(yield* client.Echo({ text: "one" })).toBe("echo: one")
      yield* first.stop
      const down = yield* Effect.flip(client.Echo({ text: "two" }))
      expect(down._tag).toBe("RpcClientError")
      const again = yield* serve(first.port)
      expect(yield* client.Echo({ text: "three" })).toBe("echo: three")
      yield* again.stop
    }).pipe(Effect.scoped)
  )

  it.live("a port nobody listens on: the call fails with the address in the message", () =>
    Effect.gen(function* () {
      // a port just freed by us: nothing listens there
      const port = yield* Effect.async<number>((resume) => {
        const probe = net.createServer().listen(0, "127.0.0.1", () => {
          const { port } = probe.address() as net.AddressInfo
          probe.close(() => resume(Effect.succeed(port)))
        })
      })
      const client = yield* makeRpcTcpClient(EchoRpcs, { host: "127.0.0.1", port, secret })
      const e = yield* Effect.flip(client.Echo({ text: "hi" }))
      expect(e._tag === "RpcClientError" && e.message).toContain(`cannot connect to 127.0.0.1:${port}`)
    }).pipe(Effect.scoped)
  )

  it.live("bytes that are not msgpack: a Defect naming the problem, that connection closed, others served", () =>
    Effect.gen(function* () {
      const { address } = yield* RpcTcpServer
      // until: the connection closed (unreadable bytes) or a first frame (a readable non-rpc frame)
      const exchange = (bytes: ReadonlyArray<number> | Buffer, until: "close" | "frame") =>
        Effect.async<{ readonly frames: ReadonlyArray<unknown>; readonly closed: boolean }>((resume) => {
          const parser = RpcSerialization.msgPack.unsafeMake()
          const frames: Array<unknown> = []
          const socket = net.createConnection({ host: "127.0.0.1", port: address.port }, () => socket.write(Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes)))
          socket.on("data", (chunk) => {
            frames.push(...parser.decode(chunk))
            if (until === "frame" && frames.length > 0) resume(Effect.succeed({ frames, closed: false }))
          })
          socket.on("error", () => {})
          socket.on("close", () => resume(Effect.succeed({ frames, closed: true })))
          return Effect.sync(() => socket.destroy())
        }).pipe(Effect.timeout("20 seconds"))
      // 0xd4 0x01: a fixext1 of an extension type nobody registered
      const unreadable = yield* exchange([0xd4, 0x01, 0x02], "close")
      expect(unreadable.closed).toBe(true)
      expect(unreadable.frames).toHaveLength(1)
      expect(unreadable.frames[0]).toMatchObject({ _tag: "Defect" })
      expect(JSON.stringify(unreadable.frames[0])).toContain("unreadable frame")
      // a frame that never ends: a bin32 announcing 64 MiB, then more than the parser's 16 MiB bound
      const endless = Buffer.alloc(17 * 1024 * 1024)
      endless.set([0xc6, 0x04, 0x00, 0x00, 0x00])
      const oversized = yield* exchange(endless, "close")
      expect(oversized.closed).toBe(true)
      expect(JSON.stringify(oversized.frames[0])).toContain("exceeded the maximum size of 16777216")
      // readable msgpack that is no rpc message: refused before the rpc server sees it
      const stray = yield* exchange([0x01], "close")
      expect(stray.closed).toBe(true)
      expect(stray.frames[0]).toMatchObject({ _tag: "Defect" })
      expect(JSON.stringify(stray.frames[0])).toContain("expected a map with a _tag, got 1")
      const client = yield* clientWith("tcp-secret")
      expect(yield* client.Echo({ text: "still here" })).toBe("echo: still here")
    }).pipe(Effect.scoped, Effect.provide(Server))
  )

  // Issue 17 item 1: `id: "x"` made the rpc server throw `BigInt("x")` in the socket's data
  // handler, uncaught: the whole process died. Each malformed frame closes its connection only.
  it.live("frames that are msgpack but malformed rpc messages: that connection closed, counted, the server keeps serving", () =>
    Effect.gen(function* () {
      const { address } = yield* RpcTcpServer
      const metrics = yield* Metrics
      const refusedCount = Effect.promise(async () => (await metrics.registry.getSingleMetric("prolo_rpc_tcp_refused_total")?.get())?.values[0]?.value ?? 0)
      const cases: ReadonlyArray<readonly [unknown, string]> = [
        [{ _tag: "Request", id: "x", tag: "Echo", payload: {}, headers: [] }, "Request.id"],
        [{ _tag: "Request", id: "1", tag: "Echo", payload: {}, headers: 5 }, "Request.headers"],
        [{ _tag: "Request", id: "1", tag: "Echo", payload: {}, headers: [["a", 1]] }, "Request.headers.0.1"],
        [{ _tag: "Request", id: "2", tag: "List", payload: {}, headers: [] }, 'unknown rpc "List"'],
        [{ _tag: "Ack", requestId: "x" }, "Ack.requestId"],
        [{ _tag: "Interrupt", requestId: null }, "Interrupt.requestId"],
        [{ _tag: "Nope" }, 'unknown message _tag "Nope"'],
        [null, "expected a map with a _tag, got null"]
      ]
      const before = yield* refusedCount
      for (const [frame, expected] of cases) {
        const answer = yield* Effect.async<{ frames: ReadonlyArray<unknown>; closed: boolean }>((resume) => {
          const parser = RpcSerialization.msgPack.unsafeMake()
          const frames: Array<unknown> = []
          const socket = net.createConnection({ host: "127.0.0.1", port: address.port }, () => socket.write(parser.encode(frame) as Uint8Array))
          socket.on("data", (chunk) => frames.push(...parser.decode(chunk)))
          socket.on("error", () => {})
          socket.on("close", () => resume(Effect.succeed({ frames, closed: true })))
          return Effect.sync(() => socket.destroy())
        }).pipe(Effect.timeout("20 seconds"))
        expect(answer.closed).toBe(true)
        expect(answer.frames[0]).toMatchObject({ _tag: "Defect" })
        expect(JSON.stringify(answer.frames[0])).toContain(JSON.stringify(expected).slice(1, -1))
      }
      expect((yield* refusedCount) - before).toBe(cases.length)
      const client = yield* clientWith("tcp-secret")
      expect(yield* client.Echo({ text: "still here" })).toBe("echo: still here")
    }).pipe(Effect.scoped, Effect.provide(Server))
  )

  // Issue 17 item 3: one connection pipelining requests and never reading its answers took the
  // server from 120 MB to 1.44 GB and starved every other client. Now a connection has at most
  // `maxInFlight` requests with the rpc server, and is not read while its answers do not drain.
  it.live("a client that pipelines and never reads: bounded in flight and unsent bytes, reading paused, others served", () =>
    Effect.gen(function* () {
      const maxInFlight = 8
      const ctx = yield* Layer.build(
        rpcTcpServerLayer({ service: "echo", group: EchoRpcs, handlers: echoHandlers, secret, listen: { host: "127.0.0.1", port: 0 }, maxInFlight }).pipe(
          Layer.provide(Metrics.layer)
        )
      )
      const server = Context.get(ctx, RpcTcpServer)
      // 800 valid calls of 32 KiB each way: 25 MB of answers, far beyond what the kernel's
      // buffers hold for a peer that does not read.
      const total = 800
      const text = "x".repeat(32 * 1024)
      const parser = RpcSerialization.msgPack.unsafeMake()
      const frames: Array<Uint8Array> = []
      for (let i = 0; i < total; i++) {
        const payload = { text: `${i}:${text}` }
        const token = yield* generate(secret, `Echo\n${canonicalJson(payload)}`)
        frames.push(parser.encode({ _tag: "Request", id: String(i), tag: "Echo", payload, headers: [["x-prolo-auth", token]] }) as Uint8Array)
      }
      const flood = yield* Effect.acquireRelease(
        Effect.sync(() => {
          const socket = net.createConnection({ host: "127.0.0.1", port: server.address.port }, () => {
            socket.pause()
            socket.write(Buffer.concat(frames))
          })
          socket.on("error", () => {})
          return socket
        }),
        (socket) => Effect.sync(() => socket.destroy())
      )
      // Until the server has stopped reading the flood (or, without flow control, read all of
      // it): paused with the same count admitted 100 ms apart. The in-flight count need not be at
      // its bound then: reading also pauses when the answers back up with few requests running.
      const floodOf = (all: ReadonlyArray<RpcTcpConnectionStats>) => all.find((c) => c.admitted > 0)
      const floodStats = Effect.gen(function* () {
        let previous: RpcTcpConnectionStats | undefined
        for (let i = 0; i < 600; i++) {
          const now = floodOf(yield* server.connections)
          if (now !== undefined && now.admitted === total) return now
          if (now?.paused && previous?.paused && now.admitted === previous.admitted) return now
          previous = now
          yield* Effect.sleep("100 millis")
        }
        return previous
      })
      const stalled = yield* floodStats
      // Other connections are served while the flood stands.
      const client = yield* makeRpcTcpClient(EchoRpcs, { host: "127.0.0.1", port: server.address.port, secret })
      for (let i = 0; i < 20; i++) expect(yield* client.Echo({ text: `other ${i}` })).toBe(`echo: other ${i}`)
      const after = (yield* server.connections).find((c) => c.id === stalled?.id)
      expect(after?.paused).toBe(true)
      expect(after?.inFlight).toBeLessThanOrEqual(maxInFlight)
      // Read, not buffered: only what the kernel's buffers absorbed plus the in-flight bound.
      expect(after?.admitted).toBeLessThan(total / 2)
      // Unsent answers in the server's memory: the in-flight bound's worth, not the flood's.
      expect(after?.peakUnsent).toBeLessThan((maxInFlight + 2) * 34 * 1024)
      flood.destroy()
    }).pipe(Effect.scoped)
  )

  it.live("a port already taken: RpcTcpListenError naming the address, nothing served", () =>
    Effect.gen(function* () {
      const { address } = yield* RpcTcpServer
      const taken = yield* Effect.flip(
        Layer.build(
          rpcTcpServerLayer({ service: "echo", group: EchoRpcs, handlers: echoHandlers, secret, listen: { host: "127.0.0.1", port: address.port } }).pipe(
            Layer.provide(Metrics.layer)
          )
        )
      )
      expect(taken).toMatchObject({ _tag: "RpcTcpListenError", host: "127.0.0.1", port: address.port })
      expect(taken.message).toContain(`cannot listen on 127.0.0.1:${address.port}`)
      expect(taken.message).toContain("EADDRINUSE")
    }).pipe(Effect.scoped, Effect.provide(Server))
  )
})
