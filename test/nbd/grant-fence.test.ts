import { Clock, Effect, ManagedRuntime, TestClock, TestContext } from "effect"
import { afterEach, describe, expect, it } from "vitest"
import type { ExportBackend } from "../../src/nbd/backend.js"
import { makeMemoryBackend } from "../../src/nbd/memory-backend.js"
import { Cmd, Opt, Rep } from "../../src/nbd/protocol.js"
import {
  connect,
  infoData,
  openSession,
  option,
  readOptionReplies,
  readSimpleReply,
  request,
  type RawClient,
  type RunningServer,
  startServer,
  until
} from "./harness.js"

// The fence a new generation stands on (issue 16 item 13): while `grant(g+1)` (or `add` of
// a replacement) waits for the old generation's in-flight backend calls, no client may
// attach, or its acknowledged write can be overwritten by an old write that lands later.
// The backends here are slowed down deterministically: a gate the test opens, or a sleep
// on a TestClock.

const MiB = 1024 * 1024
let running: RunningServer | undefined
afterEach(async () => {
  await running?.stop()
  running = undefined
})

// Writes block until the test releases them (in any order it likes); `open()` lets every
// later write through at once.
const gatedBackend = (size: number) => {
  const mem = makeMemoryBackend({ size })
  const held: Array<() => void> = []
  let isOpen = false
  const backend: ExportBackend = {
    ...mem,
    write: (buf, len, off, fua) =>
      isOpen ? mem.write(buf, len, off, fua) : new Promise((resolve, reject) => held.push(() => mem.write(buf, len, off, fua).then(resolve, reject)))
  }
  return { backend, held, open: () => (isOpen = true) }
}

// Connections still in the handshake that the server stopped reading: a GO waiting for a fence.
const waitingAttaches = async (srv: RunningServer) =>
  (await Effect.runPromise(srv.server.stats)).filter((s) => !s.inTransmission && s.blocked).length

// Greeting, flags, GO: the GO's replies are left for the test to read.
const sendGo = async (port: number, name: string): Promise<RawClient> => {
  const c = await connect(port)
  await c.read(18)
  c.write(Buffer.from([0, 0, 0, 3]))
  c.write(option(Opt.GO, infoData(name)))
  return c
}

const firstByte = async (port: number, name: string) => {
  const s = await openSession(port, name)
  s.client.write(request(Cmd.READ, 9, 0, 2 * MiB))
  const { data } = await readSimpleReply(s.client, 2 * MiB)
  s.client.close()
  return { first: data[0], last: data[2 * MiB - 1] }
}

describe("grant fences before anyone attaches", () => {
  it("a new-generation write acknowledged during grant is never overwritten by a fenced one", async () => {
    const gate = gatedBackend(4 * MiB)
    const srv = (running = await startServer([{ name: "home", backend: gate.backend, generation: 1 }]))
    const old = await openSession(srv.port, "home")
    old.client.write(request(Cmd.WRITE, 1, 0, 2 * MiB, 0, Buffer.alloc(2 * MiB, 0xaa)))
    await until(() => gate.held.length === 1, "the old 2 MiB WRITE to reach the backend")

    const grant = Effect.runPromise(srv.exports.grant("home", 2))
    // The new generation's client sends its GO and, right behind it, a WRITE.
    const fresh = await sendGo(srv.port, "home@2")
    fresh.write(request(Cmd.WRITE, 2, 0, 2 * MiB, 0, Buffer.alloc(2 * MiB, 0xbb)))
    // Either its write got through to the backend (the race), or it is held at GO.
    await until(async () => gate.held.length === 2 || (await waitingAttaches(srv)) === 1, "the new client to attach or to wait")
    const answeredWhileOldWriteHeld = fresh.buffered() > 0
    // Worst order for the race: the new write first, then the old one.
    gate.held[1]?.()
    gate.held[0]?.()
    gate.open()
    await grant

    const replies = await readOptionReplies(fresh)
    expect(replies[replies.length - 1]?.type).toBe(Rep.ACK)
    expect(await readSimpleReply(fresh)).toMatchObject({ errno: 0, cookie: 2 })
    await old.client.closed
    expect({ answeredWhileOldWriteHeld, bytes: await firstByte(srv.port, "home") }).toEqual({
      answeredWhileOldWriteHeld: false,
      bytes: { first: 0xbb, last: 0xbb }
    })
    fresh.close()
  })

  it("an attach during the replacement of an export (add at a newer generation) waits as well, then gets the new backend", async () => {
    const gate = gatedBackend(MiB)
    const srv = (running = await startServer([{ name: "home", backend: gate.backend, generation: 1 }]))
    const old = await openSession(srv.port, "home")
    old.client.write(request(Cmd.WRITE, 1, 0, 4096, 0, Buffer.alloc(4096, 0xaa)))
    await until(() => gate.held.length === 1, "the old WRITE to reach the backend")

    const replaced = Effect.runPromise(srv.exports.add({ name: "home", backend: makeMemoryBackend({ size: 2 * MiB }), generation: 2 }))
    const fresh = await sendGo(srv.port, "home")
    await until(async () => (await waitingAttaches(srv)) === 1, "the new client to wait")
    expect(fresh.buffered()).toBe(0)
    // A client pinned to the old generation is refused at once, not held.
    const stale = await sendGo(srv.port, "home@1")
    expect((await readOptionReplies(stale)).map((r) => [r.type, r.data.toString()])).toEqual([
      [Rep.ERR_UNKNOWN, 'export "home" is at generation 2, not 1']
    ])
    stale.close()
    gate.held[0]?.()
    await replaced
    const replies = await readOptionReplies(fresh)
    const exp = replies.find((r) => r.type === Rep.INFO && r.data.readUInt16BE(0) === 0)
    expect(Number(exp?.data.readBigUInt64BE(2))).toBe(2 * MiB)
    fresh.close()
  })

  // A held connection is not read (so a flood behind its GO cannot grow the server): its
  // hang-up is seen once the fence resolves (or at the handshake timeout).
  it("a client that hangs up while held is closed once the fence resolves, having written nothing", async () => {
    const gate = gatedBackend(MiB)
    const srv = (running = await startServer([{ name: "home", backend: gate.backend, generation: 1 }]))
    const old = await openSession(srv.port, "home")
    old.client.write(request(Cmd.WRITE, 1, 0, 4096, 0, Buffer.alloc(4096, 0xaa)))
    await until(() => gate.held.length === 1, "the old WRITE to reach the backend")
    const grant = Effect.runPromise(srv.exports.grant("home", 2))
    const fresh = await sendGo(srv.port, "home")
    await until(async () => (await waitingAttaches(srv)) === 1, "the new client to wait")
    fresh.write(request(Cmd.WRITE, 2, 0, 4096, 0, Buffer.alloc(4096, 0xbb)).subarray(0, 100))
    fresh.close()
    gate.held[0]?.()
    expect(await grant).toMatchObject({ generation: 2 })
    await until(async () => (await Effect.runPromise(srv.server.connections)) === 0, "both connections to be gone")
    expect({ writes: gate.held.length, attached: (await Effect.runPromise(srv.exports.get("home"))).connections }).toEqual({ writes: 1, attached: 0 })
  })

  it("the new attach waits exactly as long as the old write takes (7 s on a TestClock), not longer", async () => {
    const clock = ManagedRuntime.make(TestContext.TestContext)
    try {
      const mem = makeMemoryBackend({ size: 4 * MiB })
      let settled = 0
      const backend: ExportBackend = {
        ...mem,
        write: (buf, len, off, fua) =>
          clock
            .runPromise(Effect.sleep("7 seconds"))
            .then(() => mem.write(buf, len, off, fua))
            .then(() => void settled++)
      }
      const srv = (running = await startServer([{ name: "home", backend, generation: 1 }]))
      const old = await openSession(srv.port, "home")
      const t0 = await clock.runPromise(Clock.currentTimeMillis)
      old.client.write(request(Cmd.WRITE, 1, 0, 2 * MiB, 0, Buffer.alloc(2 * MiB, 0xaa)))
      await until(async () => (await clock.runPromise(TestClock.sleeps())).length === 1, "the old WRITE to sleep in the backend")

      const grant = Effect.runPromise(srv.exports.grant("home", 2))
      const fresh = await sendGo(srv.port, "home@2")
      await until(async () => (await waitingAttaches(srv)) === 1, "the new client to wait")
      await clock.runPromise(TestClock.adjust("6 seconds"))
      expect({ settled, waiting: await waitingAttaches(srv), answered: fresh.buffered() }).toEqual({ settled: 0, waiting: 1, answered: 0 })

      await clock.runPromise(TestClock.adjust("1 second"))
      const replies = await readOptionReplies(fresh)
      const waited = (await clock.runPromise(Clock.currentTimeMillis)) - t0
      await grant
      expect({ ack: replies[replies.length - 1]?.type, settled, waited }).toEqual({ ack: Rep.ACK, settled: 1, waited: 7000 })
      console.log(`new attach at home@2 answered after ${waited / 1000} s of TestClock time, behind an old write of 7 s`)
      fresh.close()
    } finally {
      await clock.dispose()
    }
  })
})
