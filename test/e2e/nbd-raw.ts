import { connect, type RawClient } from "../nbd/harness.js"

// A raw NBD client for the conformance checks: it speaks bytes so that it can send what
// libnbd would refuse to (bad flags, truncated frames, bogus lengths), and it parses
// simple and structured replies the way a strict client must.

export const NBDMAGIC = 0x4e42444d41474943n
export const IHAVEOPT = 0x49484156454f5054n
export const OPT_REPLY_MAGIC = 0x0003e889045565a9n
export const REQ_MAGIC = 0x25609513
export const SIMPLE_MAGIC = 0x67446698
export const SR_MAGIC = 0x668e33ef
export const O = { EXPORT_NAME: 1, ABORT: 2, LIST: 3, INFO: 6, GO: 7, SR: 8, LIST_META: 9, SET_META: 10 } as const
export const R = { ACK: 1, SERVER: 2, INFO: 3, META: 4 } as const
export const ERRBIT = 0x80000000
export const ERR = { UNSUP: ERRBIT + 1, POLICY: ERRBIT + 2, INVALID: ERRBIT + 3, UNKNOWN: ERRBIT + 6 } as const
export const C = { READ: 0, WRITE: 1, DISC: 2, FLUSH: 3, TRIM: 4, CACHE: 5, WZ: 6, BS: 7 } as const
export const F = { FUA: 1, NO_HOLE: 2, DF: 4, REQ_ONE: 8, FAST_ZERO: 16 } as const
export const T = { NONE: 0, DATA: 1, HOLE: 2, BS: 5 } as const
export const TF = { HAS: 1, RO: 2, FLUSH: 4, FUA: 8, TRIM: 32, WZ: 64, DF: 128, MULTI: 256, CACHE: 1024, FASTZERO: 2048 } as const
export const EINVAL = 22
export const ENOSPC = 28
export const MiB = 1024 * 1024

const REP_NAMES: Record<number, string> = {
  1: "ACK",
  2: "SERVER",
  3: "INFO",
  4: "META_CONTEXT",
  [ERRBIT + 1]: "ERR_UNSUP",
  [ERRBIT + 2]: "ERR_POLICY",
  [ERRBIT + 3]: "ERR_INVALID",
  [ERRBIT + 4]: "ERR_PLATFORM",
  [ERRBIT + 5]: "ERR_TLS_REQD",
  [ERRBIT + 6]: "ERR_UNKNOWN",
  [ERRBIT + 7]: "ERR_SHUTDOWN",
  [ERRBIT + 8]: "ERR_BLOCK_SIZE_REQD",
  [ERRBIT + 9]: "ERR_TOO_BIG"
}
export const rname = (t: number) => REP_NAMES[t] ?? `0x${t.toString(16)}`

export class CheckFailed extends Error {}
export const fail = (message: string): never => {
  throw new CheckFailed(message)
}

// Resolves true if the peer closes within `ms` (a bound on a wait, not a sleep).
export const closedWithin = (c: RawClient, ms: number): Promise<boolean> =>
  Promise.race([c.closed.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms).unref())])

// Rejects with "timed out" after `ms`: a server that stops answering fails the check.
export const within = <A>(p: Promise<A>, ms: number, what: string): Promise<A> =>
  Promise.race([
    p,
    new Promise<A>((_, reject) => setTimeout(() => reject(new CheckFailed(`timed out after ${ms} ms: ${what}`)), ms).unref())
  ])

export interface GoResult {
  readonly error: number | undefined
  readonly message: string
  readonly size: number
  readonly flags: number
  readonly infos: Map<number, Buffer>
  readonly blockSizes: readonly [number, number, number] | undefined
}

export interface Reply {
  readonly error: number
  // Simple reply: the READ data. Structured: the chunks.
  readonly data: Buffer
  readonly chunks: ReadonlyArray<{ readonly flags: number; readonly type: number; readonly payload: Buffer }>
}

export interface Raw {
  readonly c: RawClient
  greet(cflags?: number): Promise<number>
  opt(option: number, data?: Buffer): void
  rep(): Promise<{ option: number; type: number; data: Buffer }>
  go(name: string, infos?: ReadonlyArray<number>, option?: number, nameLength?: number): Promise<GoResult>
  goOk(name: string, infos?: ReadonlyArray<number>): Promise<GoResult>
  negotiateSr(): Promise<number>
  setMeta(queries: ReadonlyArray<string>, name: string, option?: number): Promise<{ ctx: Array<[number, string]>; error: number | undefined }>
  req(type: number, offset: bigint | number, length: number, flags?: number, payload?: Buffer): bigint
  msg(): Promise<{ kind: "simple"; error: number; cookie: bigint; data: Buffer } | { kind: "chunk"; flags: number; type: number; cookie: bigint; payload: Buffer }>
  reply(cookie: bigint): Promise<Reply>
  collect(cookies: ReadonlyArray<bigint>): Promise<Map<bigint, Reply>>
  close(): void
  sr: boolean
  size: number
  flags: number
}

let nextCookie = 1n

export const rawClient = async (port: number): Promise<Raw> => {
  const c = await connect(port)
  const pending = new Map<bigint, number>()
  const raw: Raw = {
    c,
    sr: false,
    size: 0,
    flags: 0,
    close: () => c.close(),
    async greet(cflags) {
      const g = await c.read(18)
      if (g.readBigUInt64BE(0) !== NBDMAGIC || g.readBigUInt64BE(8) !== IHAVEOPT) fail(`bad greeting ${g.toString("hex")}`)
      const gf = g.readUInt16BE(16)
      const flags = cflags ?? (1 | (gf & 2 ? 2 : 0))
      const b = Buffer.alloc(4)
      b.writeUInt32BE(flags >>> 0)
      c.write(b)
      return gf
    },
    opt(option, data = Buffer.alloc(0)) {
      const h = Buffer.alloc(16)
      h.writeBigUInt64BE(IHAVEOPT)
      h.writeUInt32BE(option, 8)
      h.writeUInt32BE(data.length, 12)
      c.write(Buffer.concat([h, data]))
    },
    async rep() {
      const h = await c.read(20)
      if (h.readBigUInt64BE(0) !== OPT_REPLY_MAGIC) fail(`bad option-reply magic 0x${h.readBigUInt64BE(0).toString(16)}`)
      const len = h.readUInt32BE(16)
      return { option: h.readUInt32BE(8), type: h.readUInt32BE(12), data: len > 0 ? await c.read(len) : Buffer.alloc(0) }
    },
    async go(name, infos = [], option = O.GO, nameLength) {
      const nb = Buffer.from(name, "utf8")
      const d = Buffer.alloc(4 + nb.length + 2 + 2 * infos.length)
      d.writeUInt32BE(nameLength ?? nb.length, 0)
      nb.copy(d, 4)
      d.writeUInt16BE(infos.length, 4 + nb.length)
      infos.forEach((t, i) => d.writeUInt16BE(t, 6 + nb.length + 2 * i))
      raw.opt(option, d)
      const res = { error: undefined as number | undefined, message: "", size: -1, flags: 0, infos: new Map<number, Buffer>(), blockSizes: undefined as GoResult["blockSizes"] }
      for (;;) {
        const r = await raw.rep()
        if (r.option !== option) fail(`reply is for option ${r.option}, expected ${option}`)
        if (r.type === R.INFO) {
          if (r.data.length < 2) fail("short NBD_REP_INFO")
          const it = r.data.readUInt16BE(0)
          res.infos.set(it, r.data)
          if (it === 0) {
            if (r.data.length !== 12) fail(`NBD_INFO_EXPORT length ${r.data.length} != 12`)
            res.size = Number(r.data.readBigUInt64BE(2))
            res.flags = r.data.readUInt16BE(10)
          } else if (it === 3) {
            if (r.data.length !== 14) fail(`NBD_INFO_BLOCK_SIZE length ${r.data.length} != 14`)
            res.blockSizes = [r.data.readUInt32BE(2), r.data.readUInt32BE(6), r.data.readUInt32BE(10)]
          }
        } else if (r.type === R.ACK) {
          if (res.size < 0) fail("ACK without NBD_INFO_EXPORT")
          return res
        } else if (r.type & ERRBIT) {
          res.error = r.type
          res.message = r.data.toString("utf8")
          return res
        } else fail(`unexpected reply type ${r.type} to GO/INFO`)
      }
    },
    async goOk(name, infos = []) {
      const r = await raw.go(name, infos)
      if (r.error !== undefined) fail(`GO ${JSON.stringify(name)} failed: ${rname(r.error)} ${r.message.slice(0, 80)}`)
      return r
    },
    async negotiateSr() {
      raw.opt(O.SR)
      const r = await raw.rep()
      if (r.type === R.ACK) raw.sr = true
      return r.type
    },
    async setMeta(queries, name, option = O.SET_META) {
      const parts = [Buffer.alloc(4), Buffer.from(name, "utf8"), Buffer.alloc(4)]
      ;(parts[0] as Buffer).writeUInt32BE((parts[1] as Buffer).length)
      ;(parts[2] as Buffer).writeUInt32BE(queries.length)
      for (const q of queries) {
        const qb = Buffer.from(q, "utf8")
        const l = Buffer.alloc(4)
        l.writeUInt32BE(qb.length)
        parts.push(l, qb)
      }
      raw.opt(option, Buffer.concat(parts))
      const ctx: Array<[number, string]> = []
      for (;;) {
        const r = await raw.rep()
        if (r.type === R.META) ctx.push([r.data.readUInt32BE(0), r.data.subarray(4).toString("utf8")])
        else if (r.type === R.ACK) return { ctx, error: undefined }
        else if (r.type & ERRBIT) return { ctx, error: r.type }
        else fail(`unexpected reply ${r.type} to META_CONTEXT`)
      }
    },
    req(type, offset, length, flags = 0, payload) {
      const cookie = nextCookie++
      if (type === C.READ) pending.set(cookie, length)
      const h = Buffer.alloc(28)
      h.writeUInt32BE(REQ_MAGIC, 0)
      h.writeUInt16BE(flags, 4)
      h.writeUInt16BE(type, 6)
      h.writeBigUInt64BE(cookie, 8)
      h.writeBigUInt64BE(BigInt(offset), 16)
      h.writeUInt32BE(length, 24)
      c.write(payload === undefined ? h : Buffer.concat([h, payload]))
      return cookie
    },
    async msg() {
      const m = (await c.read(4)).readUInt32BE(0)
      if (m === SIMPLE_MAGIC) {
        const h = await c.read(12)
        const error = h.readUInt32BE(0)
        const cookie = h.readBigUInt64BE(4)
        const n = pending.get(cookie) ?? 0
        pending.delete(cookie)
        return { kind: "simple", error, cookie, data: n > 0 && error === 0 ? await c.read(n) : Buffer.alloc(0) }
      }
      if (m === SR_MAGIC) {
        const h = await c.read(16)
        const flags = h.readUInt16BE(0)
        const cookie = h.readBigUInt64BE(4)
        const len = h.readUInt32BE(12)
        const payload = len > 0 ? await c.read(len) : Buffer.alloc(0)
        if (flags & 1) pending.delete(cookie)
        return { kind: "chunk", flags, type: h.readUInt16BE(2), cookie, payload }
      }
      return fail(`bad reply magic 0x${m.toString(16)}`)
    },
    async reply(cookie) {
      return (await raw.collect([cookie])).get(cookie) as Reply
    },
    async collect(cookies) {
      const want = new Set(cookies)
      const got = new Map<bigint, Reply>()
      const partial = new Map<bigint, Array<{ flags: number; type: number; payload: Buffer }>>()
      while (got.size < want.size) {
        const m = await raw.msg()
        if (!want.has(m.cookie) || got.has(m.cookie)) fail("reply for an unexpected cookie")
        if (m.kind === "simple") got.set(m.cookie, { error: m.error, data: m.data, chunks: [] })
        else {
          const list = partial.get(m.cookie) ?? []
          list.push({ flags: m.flags, type: m.type, payload: m.payload })
          partial.set(m.cookie, list)
          if (m.flags & 1) {
            partial.delete(m.cookie)
            let error = 0
            for (const ch of list) if (ch.type & 0x8000) error = ch.payload.readUInt32BE(0)
            got.set(m.cookie, { error, data: Buffer.alloc(0), chunks: list })
          }
        }
      }
      return got
    }
  }
  return raw
}

// Greeting, optional structured replies, GO: a session in transmission.
export const rawSession = async (port: number, name: string, sr = false): Promise<Raw> => {
  const r = await rawClient(port)
  await r.greet()
  if (sr && (await r.negotiateSr()) !== R.ACK) fail("structured replies not supported")
  const info = await r.goOk(name)
  r.size = info.size
  r.flags = info.flags
  return r
}

// A fresh client can handshake and read 512 bytes (after every hostile input).
export const alive = async (port: number, name: string): Promise<void> => {
  try {
    const r = await within(rawSession(port, name), 10_000, "handshake")
    const ck = r.req(C.READ, 0, 512)
    const { error, data } = await within(r.reply(ck), 10_000, "READ")
    r.req(C.DISC, 0, 0)
    r.close()
    if (error !== 0 || data.length !== 512) fail(`read error ${error}`)
  } catch (err) {
    fail(`server not healthy afterwards (${err instanceof Error ? err.message : String(err)})`)
  }
}
