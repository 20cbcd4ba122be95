import * as SocketServer from "@effect/platform/SocketServer"
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Layer, Redacted, Stream } from "effect"
import { Metrics } from "../../src/runtime/metrics.js"
import { makeRpcTcpClient, rpcTcpServerLayer } from "../../src/runtime/rpc-tcp.js"
import { EchoRpcs, echoHandlers } from "./rpc-echo-group.js"

const secret = Redacted.make("tcp-secret")

const Server = rpcTcpServerLayer({
  service: "echo",
  group: EchoRpcs,
  handlers: echoHandlers,
  secret,
  listen: { host: "127.0.0.1", port: 0 }
}).pipe(Layer.provide(Metrics.layer))

const clientWith = (key: string) =>
  Effect.gen(function* () {
    const server = yield* SocketServer.SocketServer
    if (server.address._tag !== "TcpAddress") return yield* Effect.dieMessage("expected a TCP address")
    return yield* makeRpcTcpClient(EchoRpcs, { host: "127.0.0.1", port: server.address.port, secret: Redacted.make(key) })
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
})
