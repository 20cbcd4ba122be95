import { describe, expect, it } from "vitest"
import type { ExportBackend } from "../../src/nbd/backend.js"
import { backendFailure } from "../../src/nbd/backend.js"
import { makeMemoryBackend } from "../../src/nbd/memory-backend.js"
import { Cmd, CmdFlag, Errno, Opt, ReplyType } from "../../src/nbd/protocol.js"
import { encodeExtents, type Request } from "../../src/nbd/transmission.js"
import { infoData, metaData, option, request } from "./harness.js"
import { makeHarness, settle } from "./fake-transport.js"

const MiB = 1024 * 1024

// A backend whose calls wait until the test lets them finish.
const gated = (inner: ExportBackend) => {
  const gates: Array<{ op: string; open: () => void }> = []
  const hold =
    <A extends Array<unknown>>(op: string, f: (...a: A) => Promise<unknown>) =>
    (...a: A) =>
      new Promise<never>((resolve, reject) => {
        gates.push({ op, open: () => (f(...a) as Promise<never>).then(resolve, reject) })
      })
  const backend: ExportBackend = {
    ...inner,
    read: hold("read", inner.read),
    write: hold("write", inner.write),
    flush: hold("flush", inner.flush)
  }
  return { backend, gates }
}

// Reply parser for what the fake transport collected.
const simpleReplies = (b: Buffer, readLengths: Map<number, number> = new Map()) => {
  const out: Array<{ errno: number; cookie: number; data: Buffer }> = []
  let o = 0
  while (o < b.length) {
    expect(b.readUInt32BE(o)).toBe(0x67446698)
    const errno = b.readUInt32BE(o + 4)
    const cookie = Number(b.readBigUInt64BE(o + 8))
    const len = errno === 0 ? (readLengths.get(cookie) ?? 0) : 0
    out.push({ errno, cookie, data: b.subarray(o + 16, o + 16 + len) })
    o += 16 + len
  }
  return out
}

const session = (backend: ExportBackend, opts: { structured?: boolean; allocation?: boolean; readOnly?: boolean } = {}, limits = {}) => {
  const h = makeHarness([{ name: "disk", backend, readOnly: opts.readOnly ?? false }], limits)
  h.conn.onData(Buffer.from([0, 0, 0, 3]))
  if (opts.structured) h.conn.onData(option(Opt.STRUCTURED_REPLY))
  if (opts.allocation) h.conn.onData(option(Opt.SET_META_CONTEXT, metaData("disk", ["base:allocation"])))
  h.conn.onData(option(Opt.GO, infoData("disk")))
  h.transport.take()
  expect(h.conn.inTransmission()).toBe(true)
  return h
}

describe("nbd transmission", () => {
  it("writes and reads back, with the payload split at every byte boundary", async () => {
    const mem = makeMemoryBackend({ size: 1 * MiB })
    const h = session(mem)
    const payload = Buffer.from(Array.from({ length: 300 }, (_, i) => i & 0xff))
    const bytes = Buffer.concat([request(Cmd.WRITE, 1, 70_000, 300, 0, payload), request(Cmd.READ, 2, 70_000, 300)])
    for (let i = 0; i < bytes.length; i += 7) h.conn.onData(bytes.subarray(i, i + 7))
    await settle()
    const replies = simpleReplies(h.transport.take(), new Map([[2, 300]]))
    expect(replies.map((r) => [r.cookie, r.errno])).toEqual([
      [1, 0],
      [2, 0]
    ])
    expect(replies[1]?.data.equals(payload)).toBe(true)
  })

  it("receives WRITE payloads straight into their buffers where nextRead points the socket", async () => {
    const mem = makeMemoryBackend({ size: 1 * MiB })
    const h = makeHarness([{ name: "disk", backend: mem }], {}, true)
    const shared = Buffer.alloc(256)
    // What socket-reads.ts and the kernel do: each read lands in the buffer nextRead gave.
    let into: Buffer = shared
    const places: Array<string> = []
    const deliver = (bytes: Buffer) => {
      for (let pos = 0; pos < bytes.length; ) {
        const n = Math.min(97, into.length, bytes.length - pos)
        bytes.copy(into, 0, pos, pos + n)
        pos += n
        h.conn.onData(into.subarray(0, n))
        into = h.conn.nextRead(shared)
        places.push(into === shared ? "shared" : into.length === 28 ? "header" : "payload")
      }
    }
    deliver(Buffer.from([0, 0, 0, 3]))
    deliver(option(Opt.GO, infoData("disk")))
    h.transport.take()
    const a = Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 7) & 0xff))
    const b = Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 13) & 0xff))
    places.length = 0
    deliver(Buffer.concat([request(Cmd.WRITE, 1, 4096, 300, 0, a), request(Cmd.WRITE, 2, 9000, 5000, 0, b)]))
    deliver(Buffer.concat([request(Cmd.READ, 3, 4096, 300), request(Cmd.READ, 4, 9000, 5000)]))
    await settle()
    // The first payload starts in the shared read; the rest of it and all of the second
    // come in place; between them only the next header is read; READs use the shared buffer.
    expect(places).toContain("payload")
    expect(places).toContain("header")
    expect(places.at(-1)).toBe("shared")
    const replies = simpleReplies(h.transport.take(), new Map([[3, 300], [4, 5000]]))
    expect(replies.map((r) => [r.cookie, r.errno])).toEqual([
      [1, 0],
      [2, 0],
      [3, 0],
      [4, 0]
    ])
    expect(replies[2]?.data.equals(a)).toBe(true)
    expect(replies[3]?.data.equals(b)).toBe(true)
  })

  it("answers pipelined requests out of order and echoes cookies", async () => {
    const { backend, gates } = gated(makeMemoryBackend({ size: 1 * MiB }))
    const h = session(backend)
    h.conn.onData(Buffer.concat([request(Cmd.READ, 0xaaaa_0000_0001, 0, 10), request(Cmd.READ, 0xbbbb_0000_0002, 512, 20)]))
    expect(gates.length).toBe(2)
    gates[1]?.open()
    await settle()
    gates[0]?.open()
    await settle()
    const replies = simpleReplies(h.transport.take(), new Map([[0xaaaa_0000_0001, 10], [0xbbbb_0000_0002, 20]]))
    expect(replies.map((r) => r.cookie)).toEqual([0xbbbb_0000_0002, 0xaaaa_0000_0001])
  })

  it("refuses with the spec's errors and keeps the stream in sync", async () => {
    const h = session(makeMemoryBackend({ size: 1 * MiB }))
    const cases: Array<[Buffer, number]> = [
      [request(Cmd.READ, 1, 1 * MiB - 10, 11), Errno.EINVAL],
      [request(Cmd.WRITE, 2, 1 * MiB - 4, 8, 0, Buffer.alloc(8)), Errno.ENOSPC],
      [request(Cmd.WRITE_ZEROES, 3, 1 * MiB, 1), Errno.ENOSPC],
      [request(Cmd.TRIM, 4, 1 * MiB, 1), Errno.EINVAL],
      [request(Cmd.CACHE, 5, 2 * MiB, 1), Errno.EINVAL],
      [request(99, 6, 0, 0), Errno.EINVAL],
      [request(Cmd.READ, 7, 0, 1, 0x8000), Errno.EINVAL],
      [request(Cmd.READ, 8, 0, 1, CmdFlag.NO_HOLE), Errno.EINVAL],
      [request(Cmd.READ, 9, 0, 1, CmdFlag.DF), Errno.EINVAL], // DF needs structured replies
      [request(Cmd.FLUSH, 10, 1, 0), Errno.EINVAL],
      [request(Cmd.BLOCK_STATUS, 11, 0, 10), Errno.EINVAL], // no meta context
      [request(Cmd.READ, 12, 0, 33 * MiB), Errno.EINVAL],
      [request(Cmd.WRITE, 13, 0, 40, 0, Buffer.alloc(40, 9)), 0],
      [request(Cmd.READ, 14, 0, 512), Errno.EINVAL]
    ]
    // offset 2^64-512 cannot go through `request` (Number); patch it in.
    const last = cases[cases.length - 1]?.[0] as Buffer
    last.writeBigUInt64BE(2n ** 64n - 512n, 16)
    h.conn.onData(Buffer.concat(cases.map(([b]) => b)))
    await settle()
    const replies = simpleReplies(h.transport.take())
    const byCookie = new Map(replies.map((r) => [r.cookie, r.errno]))
    expect(cases.map((_, i) => byCookie.get(i + 1))).toEqual(cases.map(([, e]) => e))
    expect(h.transport.destroyed).toBe(false)
  })

  it("drains the payload of a refused WRITE (read-only → EPERM) and serves the next request", async () => {
    const h = session(makeMemoryBackend({ size: 1 * MiB }), { readOnly: true })
    h.conn.onData(Buffer.concat([request(Cmd.WRITE, 1, 0, 65536, 0, Buffer.alloc(65536, 1)), request(Cmd.READ, 2, 0, 4)]))
    h.conn.onData(request(Cmd.TRIM, 3, 0, 4))
    await settle()
    const replies = simpleReplies(h.transport.take(), new Map([[2, 4]]))
    expect(replies.map((r) => [r.cookie, r.errno]).sort()).toEqual([
      [1, Errno.EPERM],
      [2, 0],
      [3, Errno.EPERM]
    ])
    expect(replies.find((r) => r.cookie === 2)?.data).toEqual(Buffer.alloc(4))
  })

  it("skips an oversized WRITE payload without buffering it", async () => {
    const h = session(makeMemoryBackend({ size: 64 * MiB }), {}, { maxPayload: 1 * MiB })
    h.conn.onData(request(Cmd.WRITE, 1, 0, 4 * MiB))
    for (let i = 0; i < 64; i++) h.conn.onData(Buffer.alloc(64 * 1024))
    expect(h.conn.stats().budgetUsed).toBe(0)
    h.conn.onData(request(Cmd.READ, 2, 0, 1))
    await settle()
    expect(simpleReplies(h.transport.take(), new Map([[2, 1]])).map((r) => r.errno)).toEqual([Errno.EINVAL, 0])
  })

  it("maps backend failures to NBD errors (ENOTSUP only for FAST_ZERO)", async () => {
    const mem = makeMemoryBackend({ size: 1 * MiB })
    const failing: ExportBackend = {
      ...mem,
      read: () => Promise.reject(new Error("disk on fire")),
      write: () => Promise.reject(backendFailure("ENOSPC", "full")),
      flush: () => Promise.reject(backendFailure("ENOTSUP", "nope")),
      zero: () => Promise.reject(backendFailure("ENOTSUP", "slow")),
      cache: () => {
        throw new Error("throws instead of rejecting")
      }
    }
    const h = session(failing)
    h.conn.onData(
      Buffer.concat([
        request(Cmd.READ, 1, 0, 1),
        request(Cmd.WRITE, 2, 0, 1, 0, Buffer.alloc(1)),
        request(Cmd.FLUSH, 3, 0, 0),
        request(Cmd.WRITE_ZEROES, 4, 0, 10, CmdFlag.FAST_ZERO),
        request(Cmd.CACHE, 5, 0, 10)
      ])
    )
    await settle()
    const replies = simpleReplies(h.transport.take())
    expect(replies.map((r) => [r.cookie, r.errno]).sort()).toEqual([
      [1, Errno.EIO],
      [2, Errno.ENOSPC],
      [3, Errno.EIO],
      [4, Errno.ENOTSUP],
      [5, Errno.EIO]
    ])
    expect(h.events.filter((e) => e._tag === "BackendError").length).toBe(5)
    expect(h.transport.destroyed).toBe(false)
  })

  it("structured replies: READ is one OFFSET_DATA chunk, errors are ERROR chunks, 0-length is NONE", async () => {
    const mem = makeMemoryBackend({ size: 1 * MiB })
    await mem.write(Buffer.from("hello"), 5, 100, false)
    const h = session(mem, { structured: true })
    h.conn.onData(Buffer.concat([request(Cmd.READ, 1, 100, 5, CmdFlag.DF), request(Cmd.READ, 2, 1 * MiB, 1), request(Cmd.READ, 3, 0, 0), request(Cmd.FLUSH, 4, 0, 0)]))
    await settle()
    const b = h.transport.take()
    const replies = new Map<number, { magic: number; flags: number; type: number; payload: Buffer }>()
    for (let o = 0; o < b.length; ) {
      const magic = b.readUInt32BE(o)
      const cookie = Number(b.readBigUInt64BE(o + 8))
      if (magic === 0x67446698) {
        replies.set(cookie, { magic, flags: 0, type: -1, payload: Buffer.alloc(0) })
        o += 16
        continue
      }
      expect(magic).toBe(0x668e33ef)
      const len = b.readUInt32BE(o + 16)
      replies.set(cookie, { magic, flags: b.readUInt16BE(o + 4), type: b.readUInt16BE(o + 6), payload: b.subarray(o + 20, o + 20 + len) })
      o += 20 + len
    }
    const data = replies.get(1)
    expect(data).toMatchObject({ flags: 1, type: ReplyType.OFFSET_DATA })
    expect(Number(data?.payload.readBigUInt64BE(0))).toBe(100)
    expect(data?.payload.toString("utf8", 8)).toBe("hello")
    expect(replies.get(2)).toMatchObject({ flags: 1, type: ReplyType.ERROR })
    expect(replies.get(2)?.payload.readUInt32BE(0)).toBe(Errno.EINVAL)
    expect(replies.get(2)?.payload.toString("utf8", 6)).toMatch(/past the end/)
    expect(replies.get(3)).toMatchObject({ flags: 1, type: ReplyType.NONE })
    // FLUSH keeps a simple reply.
    expect(replies.get(4)?.magic).toBe(0x67446698)
  })

  it("BLOCK_STATUS: one chunk, holes and data, REQ_ONE gives one extent within the length", async () => {
    const mem = makeMemoryBackend({ size: 1 * MiB })
    await mem.write(Buffer.alloc(10, 1), 10, 65536, false)
    const h = session(mem, { structured: true, allocation: true })
    h.conn.onData(Buffer.concat([request(Cmd.BLOCK_STATUS, 1, 0, 1 * MiB), request(Cmd.BLOCK_STATUS, 2, 1000, 100, CmdFlag.REQ_ONE)]))
    await settle()
    const b = h.transport.take()
    expect(b.readUInt16BE(6)).toBe(ReplyType.BLOCK_STATUS)
    const len = b.readUInt32BE(16)
    const ext = (o: number, n: number) => Array.from({ length: n }, (_, i) => [b.readUInt32BE(o + 4 + 8 * i), b.readUInt32BE(o + 8 + 8 * i)])
    expect(b.readUInt32BE(20)).toBe(1)
    expect(ext(20, (len - 4) / 8)).toEqual([
      [65536, 3],
      [65536, 0],
      [MiB - 131072, 3]
    ])
    const o = 20 + len
    expect(b.readUInt32BE(o + 16)).toBe(12)
    expect(ext(o + 20, 1)).toEqual([[100, 3]])
  })

  it("BLOCK_STATUS extents: the last may run past the request (not past the end, not with REQ_ONE)", () => {
    const req = (offset: number, length: number, flags = 0): Request => ({
      flags, type: Cmd.BLOCK_STATUS, cookieHi: 0, cookieLo: 1, offset, length, buf: undefined, held: 0, errno: 0, message: ""
    })
    const hole = (length: number) => ({ length, hole: true, zero: true })
    const data = (length: number) => ({ length, hole: false, zero: false })
    const size = 64 * MiB
    // A hole from 1 MiB to 20 MiB asked about [1 MiB, 2 MiB): answered whole.
    expect(encodeExtents(size, req(MiB, MiB), [hole(19 * MiB), data(MiB)])).toEqual([[19 * MiB, 3]])
    expect(encodeExtents(size, req(MiB, MiB, CmdFlag.REQ_ONE), [hole(19 * MiB), data(MiB)])).toEqual([[MiB, 3]])
    // Once the request is covered nothing more is sent; adjacent equal states merge.
    expect(encodeExtents(size, req(0, 2 * MiB), [data(MiB), data(MiB), hole(MiB), data(MiB)])).toEqual([[2 * MiB, 0]])
    expect(encodeExtents(size, req(0, 2 * MiB), [data(MiB), hole(3 * MiB), data(MiB)])).toEqual([[MiB, 0], [3 * MiB, 3]])
    // Never past the export end, even if the backend says so.
    expect(encodeExtents(size, req(60 * MiB, MiB), [hole(10 * MiB)])).toEqual([[4 * MiB, 3]])
    // u32 lengths: an 8 GiB hole is cut to the largest 4 KiB multiple below 2^32.
    expect(encodeExtents(16 * 1024 * MiB, req(0, MiB), [hole(8 * 1024 * MiB)])).toEqual([[0xfffff000, 3]])
    expect(encodeExtents(size, req(0, MiB), [])).toBe("backend reported no extents")
  })

  it("bounds requests in flight: stops reading, resumes when one completes", async () => {
    const { backend, gates } = gated(makeMemoryBackend({ size: 1 * MiB }))
    const h = session(backend, {}, { maxInFlight: 2 })
    h.conn.onData(Buffer.concat([1, 2, 3, 4, 5].map((c) => request(Cmd.READ, c, 0, 1))))
    expect(gates.length).toBe(2)
    expect(h.transport.paused).toBe(true)
    expect(h.conn.stats()).toMatchObject({ inFlight: 2, blocked: true })
    gates[0]?.open()
    await settle()
    expect(gates.length).toBe(3)
    for (const g of gates.slice(1)) g.open()
    await settle()
    for (const g of gates.slice(3)) g.open()
    await settle()
    expect(gates.length).toBe(5)
    gates[4]?.open()
    await settle()
    expect(simpleReplies(h.transport.take(), new Map([1, 2, 3, 4, 5].map((c) => [c, 1]))).length).toBe(5)
    expect(h.transport.paused).toBe(false)
    expect(h.conn.stats()).toMatchObject({ inFlight: 0, blocked: false, budgetUsed: 0 })
  })

  it("bounds buffer bytes: a client that stops reading replies stalls admission, not memory", async () => {
    const h = session(makeMemoryBackend({ size: 64 * MiB }), {}, { budgetBytes: 4 * MiB, maxPayload: 1 * MiB })
    h.transport.stallWrites = true
    h.conn.onData(Buffer.concat(Array.from({ length: 64 }, (_, i) => request(Cmd.READ, i, i * MiB, MiB))))
    await settle()
    expect(h.conn.stats()).toMatchObject({ inFlight: 4, budgetUsed: 4 * MiB, blocked: true })
    expect(h.transport.paused).toBe(true)
    h.transport.release()
    for (let i = 0; i < 40 && h.conn.stats().inFlight > 0; i++) {
      h.transport.release()
      await settle(1)
    }
    expect(h.conn.stats()).toMatchObject({ inFlight: 0, budgetUsed: 0, blocked: false })
    expect(simpleReplies(h.transport.take(), new Map(Array.from({ length: 64 }, (_, i) => [i, MiB]))).length).toBe(64)
  })

  it("a WRITE gives its buffer back when the backend is done; a READ only when its reply is sent", async () => {
    const h = session(makeMemoryBackend({ size: 4 * MiB }), {}, { budgetBytes: 2 * MiB, maxPayload: 1 * MiB })
    h.transport.stallWrites = true
    // Two 1 MiB WRITEs fill the budget; their replies stay unsent, yet a third is admitted.
    const payload = Buffer.alloc(MiB, 7)
    h.conn.onData(Buffer.concat([1, 2, 3].map((c) => request(Cmd.WRITE, c, (c - 1) * MiB, MiB, 0, payload))))
    await settle()
    expect(h.conn.stats()).toMatchObject({ inFlight: 3, budgetUsed: 0, blocked: false })
    // Two READs hold their buffers while their replies wait: the third waits for budget.
    h.conn.onData(Buffer.concat([4, 5, 6].map((c) => request(Cmd.READ, c, 0, MiB))))
    await settle()
    expect(h.conn.stats()).toMatchObject({ inFlight: 5, budgetUsed: 2 * MiB, blocked: true })
    for (let i = 0; i < 40 && h.conn.stats().inFlight > 0; i++) {
      h.transport.release()
      await settle(1)
    }
    expect(h.conn.stats()).toMatchObject({ inFlight: 0, budgetUsed: 0, blocked: false })
    const replies = simpleReplies(h.transport.take(), new Map([4, 5, 6].map((c) => [c, MiB])))
    expect(replies.map((r) => r.cookie).sort()).toEqual([1, 2, 3, 4, 5, 6])
    expect(replies.every((r) => r.errno === 0 && (r.data.length === 0 || r.data.equals(payload)))).toBe(true)
  })

  it("DISC: answers what is in flight, then closes without a reply", async () => {
    const { backend, gates } = gated(makeMemoryBackend({ size: 1 * MiB }))
    const h = session(backend)
    h.conn.onData(Buffer.concat([request(Cmd.WRITE, 1, 0, 4, 0, Buffer.from("abcd")), request(Cmd.DISC, 2, 0, 0), request(Cmd.READ, 3, 0, 4)]))
    expect(h.transport.ended).toBe(false)
    expect(gates.map((g) => g.op)).toEqual(["write"])
    gates[0]?.open()
    await settle()
    expect(simpleReplies(h.transport.take()).map((r) => r.cookie)).toEqual([1])
    expect(h.transport.ended).toBe(true)
    // The server closes its side once the replies are out, whatever the client does.
    expect(h.transport.destroyed).toBe(true)
  })

  it("DISC: closes only after the last reply has been handed to the socket", async () => {
    const h = session(makeMemoryBackend({ size: 1 * MiB }))
    h.transport.stallWrites = true
    h.conn.onData(Buffer.concat([request(Cmd.READ, 1, 0, 4096), request(Cmd.DISC, 2, 0, 0)]))
    await settle()
    expect(h.transport.ended).toBe(false)
    expect(h.transport.destroyed).toBe(false)
    h.transport.release()
    await settle()
    expect(h.transport.destroyed).toBe(true)
    expect(simpleReplies(h.transport.take(), new Map([[1, 4096]])).map((r) => r.cookie)).toEqual([1])
  })

  it("shutdown: finishes a WRITE whose payload is arriving, answers it, then closes", async () => {
    const mem = makeMemoryBackend({ size: 1 * MiB })
    const h = session(mem)
    const w = request(Cmd.WRITE, 1, 0, 8, 0, Buffer.from("12345678"))
    h.conn.onData(w.subarray(0, 30))
    const closed = h.conn.shutdown()
    h.conn.onData(Buffer.concat([w.subarray(30), request(Cmd.READ, 2, 0, 8)]))
    await settle()
    expect(simpleReplies(h.transport.take()).map((r) => r.cookie)).toEqual([1])
    expect(h.transport.ended).toBe(true)
    h.conn.onClose()
    await closed
    const back = Buffer.alloc(8)
    await mem.read(back, 8, 0)
    expect(back.toString()).toBe("12345678")
  })

  it("a peer that half-closes mid-request is dropped; at a boundary its requests are still answered", async () => {
    const { backend, gates } = gated(makeMemoryBackend({ size: 1 * MiB }))
    const h = session(backend)
    h.conn.onData(request(Cmd.READ, 1, 0, 4))
    h.conn.onEnd()
    expect(h.transport.destroyed).toBe(false)
    gates[0]?.open()
    await settle()
    expect(simpleReplies(h.transport.take(), new Map([[1, 4]])).length).toBe(1)
    expect(h.transport.ended).toBe(true)
    const h2 = session(makeMemoryBackend({ size: 1 * MiB }))
    h2.conn.onData(request(Cmd.READ, 1, 0, 4).subarray(0, 10))
    h2.conn.onEnd()
    expect(h2.transport.destroyed).toBe(true)
  })

  it("drops the connection on a bad request magic", () => {
    const h = session(makeMemoryBackend({ size: 1 * MiB }))
    const r = request(Cmd.READ, 1, 0, 4)
    r[0] = 0x26
    h.conn.onData(r)
    expect(h.transport.destroyed).toBe(true)
  })

  it("copies what it keeps when the read buffer is reused", async () => {
    const mem = makeMemoryBackend({ size: 1 * MiB })
    const { backend, gates } = gated(mem)
    const h = makeHarness([{ name: "disk", backend }], { maxInFlight: 1 }, true)
    const shared = Buffer.alloc(256)
    const send = (b: Buffer) => {
      b.copy(shared)
      h.conn.onData(shared.subarray(0, b.length))
      shared.fill(0xee)
    }
    send(Buffer.from([0, 0, 0, 3]))
    send(option(Opt.GO, infoData("disk")))
    h.transport.take()
    send(Buffer.concat([request(Cmd.READ, 1, 0, 1), request(Cmd.WRITE, 2, 0, 3, 0, Buffer.from("xyz"))]))
    gates[0]?.open()
    await settle()
    gates[1]?.open()
    await settle()
    const back = Buffer.alloc(3)
    await mem.read(back, 3, 0)
    expect(back.toString()).toBe("xyz")
  })
})
