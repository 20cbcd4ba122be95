import { Effect, Either } from "effect"
import { afterEach, describe, expect, it } from "vitest"
import type { ExportBackend } from "../../src/nbd/backend.js"
import { parseWireName } from "../../src/nbd/export-name.js"
import { makeMemoryBackend } from "../../src/nbd/memory-backend.js"
import { Cmd, Opt, Rep } from "../../src/nbd/protocol.js"
import { connect, infoData, openSession, option, readOptionReplies, readSimpleReply, request, type RunningServer, startServer, until } from "./harness.js"

const MiB = 1024 * 1024
let running: RunningServer | undefined
afterEach(async () => {
  await running?.stop()
  running = undefined
})

const start = async (specs: Parameters<typeof startServer>[0]) => {
  running = await startServer(specs)
  return running
}

const goReply = async (port: number, name: string) => {
  const c = await connect(port)
  await c.read(18)
  c.write(Buffer.from([0, 0, 0, 3]))
  c.write(option(Opt.GO, infoData(name)))
  const replies = await readOptionReplies(c)
  c.close()
  return replies[replies.length - 1]
}

describe("export names", () => {
  it("parses NAME and NAME@GEN, refuses bad generations", () => {
    expect(parseWireName("alice")).toEqual({ _tag: "Name", name: "alice", generation: undefined })
    expect(parseWireName("alice@7")).toEqual({ _tag: "Name", name: "alice", generation: 7 })
    expect(parseWireName("alice@0")).toEqual({ _tag: "Name", name: "alice", generation: 0 })
    for (const bad of ["alice@", "alice@07", "alice@-1", "alice@1.5", "alice@x", "a@b@1", "alice@99999999999999999999"]) {
      expect(parseWireName(bad)._tag).toBe("Invalid")
    }
  })
})

describe("export registry", () => {
  it("validates names and generations with specific errors and changes nothing", async () => {
    const { exports } = await start([{ name: "alice", backend: makeMemoryBackend({ size: MiB }), generation: 7 }])
    const fail = async (e: Effect.Effect<unknown, { readonly _tag: string; readonly message: string }>) => {
      const r = await Effect.runPromise(Effect.either(e))
      if (Either.isRight(r)) throw new Error("expected a failure")
      return `${r.left._tag}: ${r.left.message}`
    }
    const backend = makeMemoryBackend({ size: MiB })
    expect(await fail(exports.add({ name: "a@1", backend }))).toMatch(/NbdInvalidExport.*reserved/)
    expect(await fail(exports.add({ name: "", backend }))).toMatch(/NbdInvalidExport.*empty/)
    expect(await fail(exports.add({ name: "bob", backend, generation: -1 }))).toMatch(/NbdInvalidExport.*generation/)
    expect(await fail(exports.add({ name: "alice", backend }))).toMatch(/NbdExportExists.*generation 7/)
    expect(await fail(exports.add({ name: "alice", backend, generation: 7 }))).toMatch(/NbdStaleGeneration/)
    expect(await fail(exports.grant("alice", 6))).toMatch(/NbdStaleGeneration.*generation 7; generation 6 is not newer/)
    expect(await fail(exports.grant("nobody", 1))).toMatch(/NbdExportNotFound/)
    expect(await fail(exports.grant("alice", 1.5))).toMatch(/NbdInvalidExport/)
    expect(await fail(exports.remove("nobody"))).toMatch(/NbdExportNotFound/)
    expect(await fail(exports.setDefault("nobody"))).toMatch(/NbdExportNotFound: no NBD export named "nobody"/)
    const list = await Effect.runPromise(exports.list)
    expect(list).toEqual([{ name: "alice", description: "", size: MiB, readOnly: false, generation: 7, connections: 0 }])
  })

  it("granting g+1 cuts connections of generation ≤ g and refuses them afterwards", async () => {
    const srv = await start([
      { name: "alice", backend: makeMemoryBackend({ size: MiB }), generation: 7 },
      { name: "bob", backend: makeMemoryBackend({ size: MiB }) }
    ])
    const plain = await openSession(srv.port, "alice")
    const pinned = await openSession(srv.port, "alice@7")
    const bob = await openSession(srv.port, "bob")
    expect((await Effect.runPromise(srv.exports.get("alice"))).connections).toBe(2)

    const info = await Effect.runPromise(srv.exports.grant("alice", 8))
    expect(info).toMatchObject({ generation: 8, connections: 0 })
    await plain.client.closed
    await pinned.client.closed

    // The others are untouched.
    bob.client.write(request(Cmd.READ, 1, 0, 4))
    expect((await readSimpleReply(bob.client, 4)).errno).toBe(0)

    expect(await goReply(srv.port, "alice@7")).toMatchObject({ type: Rep.ERR_UNKNOWN })
    expect((await goReply(srv.port, "alice@7"))?.data.toString()).toMatch(/generation 8, not 7/)
    expect(await goReply(srv.port, "alice@8")).toMatchObject({ type: Rep.ACK })
    expect(await goReply(srv.port, "alice")).toMatchObject({ type: Rep.ACK })
    expect(await goReply(srv.port, "alice@9")).toMatchObject({ type: Rep.ERR_UNKNOWN })
    expect(await goReply(srv.port, "alice@x")).toMatchObject({ type: Rep.ERR_UNKNOWN })
  })

  it("grant returns only after the stale connection's in-flight writes settled; later ones never run", async () => {
    const mem = makeMemoryBackend({ size: MiB })
    const gates: Array<() => void> = []
    let writes = 0
    const backend: ExportBackend = {
      ...mem,
      write: (buf, len, off, fua) => {
        writes++
        return new Promise((resolve, reject) => gates.push(() => mem.write(buf, len, off, fua).then(resolve, reject)))
      }
    }
    const srv = await start([{ name: "home", backend, generation: 1 }])
    const s = await openSession(srv.port, "home")
    s.client.write(request(Cmd.WRITE, 1, 0, 4, 0, Buffer.from("old!")))
    await until(() => gates.length === 1, "the write to reach the backend")

    let granted = false
    const grant = Effect.runPromise(srv.exports.grant("home", 2)).then(() => (granted = true))
    await s.client.closed
    // The stale client keeps sending; none of it may reach the backend.
    s.client.write(request(Cmd.WRITE, 2, 0, 4, 0, Buffer.from("late")))
    await new Promise((r) => setImmediate(r))
    expect(granted).toBe(false)
    gates[0]?.()
    await grant
    expect(writes).toBe(1)

    const fresh = await openSession(srv.port, "home@2")
    fresh.client.write(request(Cmd.READ, 3, 0, 4))
    expect((await readSimpleReply(fresh.client, 4)).data.toString()).toBe("old!")
  })

  it("the default export follows its name; when it is removed, the empty name is refused", async () => {
    const srv = await start([{ name: "home", backend: makeMemoryBackend({ size: MiB }), generation: 4 }])
    expect(await goReply(srv.port, "")).toMatchObject({ type: Rep.ERR_UNKNOWN })
    await Effect.runPromise(srv.exports.setDefault("home"))
    expect(await goReply(srv.port, "")).toMatchObject({ type: Rep.ACK })
    expect(await goReply(srv.port, "@4")).toMatchObject({ type: Rep.ACK })
    await Effect.runPromise(srv.exports.grant("home", 5))
    expect((await goReply(srv.port, "@4"))?.data.toString()).toBe('export "home" is at generation 5, not 4')
    await Effect.runPromise(srv.exports.remove("home"))
    expect((await goReply(srv.port, ""))?.data.toString()).toBe('no export named "home"')
    await Effect.runPromise(srv.exports.setDefault(undefined))
    expect((await goReply(srv.port, ""))?.data.toString()).toMatch(/^this server has no default export/)
  })

  it("remove and replacement at a newer generation disconnect clients; the new backend is served", async () => {
    const srv = await start([
      { name: "a", backend: makeMemoryBackend({ size: MiB }) },
      { name: "b", backend: makeMemoryBackend({ size: MiB }) }
    ])
    const a = await openSession(srv.port, "a")
    const b = await openSession(srv.port, "b")
    await Effect.runPromise(srv.exports.remove("a"))
    await a.client.closed
    expect(await goReply(srv.port, "a")).toMatchObject({ type: Rep.ERR_UNKNOWN })

    await Effect.runPromise(srv.exports.add({ name: "b", backend: makeMemoryBackend({ size: 2 * MiB }), generation: 5 }))
    await b.client.closed
    const again = await openSession(srv.port, "b")
    expect(again.size).toBe(2 * MiB)
  })
})
