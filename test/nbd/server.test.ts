import * as net from "node:net"
import { it } from "@effect/vitest"
import { Effect, Exit, Fiber, Scope, TestClock } from "effect"
import { describe, expect } from "vitest"
import type { ExportBackend } from "../../src/nbd/backend.js"
import { NbdExports } from "../../src/nbd/exports.js"
import { makeMemoryBackend } from "../../src/nbd/memory-backend.js"
import { Cmd } from "../../src/nbd/protocol.js"
import { make as makeServer } from "../../src/nbd/server.js"
import { connect, openSession, readSimpleReply, request, until } from "./harness.js"

const MiB = 1024 * 1024
const io = <A>(f: () => Promise<A>) => Effect.promise(f)

/** A 1 MiB memory export whose reads wait until the test opens their gate (in arrival order). */
const gatedBackend = () => {
  const mem = makeMemoryBackend({ size: MiB })
  const gates: Array<() => void> = []
  const backend: ExportBackend = {
    ...mem,
    read: (b, l, o) => new Promise((resolve, reject) => gates.push(() => mem.read(b, l, o).then(resolve, reject)))
  }
  return { backend, gates }
}

describe("nbd server lifecycle", () => {
  it.scoped("drops a client that does not finish the handshake in time (TestClock)", () =>
    Effect.gen(function* () {
      const exports = yield* NbdExports
      yield* exports.add({ name: "disk", backend: makeMemoryBackend({ size: MiB }) })
      const server = yield* makeServer({ host: "127.0.0.1", port: 0, handshakeTimeout: "30 seconds" })
      const idle = yield* io(() => connect(server.address.port))
      const done = yield* io(() => openSession(server.address.port, "disk"))
      yield* io(() => idle.read(18))
      yield* TestClock.adjust("29 seconds")
      expect(idle.isClosed()).toBe(false)
      yield* TestClock.adjust("2 seconds")
      yield* io(() => idle.closed)
      // A client in transmission is never timed out: it may sit idle for hours.
      done.client.write(request(Cmd.READ, 1, 0, 4))
      expect((yield* io(() => readSimpleReply(done.client, 4))).errno).toBe(0)
      done.client.close()
    }).pipe(Effect.provide(NbdExports.layer))
  )

  it.effect("closing the scope stops accepting, answers what is in flight, then closes", () =>
    Effect.gen(function* () {
      const { backend, gates } = gatedBackend()
      const exports = yield* NbdExports
      yield* exports.add({ name: "disk", backend })
      const scope = yield* Scope.make()
      const server = yield* makeServer({ host: "127.0.0.1", port: 0 }).pipe(Scope.extend(scope))
      const port = server.address.port
      const s = yield* io(() => openSession(port, "disk"))
      s.client.write(request(Cmd.READ, 42, 0, 4))
      yield* io(() => until(() => gates.length === 1, "the read to reach the backend"))
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* io(() =>
        until(
          () =>
            new Promise<boolean>((resolve) => {
              const probe = net.connect({ port, host: "127.0.0.1" })
              probe.once("error", () => resolve(true))
              probe.once("connect", () => {
                probe.destroy()
                resolve(false)
              })
            }),
          "the listener to close"
        )
      )
      gates[0]?.()
      const reply = yield* io(() => readSimpleReply(s.client, 4))
      expect(reply).toMatchObject({ errno: 0, cookie: 42 })
      yield* io(() => s.client.closed)
      yield* Fiber.join(closing)
    }).pipe(Effect.provide(NbdExports.layer))
  )

  it.scopedLive("after DISC it answers what is in flight, then closes, though the client keeps its side open", () =>
    Effect.gen(function* () {
      const { backend, gates } = gatedBackend()
      const exports = yield* NbdExports
      yield* exports.add({ name: "disk", backend })
      const server = yield* makeServer({ host: "127.0.0.1", port: 0 })
      const s = yield* io(() => openSession(server.address.port, "disk", { halfOpen: true }))
      s.client.write(Buffer.concat([request(Cmd.READ, 7, 0, 4), request(Cmd.DISC, 8, 0, 0)]))
      yield* io(() => until(() => gates.length === 1, "the read to reach the backend"))
      expect(yield* server.connections).toBe(1)
      gates[0]?.()
      expect(yield* io(() => readSimpleReply(s.client, 4))).toMatchObject({ errno: 0, cookie: 7 })
      yield* io(() => s.client.closed)
      // Fully closed on the server's side, not waiting for the client's FIN.
      yield* io(() => until(() => Effect.runPromise(server.connections).then((n) => n === 0), "the server to close the connection", 200))
      expect(s.client.socket.writable).toBe(true)
      expect(s.client.buffered()).toBe(0)
      s.client.close()
    }).pipe(Effect.provide(NbdExports.layer))
  )

  it.scoped("fails with NbdListenError when the port is taken", () =>
    Effect.gen(function* () {
      const first = yield* makeServer({ host: "127.0.0.1", port: 0 })
      const err = yield* Effect.flip(makeServer({ host: "127.0.0.1", port: first.address.port }))
      expect(err._tag).toBe("NbdListenError")
      expect(err.message).toMatch(/EADDRINUSE/)
    }).pipe(Effect.provide(NbdExports.layer))
  )
})
