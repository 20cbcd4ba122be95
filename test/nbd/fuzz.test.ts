import { describe, expect, it } from "vitest"
import type { ExportBackend } from "../../src/nbd/backend.js"
import { makeMemoryBackend } from "../../src/nbd/memory-backend.js"
import { Cmd, CmdFlag, Info, Opt } from "../../src/nbd/protocol.js"
import { makeHarness, settle } from "./fake-transport.js"
import { connect, infoData, metaData, openSession, option, readSimpleReply, request, startServer } from "./harness.js"
import { mulberry32 } from "../support/random.js"

// Random and mutated client byte streams. The server must never throw, never hand the
// backend an out-of-range call, never hold more buffer bytes than its budget, and (over
// TCP) keep serving a well-behaved client throughout. Seeded, so a failure replays.

const SIZE = 1024 * 1024

// Fails the test if the server ever passes the backend a call outside the export.
const checked = (inner: ExportBackend, violations: Array<string>): ExportBackend => {
  const check = (op: string, offset: number, length: number) => {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > inner.size) {
      violations.push(`${op}(${offset}, ${length})`)
    }
  }
  return {
    ...inner,
    read: (b, l, o) => (check("read", o, l), inner.read(b, l, o)),
    write: (b, l, o, f) => (check("write", o, l), inner.write(b, l, o, f)),
    trim: (o, l, f) => (check("trim", o, l), inner.trim(o, l, f)),
    zero: (o, l, opts) => (check("zero", o, l), inner.zero(o, l, opts)),
    cache: (o, l) => (check("cache", o, l), inner.cache(o, l)),
    extents: (o, l) => (check("extents", o, l), inner.extents(o, l))
  }
}

const validStream = (rnd: () => number): Buffer => {
  const parts: Array<Buffer> = [Buffer.from([0, 0, 0, rnd() < 0.5 ? 3 : 1])]
  if (rnd() < 0.5) parts.push(option(Opt.LIST))
  if (rnd() < 0.6) parts.push(option(Opt.STRUCTURED_REPLY))
  if (rnd() < 0.4) parts.push(option(Opt.SET_META_CONTEXT, metaData("disk", ["base:allocation"])))
  if (rnd() < 0.3) parts.push(option(Opt.INFO, infoData("disk", [Info.BLOCK_SIZE, Info.NAME])))
  parts.push(rnd() < 0.8 ? option(Opt.GO, infoData(rnd() < 0.9 ? "disk" : "disk@0")) : option(Opt.EXPORT_NAME, Buffer.from("disk")))
  const n = 1 + Math.floor(rnd() * 12)
  for (let i = 0; i < n; i++) {
    const type = Math.floor(rnd() * 9)
    const len = rnd() < 0.8 ? Math.floor(rnd() * 9000) : Math.floor(rnd() * 2 * SIZE)
    const off = rnd() < 0.8 ? Math.floor(rnd() * SIZE) : Math.floor(rnd() * 2 ** 40)
    const flags = rnd() < 0.7 ? [0, CmdFlag.FUA, CmdFlag.DF, CmdFlag.NO_HOLE, CmdFlag.REQ_ONE, CmdFlag.FAST_ZERO][Math.floor(rnd() * 6)] : Math.floor(rnd() * 65536)
    const t = type === 8 ? Cmd.DISC : type
    const payload = t === Cmd.WRITE ? Buffer.alloc(Math.min(len, 20_000), 0x5a) : undefined
    parts.push(request(t, i, off, t === Cmd.WRITE ? (payload as Buffer).length : len, flags, payload))
  }
  return Buffer.concat(parts)
}

const mutate = (b: Buffer, rnd: () => number): Buffer => {
  let out = Buffer.from(b)
  const k = Math.floor(rnd() * 4)
  for (let i = 0; i < k; i++) {
    const at = Math.floor(rnd() * out.length)
    switch (Math.floor(rnd() * 6)) {
      case 0:
        out[at] = Math.floor(rnd() * 256)
        break
      case 1:
        if (at + 4 <= out.length) out.writeUInt32BE([0xffffffff, 0x80000000, 0, 0x7fffffff, 28][Math.floor(rnd() * 5)] as number, at)
        break
      case 2:
        out = Buffer.concat([out.subarray(0, at), out.subarray(Math.min(out.length, at + 1 + Math.floor(rnd() * 40)))])
        break
      case 3:
        out = Buffer.concat([out.subarray(0, at), Buffer.from(Array.from({ length: 1 + Math.floor(rnd() * 40) }, () => Math.floor(rnd() * 256))), out.subarray(at)])
        break
      case 4:
        out = out.subarray(0, at)
        break
      default: {
        const from = Math.floor(rnd() * out.length)
        out = Buffer.concat([out.subarray(0, at), out.subarray(from, from + 60), out.subarray(at)])
      }
    }
  }
  return out
}

const randomBytes = (rnd: () => number) => Buffer.from(Array.from({ length: Math.floor(rnd() * 200) }, () => Math.floor(rnd() * 256)))

describe("nbd fuzz", () => {
  it("survives 3000 random and mutated streams in-process with bounded memory", async () => {
    const rnd = mulberry32(0x5eed)
    const violations: Array<string> = []
    const budget = 256 * 1024
    let reachedTransmission = 0
    for (let c = 0; c < 3000; c++) {
      const backend = checked(makeMemoryBackend({ size: SIZE }), violations)
      const h = makeHarness([{ name: "disk", backend }], { budgetBytes: budget, maxPayload: 128 * 1024, maxInFlight: 8, maxOptionLength: 4096, maxSkippedOptionLength: 1 << 20 }, rnd() < 0.5)
      h.transport.take()
      const stream = rnd() < 0.15 ? randomBytes(rnd) : mutate(validStream(rnd), rnd)
      let pos = 0
      while (pos < stream.length) {
        const n = 1 + Math.floor(rnd() * 3000)
        h.conn.onData(stream.subarray(pos, pos + n))
        pos += n
        expect(h.conn.stats().budgetUsed).toBeLessThanOrEqual(budget)
        if (rnd() < 0.3) await settle(1)
      }
      if (rnd() < 0.3) h.conn.onEnd()
      await settle(3)
      const s = h.conn.stats()
      expect(s.budgetUsed).toBeLessThanOrEqual(budget)
      // Everything admitted gets answered (the memory backend always completes).
      if (!h.transport.destroyed && !s.blocked) expect(s.inFlight).toBe(s.receiving ? 1 : 0)
      if (h.conn.inTransmission()) reachedTransmission++
      h.conn.onClose()
    }
    expect(violations).toEqual([])
    // The mutations leave enough valid handshakes for the request decoder to be fuzzed too.
    expect(reachedTransmission).toBeGreaterThan(1000)
  })

  it("over TCP: 300 hostile connections, a well-behaved client keeps being served", async () => {
    const rnd = mulberry32(0xbad)
    const srv = await startServer([{ name: "disk", backend: makeMemoryBackend({ size: SIZE }) }], { handshakeTimeout: "2 seconds", shutdownTimeout: "2 seconds" })
    try {
      const good = await openSession(srv.port, "disk")
      good.client.write(request(Cmd.WRITE, 1, 4096, 5, 0, Buffer.from("alive")))
      expect((await readSimpleReply(good.client)).errno).toBe(0)
      for (let batch = 0; batch < 6; batch++) {
        const clients = await Promise.all(
          Array.from({ length: 50 }, async () => {
            const c = await connect(srv.port)
            c.write(rnd() < 0.2 ? randomBytes(rnd) : mutate(validStream(rnd), rnd))
            return c
          })
        )
        // Half are closed at once (mid-anything), the rest when the batch is checked.
        for (const c of clients) if (rnd() < 0.5) c.close()
        good.client.write(request(Cmd.READ, 100 + batch, 4096, 5))
        const r = await readSimpleReply(good.client, 5)
        expect(r).toMatchObject({ errno: 0, cookie: 100 + batch })
        expect(r.data.toString()).toBe("alive")
        const fresh = await openSession(srv.port, "disk")
        fresh.client.write(request(Cmd.READ, 7, 4096, 5))
        expect((await readSimpleReply(fresh.client, 5)).data.toString()).toBe("alive")
        fresh.client.close()
        for (const c of clients) c.close()
      }
      good.client.close()
    } finally {
      await srv.stop()
    }
  })
})
