import { describe, expect, it } from "vitest"
import { makeMemoryBackend } from "../../src/nbd/memory-backend.js"
import { Info, NBDMAGIC, IHAVEOPT, Opt, Rep, TF } from "../../src/nbd/protocol.js"
import { parseInfoRequest, parseMetaRequest } from "../../src/nbd/handshake.js"
import { infoData, metaData, option } from "./harness.js"
import { makeHarness, parseOptionReplies, settle } from "./fake-transport.js"

const MiB = 1024 * 1024
const disk = () => makeMemoryBackend({ size: 4 * MiB })

const started = (flags = 3) => {
  const h = makeHarness([
    { name: "disk", backend: disk(), generation: 3, description: "a test disk" },
    { name: "ro", backend: disk(), readOnly: true }
  ])
  const greeting = h.transport.take()
  h.conn.onData(Buffer.from([0, 0, 0, flags]))
  return { ...h, greeting }
}

describe("nbd handshake", () => {
  it("greets with NBDMAGIC, IHAVEOPT, FIXED_NEWSTYLE and NO_ZEROES", () => {
    const { greeting } = started()
    expect(greeting.subarray(0, 8).equals(NBDMAGIC)).toBe(true)
    expect(greeting.subarray(8, 16).equals(IHAVEOPT)).toBe(true)
    expect(greeting.readUInt16BE(16)).toBe(3)
    expect(greeting.length).toBe(18)
  })

  it("closes on unknown client flags", () => {
    const h = makeHarness([{ name: "disk", backend: disk() }])
    h.conn.onData(Buffer.from([0x40, 0, 0, 1]))
    expect(h.transport.destroyed).toBe(true)
  })

  it("answers EXPORT_NAME with 134 bytes, or 10 with NO_ZEROES", () => {
    for (const [flags, length] of [
      [1, 134],
      [3, 10]
    ] as const) {
      const h = started(flags)
      h.conn.onData(option(Opt.EXPORT_NAME, Buffer.from("disk")))
      const b = h.transport.take()
      expect(b.length).toBe(length)
      expect(Number(b.readBigUInt64BE(0))).toBe(4 * MiB)
      expect(b.readUInt16BE(8) & TF.HAS_FLAGS).toBe(1)
      expect(b.subarray(10).every((x) => x === 0)).toBe(true)
      expect(h.conn.inTransmission()).toBe(true)
    }
  })

  it("closes without a reply on EXPORT_NAME of an unknown export or stale generation", () => {
    for (const name of ["nope", "disk@2", "disk@x"]) {
      const h = started()
      h.conn.onData(option(Opt.EXPORT_NAME, Buffer.from(name)))
      expect(h.transport.take().length).toBe(0)
      expect(h.transport.ended || h.transport.destroyed).toBe(true)
      expect(h.conn.inTransmission()).toBe(false)
    }
  })

  it("INFO sends INFO_EXPORT unasked, NAME as the client gave it, DESCRIPTION, BLOCK_SIZE, then ACK", () => {
    const h = started()
    h.conn.onData(option(Opt.INFO, infoData("disk", [Info.NAME, Info.DESCRIPTION, Info.BLOCK_SIZE, 999])))
    const replies = parseOptionReplies(h.transport.take())
    expect(replies.map((r) => r.type)).toEqual([Rep.INFO, Rep.INFO, Rep.INFO, Rep.INFO, Rep.ACK])
    const items = new Map(replies.slice(0, 4).map((r) => [r.data.readUInt16BE(0), r.data.subarray(2)]))
    expect(Number(items.get(Info.EXPORT)?.readBigUInt64BE(0))).toBe(4 * MiB)
    expect(items.get(Info.NAME)?.toString()).toBe("disk")
    expect(items.get(Info.DESCRIPTION)?.toString()).toBe("a test disk")
    const bs = items.get(Info.BLOCK_SIZE) as Buffer
    expect([bs.readUInt32BE(0), bs.readUInt32BE(4), bs.readUInt32BE(8)]).toEqual([1, 4096, 32 * MiB])
    expect(h.conn.inTransmission()).toBe(false)
  })

  it("NAME answers the pinned form only when the client pinned it", () => {
    const h = started()
    h.conn.onData(option(Opt.INFO, infoData("disk@3", [Info.NAME])))
    const replies = parseOptionReplies(h.transport.take())
    expect(replies.map((r) => r.type)).toEqual([Rep.INFO, Rep.INFO, Rep.ACK])
    expect([replies[1]?.data.readUInt16BE(0), replies[1]?.data.subarray(2).toString()]).toEqual([Info.NAME, "disk@3"])
  })

  it("the empty name: refused with what to do when there is no default export, the default export otherwise", () => {
    const h = started()
    h.conn.onData(option(Opt.GO, infoData("", [Info.NAME])))
    const refused = parseOptionReplies(h.transport.take())
    expect(refused.map((r) => r.type)).toEqual([Rep.ERR_UNKNOWN])
    expect(refused[0]?.data.toString()).toMatch(/no default export: ask for one by name .*--default NAME or --export =FILE/)
    h.table.defaultName = "disk"
    h.conn.onData(option(Opt.INFO, infoData("", [Info.NAME])))
    const info = parseOptionReplies(h.transport.take())
    expect(info.map((r) => r.type)).toEqual([Rep.INFO, Rep.INFO, Rep.ACK])
    expect(Number(info[0]?.data.readBigUInt64BE(2))).toBe(4 * MiB)
    expect(info[1]?.data.subarray(2).toString()).toBe("")
    // `@GEN` pins the default export's generation like any name.
    h.conn.onData(option(Opt.INFO, infoData("@2")))
    expect(parseOptionReplies(h.transport.take())[0]?.data.toString()).toBe('export "disk" is at generation 3, not 2')
    h.conn.onData(option(Opt.GO, infoData("@3")))
    expect(parseOptionReplies(h.transport.take()).map((r) => r.type)).toEqual([Rep.INFO, Rep.ACK])
    expect(h.conn.inTransmission()).toBe(true)
  })

  it("GO with zero info requests (nbd-client 3.24) still gets INFO_EXPORT, and INFO/GO flags agree", () => {
    const h = started(1)
    h.conn.onData(option(Opt.INFO, infoData("disk")))
    const info = parseOptionReplies(h.transport.take())
    h.conn.onData(option(Opt.GO, infoData("disk")))
    const go = parseOptionReplies(h.transport.take())
    expect(go.map((r) => r.type)).toEqual([Rep.INFO, Rep.ACK])
    expect(go[0]?.data.equals(info[0]?.data as Buffer)).toBe(true)
    expect(h.conn.inTransmission()).toBe(true)
  })

  it("flags: read-only exports advertise READ_ONLY and no write features; DF only after STRUCTURED_REPLY", () => {
    const h = started()
    h.conn.onData(option(Opt.INFO, infoData("ro")))
    const ro = parseOptionReplies(h.transport.take())[0]?.data.readUInt16BE(10) as number
    expect(ro & TF.READ_ONLY).toBeTruthy()
    expect(ro & (TF.SEND_TRIM | TF.SEND_WRITE_ZEROES | TF.SEND_FAST_ZERO | TF.SEND_DF)).toBe(0)
    h.conn.onData(option(Opt.STRUCTURED_REPLY))
    h.conn.onData(option(Opt.INFO, infoData("disk")))
    const rw = parseOptionReplies(h.transport.take())[1]?.data.readUInt16BE(10) as number
    expect(rw & TF.SEND_DF).toBeTruthy()
    expect(rw & TF.READ_ONLY).toBe(0)
    expect(rw & TF.CAN_MULTI_CONN).toBeTruthy()
  })

  it("refuses unknown exports and generations with ERR_UNKNOWN and keeps haggling", () => {
    const h = started()
    for (const [name, msg] of [
      ["nope", /no export named "nope"/],
      ["disk@2", /generation 3, not 2/],
      ["disk@03", /bad generation/],
      ["disk@", /bad generation/],
      ["a@b@1", /at most one '@'/]
    ] as const) {
      h.conn.onData(option(Opt.GO, infoData(name)))
      const [r] = parseOptionReplies(h.transport.take())
      expect(r?.type).toBe(Rep.ERR_UNKNOWN)
      expect(r?.data.toString()).toMatch(msg)
    }
    h.conn.onData(option(Opt.GO, infoData("disk@3")))
    expect(parseOptionReplies(h.transport.take()).at(-1)?.type).toBe(Rep.ACK)
    expect(h.conn.inTransmission()).toBe(true)
  })

  it("answers malformed INFO/GO with ERR_INVALID and stays in sync", () => {
    const h = started()
    const bad = Buffer.alloc(10)
    bad.writeUInt32BE(100, 0) // name runs past the data
    h.conn.onData(option(Opt.GO, bad))
    const count = infoData("disk", [1])
    h.conn.onData(option(Opt.GO, count.subarray(0, count.length - 1)))
    const replies = parseOptionReplies(h.transport.take())
    expect(replies.map((r) => r.type)).toEqual([Rep.ERR_INVALID, Rep.ERR_INVALID])
    h.conn.onData(option(Opt.GO, infoData("disk")))
    expect(parseOptionReplies(h.transport.take()).at(-1)?.type).toBe(Rep.ACK)
  })

  it("answers unknown options (and STARTTLS, EXTENDED_HEADERS) with ERR_UNSUP after consuming their data", () => {
    const h = started()
    h.conn.onData(Buffer.concat([option(0x7ff0, Buffer.alloc(37, 0xaa)), option(Opt.STARTTLS), option(Opt.EXTENDED_HEADERS), option(Opt.LIST)]))
    const replies = parseOptionReplies(h.transport.take())
    expect(replies.map((r) => r.type)).toEqual([Rep.ERR_UNSUP, Rep.ERR_UNSUP, Rep.ERR_UNSUP, Rep.SERVER, Rep.SERVER, Rep.ACK])
    const names = replies.filter((r) => r.type === Rep.SERVER).map((r) => r.data.toString("utf8", 4, 4 + r.data.readUInt32BE(0)))
    expect(names.sort()).toEqual(["disk", "ro"])
  })

  it("LIST or STRUCTURED_REPLY with data → ERR_INVALID", () => {
    const h = started()
    h.conn.onData(option(Opt.LIST, Buffer.from("x")))
    h.conn.onData(option(Opt.STRUCTURED_REPLY, Buffer.from("x")))
    expect(parseOptionReplies(h.transport.take()).map((r) => r.type)).toEqual([Rep.ERR_INVALID, Rep.ERR_INVALID])
  })

  it("ABORT gets an ACK, then the connection is closed", () => {
    const h = started()
    h.conn.onData(option(Opt.ABORT))
    expect(parseOptionReplies(h.transport.take()).map((r) => r.type)).toEqual([Rep.ACK])
    expect(h.transport.ended).toBe(true)
  })

  it("skips over-long option data with ERR_TOO_BIG, and drops absurd lengths", () => {
    const h = makeHarness([{ name: "disk", backend: disk() }], { maxOptionLength: 100, maxSkippedOptionLength: 1000 })
    h.transport.take()
    h.conn.onData(Buffer.from([0, 0, 0, 3]))
    h.conn.onData(option(0x7ff0, Buffer.alloc(500)))
    h.conn.onData(option(Opt.LIST))
    expect(parseOptionReplies(h.transport.take()).map((r) => r.type)).toEqual([Rep.ERR_TOO_BIG, Rep.SERVER, Rep.ACK])
    const huge = option(Opt.GO)
    huge.writeUInt32BE(0xffffffff, 12)
    h.conn.onData(huge)
    expect(h.transport.destroyed).toBe(true)
  })

  it("drops a bad option magic", () => {
    const h = started()
    const b = option(Opt.LIST)
    b[0] = 0
    h.conn.onData(b)
    expect(h.transport.destroyed).toBe(true)
  })

  it("meta contexts: LIST with base: wildcard, SET needs structured replies, unknown namespaces ignored", () => {
    const h = started()
    h.conn.onData(option(Opt.SET_META_CONTEXT, metaData("disk", ["base:allocation"])))
    expect(parseOptionReplies(h.transport.take()).map((r) => r.type)).toEqual([Rep.ERR_INVALID])
    h.conn.onData(option(Opt.LIST_META_CONTEXT, metaData("disk", ["base:"])))
    const list = parseOptionReplies(h.transport.take())
    expect(list.map((r) => r.type)).toEqual([Rep.META_CONTEXT, Rep.ACK])
    expect(list[0]?.data.toString("utf8", 4)).toBe("base:allocation")
    h.conn.onData(option(Opt.STRUCTURED_REPLY))
    h.transport.take()
    h.conn.onData(option(Opt.SET_META_CONTEXT, metaData("disk", ["x-nosuch:thing", "base:allocation", "base:nosuchleaf", "base:"])))
    const set = parseOptionReplies(h.transport.take())
    expect(set.map((r) => r.type)).toEqual([Rep.META_CONTEXT, Rep.ACK])
    expect(set[0]?.data.readUInt32BE(0)).toBe(1)
    h.conn.onData(option(Opt.SET_META_CONTEXT, metaData("nope", ["base:allocation"])))
    expect(parseOptionReplies(h.transport.take()).map((r) => r.type)).toEqual([Rep.ERR_UNKNOWN])
    const broken = metaData("disk", ["base:allocation"])
    h.conn.onData(option(Opt.SET_META_CONTEXT, broken.subarray(0, broken.length - 2)))
    expect(parseOptionReplies(h.transport.take()).map((r) => r.type)).toEqual([Rep.ERR_INVALID])
  })

  it("decodes the same when the client's bytes arrive one at a time", async () => {
    const whole = started()
    const bytes = Buffer.concat([option(Opt.LIST), option(0x7ff0, Buffer.alloc(9)), option(Opt.INFO, infoData("disk", [Info.NAME])), option(Opt.GO, infoData("disk"))])
    whole.conn.onData(bytes)
    const expected = whole.transport.take()
    const split = started()
    for (const byte of bytes) split.conn.onData(Buffer.from([byte]))
    await settle()
    expect(split.transport.take().equals(expected)).toBe(true)
    expect(split.conn.inTransmission()).toBe(true)
  })

  it("parsers reject every truncation of a valid request", () => {
    const info = infoData("disk", [1, 2])
    for (let n = 0; n < info.length; n++) expect(typeof parseInfoRequest(info.subarray(0, n))).toBe("string")
    expect(parseInfoRequest(info)).toEqual({ name: "disk", types: [1, 2] })
    const meta = metaData("disk", ["base:allocation", "x:y"])
    for (let n = 0; n < meta.length; n++) expect(typeof parseMetaRequest(meta.subarray(0, n))).toBe("string")
    expect(parseMetaRequest(meta)).toEqual({ name: "disk", queries: ["base:allocation", "x:y"] })
  })
})
