import { it } from "@effect/vitest"
import { Effect, TestClock } from "effect"
import { describe, expect } from "vitest"
import { NbdExports } from "../../src/nbd/exports.js"
import { makeMemoryBackend } from "../../src/nbd/memory-backend.js"
import { Cmd } from "../../src/nbd/protocol.js"
import { make as makeServer, sharedReadBytes } from "../../src/nbd/server.js"
import { openSession, readSimpleReply, request, type Session, startServer, until } from "./harness.js"

const MiB = 1024 * 1024

// The server's data buffers are bounded across all connections (the pool's budget), not
// only per connection. These tests assert on the pool's own accounting, not on RSS.

// Every client asks for `reads` READs of `size` bytes and reads nothing back yet.
const stalledReaders = async (port: number, clients: number, reads: number, size: number): Promise<Array<Session>> => {
  const sessions = await Promise.all(Array.from({ length: clients }, () => openSession(port, "disk")))
  for (const s of sessions) {
    s.client.socket.pause()
    s.client.write(Buffer.concat(Array.from({ length: reads }, (_, i) => request(Cmd.READ, i, (i % 8) * size, size))))
  }
  return sessions
}

const readAll = async (s: Session, reads: number, size: number) => {
  s.client.socket.resume()
  const cookies: Array<number> = []
  for (let i = 0; i < reads; i++) {
    const r = await readSimpleReply(s.client, size)
    expect(r.errno).toBe(0)
    cookies.push(r.cookie)
  }
  return cookies.sort((a, b) => a - b)
}

describe("nbd memory budget across connections", () => {
  it.live("8 stalled clients with 48 × 512 KiB READs each hold at most the budget together; all finish once they read", () =>
    Effect.promise(async () => {
      const budget = 4 * MiB
      const srv = await startServer([{ name: "disk", backend: makeMemoryBackend({ size: 8 * MiB }) }], { memoryBudget: budget })
      const sessions: Array<Session> = []
      try {
        sessions.push(...(await stalledReaders(srv.port, 8, 48, MiB / 2)))
        // Stalled: every connection is blocked, and some wait for the pool itself (each
        // one's own 8 MiB share would let them hold 64 MiB together).
        await until(async () => {
          const conns = await Effect.runPromise(srv.server.stats)
          const mem = await Effect.runPromise(srv.server.memory)
          return conns.length === 8 && conns.every((c) => c.blocked) && mem.waiting > 0
        }, "every client to stall")
        const conns = await Effect.runPromise(srv.server.stats)
        const mem = await Effect.runPromise(srv.server.memory)
        expect(conns.some((c) => c.waitingForPool)).toBe(true)
        expect(conns.reduce((n, c) => n + c.budgetUsed, 0)).toBe(mem.heldBytes)
        expect(mem.heldBytes).toBeLessThanOrEqual(budget)

        const cookies = await Promise.all(sessions.map((s) => readAll(s, 48, MiB / 2)))
        for (const c of cookies) expect(c).toEqual(Array.from({ length: 48 }, (_, i) => i))
        const after = await Effect.runPromise(srv.server.memory)
        expect(after).toMatchObject({ heldBytes: 0, waiting: 0 })
        expect(after.peakBytes).toBeLessThanOrEqual(budget)
      } finally {
        for (const s of sessions) s.client.close()
        await srv.stop()
      }
    })
  )

  // A connection paused for the pool keeps the rest of the socket read that paused it
  // (copied out of the shared read buffer): at most one shared read each, so many paused
  // connections keep little outside the budget. Each client pauses its own reading, then
  // sends READs the pool cannot all grant, followed in the same burst by WRITEs with
  // their payloads: the connection pauses on a READ, with the WRITEs already read.
  it.live("8 connections paused for the pool each keep at most one shared read (16 KiB) of unread requests; all complete", () =>
    Effect.promise(async () => {
      // Enough READ data per client (24 MiB) that the kernel's socket buffers fill up.
      const clients = 8
      const reads = 48
      const writes = 8
      const readSize = 512 * 1024
      const writeSize = 32 * 1024
      const srv = await startServer([{ name: "disk", backend: makeMemoryBackend({ size: 8 * MiB }) }], { memoryBudget: 4 * MiB })
      const sessions: Array<Session> = []
      try {
        sessions.push(...(await Promise.all(Array.from({ length: clients }, () => openSession(srv.port, "disk")))))
        const region = (k: number) => k * writes * writeSize
        const payload = (k: number, j: number) => Buffer.alloc(writeSize, (k * writes + j) % 251)
        sessions.forEach((s, k) => {
          s.client.socket.pause()
          const burst = [
            ...Array.from({ length: reads }, (_, i) => request(Cmd.READ, i, (i % 8) * readSize, readSize)),
            ...Array.from({ length: writes }, (_, j) => request(Cmd.WRITE, 100 + j, region(k) + j * writeSize, writeSize, 0, payload(k, j)))
          ]
          s.client.write(Buffer.concat(burst))
        })
        await until(async () => {
          const conns = await Effect.runPromise(srv.server.stats)
          return conns.length === clients && conns.every((c) => c.blocked) && (await Effect.runPromise(srv.server.memory)).waiting > 0
        }, "every client to stall")
        const conns = await Effect.runPromise(srv.server.stats)
        // The scenario does stash (WRITEs read behind a paused READ)...
        expect(conns.some((c) => c.stashedBytes > 0)).toBe(true)
        // ...and no connection keeps more than one shared read of it.
        for (const c of conns) expect(c.stashedBytes).toBeLessThanOrEqual(sharedReadBytes)

        await Promise.all(
          sessions.map(async (s) => {
            s.client.socket.resume()
            const cookies: Array<number> = []
            for (let i = 0; i < reads + writes; i++) {
              const h = await s.client.read(16)
              expect(h.readUInt32BE(4)).toBe(0)
              const cookie = Number(h.readBigUInt64BE(8))
              if (cookie < 100) await s.client.read(readSize)
              cookies.push(cookie)
            }
            expect(cookies.sort((a, b) => a - b)).toEqual([...Array.from({ length: reads }, (_, i) => i), ...Array.from({ length: writes }, (_, j) => 100 + j)])
          })
        )
        // What was stashed was replayed intact: every client's WRITEs landed.
        for (const [k, s] of sessions.entries()) {
          s.client.write(request(Cmd.READ, 999, region(k), writes * writeSize))
          const back = await readSimpleReply(s.client, writes * writeSize)
          expect(back.errno).toBe(0)
          expect(back.data.equals(Buffer.concat(Array.from({ length: writes }, (_, j) => payload(k, j))))).toBe(true)
        }
        expect(await Effect.runPromise(srv.server.memory)).toMatchObject({ heldBytes: 0, waiting: 0 })
      } finally {
        for (const s of sessions) s.client.close()
        await srv.stop()
      }
    })
  )

  it.live("a READ larger than the whole budget waits for the others to finish, then runs: no deadlock", () =>
    Effect.promise(async () => {
      const budget = 2 * MiB
      const srv = await startServer([{ name: "disk", backend: makeMemoryBackend({ size: 64 * MiB }) }], { memoryBudget: budget })
      const sessions: Array<Session> = []
      try {
        sessions.push(...(await stalledReaders(srv.port, 4, 64, MiB)))
        await until(async () => (await Effect.runPromise(srv.server.memory)).waiting > 0, "the small readers to fill the budget")
        const big = await openSession(srv.port, "disk")
        sessions.push(big)
        big.client.write(request(Cmd.READ, 99, 0, 8 * MiB))
        await until(async () => (await Effect.runPromise(srv.server.stats)).some((c) => c.waitingForPool && c.inFlight === 0), "the large READ to wait")
        const small = sessions.slice(0, 4).map((s) => readAll(s, 64, MiB))
        const reply = await readSimpleReply(big.client, 8 * MiB)
        expect(reply).toMatchObject({ errno: 0, cookie: 99 })
        await Promise.all(small)
        expect(await Effect.runPromise(srv.server.memory)).toMatchObject({ heldBytes: 0, waiting: 0 })
      } finally {
        for (const s of sessions) s.client.close()
        await srv.stop()
      }
    })
  )

  it.scoped("free buffers are dropped and memory given back after a quiet period (TestClock)", () =>
    Effect.gen(function* () {
      const exports = yield* NbdExports
      yield* exports.add({ name: "disk", backend: makeMemoryBackend({ size: 8 * MiB }) })
      let released = 0
      const server = yield* makeServer({
        host: "127.0.0.1",
        port: 0,
        memoryBudget: 8 * MiB,
        idleTrimAfter: "10 seconds",
        releaseMemory: () => released++
      })
      const load = (s: Session) =>
        Effect.promise(async () => {
          s.client.write(Buffer.concat(Array.from({ length: 4 }, (_, i) => request(Cmd.READ, i, i * MiB, MiB))))
          for (let i = 0; i < 4; i++) expect((await readSimpleReply(s.client, MiB)).errno).toBe(0)
          await until(async () => (await Effect.runPromise(server.memory)).heldBytes === 0, "the buffers to come back")
        })
      const s = yield* Effect.promise(() => openSession(server.address.port, "disk"))
      yield* load(s)
      expect((yield* server.memory).retainedBytes).toBeGreaterThan(0)

      // Busy during the first period: nothing is dropped yet.
      yield* TestClock.adjust("10 seconds")
      expect((yield* server.memory).retainedBytes).toBeGreaterThan(0)
      expect(released).toBe(0)
      // A whole quiet period: dropped, and memory given back once.
      yield* TestClock.adjust("10 seconds")
      expect((yield* server.memory).retainedBytes).toBe(0)
      expect(released).toBe(1)
      yield* TestClock.adjust("30 seconds")
      expect(released).toBe(1)

      // Load again, quiet again: given back again.
      yield* load(s)
      yield* TestClock.adjust("20 seconds")
      expect((yield* server.memory).retainedBytes).toBe(0)
      expect(released).toBe(2)
      s.client.close()
    }).pipe(Effect.provide(NbdExports.layer))
  )
})
