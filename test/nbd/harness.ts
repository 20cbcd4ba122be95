import * as net from "node:net"
import { Effect, Exit, Scope } from "effect"
import type { ExportBackend } from "../../src/nbd/backend.js"
import { type ExportSpec, NbdExports } from "../../src/nbd/exports.js"
import { Cmd, IHAVEOPT, Opt, REQUEST_MAGIC } from "../../src/nbd/protocol.js"
import { NbdServer, make as makeServer, type NbdServerOptions } from "../../src/nbd/server.js"

// Shared helpers of the NBD tests: an in-process server on a free 127.0.0.1 port, and a
// raw client that speaks bytes (for what libnbd would refuse to send).

export interface RunningServer {
  readonly port: number
  readonly exports: NbdExports["Type"]
  readonly server: NbdServer["Type"]
  readonly stop: () => Promise<void>
}

export const startServer = async (
  specs: ReadonlyArray<ExportSpec>,
  options: Partial<NbdServerOptions> = {}
): Promise<RunningServer> => {
  const scope = Effect.runSync(Scope.make())
  const build = Effect.gen(function* () {
    const exports = yield* NbdExports
    for (const spec of specs) yield* exports.add(spec)
    const server = yield* makeServer({ host: "127.0.0.1", port: 0, ...options })
    return { exports, server }
  }).pipe(Effect.provide(NbdExports.layer), Scope.extend(scope))
  const { exports, server } = await Effect.runPromise(build)
  return {
    port: server.address.port,
    exports,
    server,
    stop: () => Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

export interface RawClient {
  readonly socket: net.Socket
  readonly read: (n: number) => Promise<Buffer>
  readonly write: (b: Buffer) => void
  // Resolves when the server closed the connection (EOF or reset).
  readonly closed: Promise<void>
  readonly buffered: () => number
  readonly isClosed: () => boolean
  readonly close: () => void
}

// `halfOpen`: the client keeps its side open when the server closes its own (by default
// node answers the server's FIN with its own).
// `localAddress`: the client's source address (another 127.x address plays another machine).
export const connect = (
  port: number,
  opts: { readonly halfOpen?: boolean; readonly localAddress?: string; readonly host?: string } = {}
): Promise<RawClient> =>
  new Promise((resolve, reject) => {
    const socket = net.connect({
      port,
      host: opts.host ?? "127.0.0.1",
      allowHalfOpen: opts.halfOpen ?? false,
      ...(opts.localAddress === undefined ? {} : { localAddress: opts.localAddress })
    })
    const chunks: Array<Buffer> = []
    let have = 0
    let ended = false
    let waiter: (() => void) | undefined
    const wake = () => {
      const w = waiter
      waiter = undefined
      w?.()
    }
    let onClosed: () => void = () => {}
    const closed = new Promise<void>((r) => (onClosed = r))
    socket.on("data", (c: Buffer) => {
      chunks.push(c)
      have += c.length
      wake()
    })
    const finish = () => {
      ended = true
      onClosed()
      wake()
    }
    socket.on("end", finish)
    socket.on("close", finish)
    socket.on("error", () => undefined)
    socket.once("connect", () =>
      resolve({
        socket,
        closed,
        buffered: () => have,
        isClosed: () => ended,
        write: (b) => {
          if (!socket.destroyed) socket.write(b)
        },
        close: () => socket.destroy(),
        read: async (n) => {
          while (have < n) {
            if (ended) throw new Error(`connection closed with ${have}/${n} bytes`)
            await new Promise<void>((r) => (waiter = r))
          }
          const all = Buffer.concat(chunks)
          chunks.length = 0
          const out = all.subarray(0, n)
          if (all.length > n) chunks.push(all.subarray(n))
          have -= n
          return out
        }
      })
    )
    socket.once("error", reject)
  })

export const option = (opt: number, data: Buffer = Buffer.alloc(0)): Buffer => {
  const b = Buffer.alloc(16 + data.length)
  IHAVEOPT.copy(b, 0)
  b.writeUInt32BE(opt, 8)
  b.writeUInt32BE(data.length, 12)
  data.copy(b, 16)
  return b
}

export const infoData = (name: string, types: ReadonlyArray<number> = []): Buffer => {
  const n = Buffer.from(name, "utf8")
  const b = Buffer.alloc(4 + n.length + 2 + 2 * types.length)
  b.writeUInt32BE(n.length, 0)
  n.copy(b, 4)
  b.writeUInt16BE(types.length, 4 + n.length)
  types.forEach((t, i) => b.writeUInt16BE(t, 6 + n.length + 2 * i))
  return b
}

export const metaData = (name: string, queries: ReadonlyArray<string>): Buffer => {
  const parts = [Buffer.alloc(4), Buffer.from(name, "utf8"), Buffer.alloc(4)]
  ;(parts[0] as Buffer).writeUInt32BE((parts[1] as Buffer).length, 0)
  ;(parts[2] as Buffer).writeUInt32BE(queries.length, 0)
  for (const q of queries) {
    const qb = Buffer.from(q, "utf8")
    const l = Buffer.alloc(4)
    l.writeUInt32BE(qb.length, 0)
    parts.push(l, qb)
  }
  return Buffer.concat(parts)
}

export interface OptionReply {
  readonly option: number
  readonly type: number
  readonly data: Buffer
}

export const readOptionReply = async (c: RawClient): Promise<OptionReply> => {
  const h = await c.read(20)
  const len = h.readUInt32BE(16)
  return { option: h.readUInt32BE(8), type: h.readUInt32BE(12), data: len > 0 ? await c.read(len) : Buffer.alloc(0) }
}

// Replies up to and including the final one (ACK or an error).
export const readOptionReplies = async (c: RawClient): Promise<Array<OptionReply>> => {
  const out: Array<OptionReply> = []
  for (;;) {
    const r = await readOptionReply(c)
    out.push(r)
    if (r.type === 1 || r.type >= 0x80000000) return out
  }
}

export interface Session {
  readonly client: RawClient
  readonly size: number
  readonly flags: number
}

// Greeting, client flags, optional STRUCTURED_REPLY and base:allocation, then GO.
export const openSession = async (
  port: number,
  name: string,
  opts: { readonly structured?: boolean; readonly allocation?: boolean; readonly halfOpen?: boolean; readonly localAddress?: string; readonly host?: string } = {}
): Promise<Session> => {
  const c = await connect(port, {
    halfOpen: opts.halfOpen ?? false,
    ...(opts.localAddress === undefined ? {} : { localAddress: opts.localAddress }),
    ...(opts.host === undefined ? {} : { host: opts.host })
  })
  await c.read(18)
  c.write(Buffer.from([0, 0, 0, 3]))
  if (opts.structured) {
    c.write(option(Opt.STRUCTURED_REPLY))
    await readOptionReplies(c)
  }
  if (opts.allocation) {
    c.write(option(Opt.SET_META_CONTEXT, metaData(name, ["base:allocation"])))
    await readOptionReplies(c)
  }
  c.write(option(Opt.GO, infoData(name)))
  const replies = await readOptionReplies(c)
  const last = replies[replies.length - 1] as OptionReply
  if (last.type !== 1) throw new Error(`GO ${name} refused: type ${last.type.toString(16)} ${last.data.toString()}`)
  const exp = replies.find((r) => r.type === 3 && r.data.readUInt16BE(0) === 0) as OptionReply
  return { client: c, size: Number(exp.data.readBigUInt64BE(2)), flags: exp.data.readUInt16BE(10) }
}

export const request = (type: number, cookie: number, offset: number, length: number, flags = 0, payload?: Buffer): Buffer => {
  const b = Buffer.alloc(28 + (payload?.length ?? 0))
  b.writeUInt32BE(REQUEST_MAGIC, 0)
  b.writeUInt16BE(flags, 4)
  b.writeUInt16BE(type, 6)
  b.writeBigUInt64BE(BigInt(cookie), 8)
  b.writeBigUInt64BE(BigInt(offset), 16)
  b.writeUInt32BE(length, 24)
  payload?.copy(b, 28)
  return b
}

// A simple reply: (errno, cookie), and `dataLength` bytes of data when errno is 0.
export const readSimpleReply = async (c: RawClient, dataLength = 0) => {
  const h = await c.read(16)
  if (h.readUInt32BE(0) !== 0x67446698) throw new Error(`bad reply magic ${h.readUInt32BE(0).toString(16)}`)
  const errno = h.readUInt32BE(4)
  const cookie = Number(h.readBigUInt64BE(8))
  const data = errno === 0 && dataLength > 0 ? await c.read(dataLength) : Buffer.alloc(0)
  return { errno, cookie, data }
}

export const readChunk = async (c: RawClient) => {
  const h = await c.read(20)
  if (h.readUInt32BE(0) !== 0x668e33ef) throw new Error(`bad chunk magic ${h.readUInt32BE(0).toString(16)}`)
  const len = h.readUInt32BE(16)
  return {
    flags: h.readUInt16BE(4),
    type: h.readUInt16BE(6),
    cookie: Number(h.readBigUInt64BE(8)),
    payload: len > 0 ? await c.read(len) : Buffer.alloc(0)
  }
}

export const disc = (c: RawClient) => c.write(request(Cmd.DISC, 0, 0, 0))

// Polls `cond` on the event loop until it holds (bounded by the test timeout). Used only
// to wait for real I/O to reach a state, never as a timer under test.
export const until = async (cond: () => boolean | Promise<boolean>, what: string, maxPolls = 3000): Promise<void> => {
  for (let i = 0; i < maxPolls; i++) {
    if (await cond()) return
    await new Promise((r) => setTimeout(r, 5))
  }
  throw new Error(`gave up waiting for ${what}`)
}

export type { ExportBackend }
