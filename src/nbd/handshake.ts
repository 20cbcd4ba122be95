import type { AccessDecision, ExportEntry, ExportTable, Resolved } from "./exports.js"
import {
  BASE_ALLOCATION,
  BASE_ALLOCATION_ID,
  FLAG_FIXED_NEWSTYLE,
  FLAG_NO_ZEROES,
  IHAVEOPT,
  Info,
  NBDMAGIC,
  Opt,
  Rep,
  TF
} from "./protocol.js"
import { optionReply, writeU64 } from "./replies.js"

// Option haggling (fixed newstyle). Each option arrives whole (connection.ts frames
// them); this file decides the replies and whether haggling ends.

export interface Limits {
  // Largest READ/WRITE payload accepted, advertised as INFO_BLOCK_SIZE maximum.
  readonly maxPayload: number
}

export interface HandshakeState {
  noZeroes: boolean
  structured: boolean
  // SET_META_CONTEXT selection; it only applies to a later GO on the same name.
  meta: { readonly wireName: string; readonly allocation: boolean } | undefined
}

export interface Negotiated {
  readonly entry: ExportEntry
  readonly generation: number
  readonly size: number
  readonly flags: number
  readonly structured: boolean
  readonly allocation: boolean
}

export type OptionOutcome =
  | { readonly _tag: "Continue" }
  // Replies (if any) were sent; the connection must be closed after they are flushed.
  | { readonly _tag: "Close"; readonly reason: string }
  | { readonly _tag: "Transmission"; readonly negotiated: Negotiated }
  // Nothing was sent: the export is being fenced (exports.ts). Handle the same option
  // again once `settled` has; meanwhile read nothing more from this client.
  | { readonly _tag: "Wait"; readonly settled: Promise<void> }

const CONTINUE: OptionOutcome = { _tag: "Continue" }

export const greeting = (): Buffer => {
  const b = Buffer.allocUnsafe(18)
  NBDMAGIC.copy(b, 0)
  IHAVEOPT.copy(b, 8)
  b.writeUInt16BE(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES, 16)
  return b
}

export const initialState = (): HandshakeState => ({ noZeroes: false, structured: false, meta: undefined })

// Flags are computed at GO time: DF depends on structured replies having been negotiated.
export const transmissionFlags = (entry: ExportEntry, structured: boolean): number => {
  const b = entry.backend
  let f = TF.HAS_FLAGS | TF.SEND_FLUSH | TF.SEND_CACHE
  if (entry.readOnly) f |= TF.READ_ONLY
  else {
    f |= TF.SEND_FUA
    if (b.canTrim) f |= TF.SEND_TRIM
    if (b.canZero) {
      f |= TF.SEND_WRITE_ZEROES
      if (b.canFastZero) f |= TF.SEND_FAST_ZERO
    }
  }
  if (structured) f |= TF.SEND_DF
  if (b.multiConn) f |= TF.CAN_MULTI_CONN
  return f
}

const text = (s: string) => Buffer.from(s, "utf8")

const infoItem = (type: number, payload: Buffer): Buffer => {
  const b = Buffer.allocUnsafe(2 + payload.length)
  b.writeUInt16BE(type, 0)
  payload.copy(b, 2)
  return b
}

export interface OptionContext {
  readonly table: ExportTable
  readonly limits: Limits
  readonly shuttingDown: boolean
  readonly send: (b: Buffer) => void
  // The listener's gate (exports.ts `ExportAccess`), bound to this connection's peer.
  readonly access?: (wireName: string) => AccessDecision
}

const lookup = (ctx: OptionContext, wireName: string): Resolved => {
  if (ctx.access === undefined) return ctx.table.resolve(wireName)
  const decision = ctx.access(wireName)
  return decision._tag === "Refuse" ? { _tag: "Refused", reason: decision.reason } : ctx.table.resolve(decision.wireName)
}

export const handleOption = (ctx: OptionContext, state: HandshakeState, option: number, data: Buffer): OptionOutcome => {
  const { send } = ctx
  const reply = (type: number, payload?: Buffer) => send(optionReply(option, type, payload))
  const fail = (type: number, message: string) => {
    reply(type, text(message))
    return CONTINUE
  }

  switch (option) {
    case Opt.EXPORT_NAME: {
      const wireName = data.toString("utf8")
      // No way to report an error here: the spec says close.
      if (ctx.shuttingDown) return { _tag: "Close", reason: "server shutting down" }
      const found = lookup(ctx, wireName)
      if (found._tag === "Refused") return { _tag: "Close", reason: found.reason }
      if (found._tag === "Fencing") return { _tag: "Wait", settled: found.settled }
      const negotiated = negotiate(state, found.entry, found.generation, wireName)
      const b = Buffer.alloc(state.noZeroes ? 10 : 134)
      writeU64(b, 0, negotiated.size)
      b.writeUInt16BE(negotiated.flags, 8)
      send(b)
      return { _tag: "Transmission", negotiated }
    }
    case Opt.ABORT:
      reply(Rep.ACK)
      return { _tag: "Close", reason: "client aborted" }
    case Opt.LIST: {
      if (data.length !== 0) return fail(Rep.ERR_INVALID, "LIST takes no data")
      for (const e of ctx.access === undefined ? ctx.table.entries() : []) {
        const name = text(e.name)
        const desc = text(e.description)
        const b = Buffer.allocUnsafe(4 + name.length + desc.length)
        b.writeUInt32BE(name.length, 0)
        name.copy(b, 4)
        desc.copy(b, 4 + name.length)
        reply(Rep.SERVER, b)
      }
      reply(Rep.ACK)
      return CONTINUE
    }
    case Opt.STRUCTURED_REPLY:
      if (data.length !== 0) return fail(Rep.ERR_INVALID, "STRUCTURED_REPLY takes no data")
      state.structured = true
      reply(Rep.ACK)
      return CONTINUE
    case Opt.INFO:
    case Opt.GO: {
      const req = parseInfoRequest(data)
      if (typeof req === "string") return fail(Rep.ERR_INVALID, req)
      if (ctx.shuttingDown) return fail(Rep.ERR_SHUTDOWN, "server shutting down")
      const found = lookup(ctx, req.name)
      if (found._tag === "Refused") return fail(Rep.ERR_UNKNOWN, found.reason)
      if (found._tag === "Fencing") return { _tag: "Wait", settled: found.settled }
      const n = negotiate(state, found.entry, found.generation, req.name)
      const exp = Buffer.allocUnsafe(10)
      writeU64(exp, 0, n.size)
      exp.writeUInt16BE(n.flags, 8)
      reply(Rep.INFO, infoItem(Info.EXPORT, exp))
      for (const type of new Set(req.types)) {
        // The name as the client gave it (`scratch`, not `scratch@0`; empty for the default
        // export): a name it can use. Pinning a generation is the client's choice.
        if (type === Info.NAME) reply(Rep.INFO, infoItem(Info.NAME, text(req.name)))
        else if (type === Info.DESCRIPTION && n.entry.description !== "") reply(Rep.INFO, infoItem(Info.DESCRIPTION, text(n.entry.description)))
        else if (type === Info.BLOCK_SIZE) {
          const bs = Buffer.allocUnsafe(12)
          bs.writeUInt32BE(1, 0)
          bs.writeUInt32BE(4096, 4)
          bs.writeUInt32BE(ctx.limits.maxPayload, 8)
          reply(Rep.INFO, infoItem(Info.BLOCK_SIZE, bs))
        }
        // Unknown info types MUST be ignored.
      }
      reply(Rep.ACK)
      return option === Opt.GO ? { _tag: "Transmission", negotiated: n } : CONTINUE
    }
    case Opt.LIST_META_CONTEXT:
    case Opt.SET_META_CONTEXT: {
      const set = option === Opt.SET_META_CONTEXT
      // SET replaces the selection even when it fails.
      if (set) state.meta = undefined
      const req = parseMetaRequest(data)
      if (typeof req === "string") return fail(Rep.ERR_INVALID, req)
      if (set && !state.structured) return fail(Rep.ERR_INVALID, "SET_META_CONTEXT needs STRUCTURED_REPLY first")
      const found = lookup(ctx, req.name)
      if (found._tag === "Refused") return fail(Rep.ERR_UNKNOWN, found.reason)
      const matches = set
        ? req.queries.some((q) => q === BASE_ALLOCATION)
        : req.queries.length === 0 || req.queries.some((q) => q === BASE_ALLOCATION || q === "base:")
      if (matches) {
        const name = text(BASE_ALLOCATION)
        const b = Buffer.allocUnsafe(4 + name.length)
        b.writeUInt32BE(set ? BASE_ALLOCATION_ID : 0, 0)
        name.copy(b, 4)
        reply(Rep.META_CONTEXT, b)
      }
      if (set) state.meta = { wireName: req.name, allocation: matches }
      reply(Rep.ACK)
      return CONTINUE
    }
    default:
      // STARTTLS, PEEK_EXPORT, EXTENDED_HEADERS and anything unknown.
      return fail(Rep.ERR_UNSUP, `option ${option} is not supported`)
  }
}

const negotiate = (state: HandshakeState, entry: ExportEntry, generation: number, wireName: string): Negotiated => ({
  entry,
  generation,
  size: entry.backend.size,
  flags: transmissionFlags(entry, state.structured),
  structured: state.structured,
  allocation: state.structured && state.meta !== undefined && state.meta.wireName === wireName && state.meta.allocation
})

// INFO/GO data: u32 namelen, name, u16 nreq, nreq × u16.
export const parseInfoRequest = (data: Buffer): { readonly name: string; readonly types: ReadonlyArray<number> } | string => {
  if (data.length < 6) return "INFO/GO data shorter than 6 bytes"
  const nameLen = data.readUInt32BE(0)
  if (nameLen > data.length - 6) return "export name length runs past the option data"
  const nreq = data.readUInt16BE(4 + nameLen)
  if (data.length !== 6 + nameLen + 2 * nreq) return "information request count does not match the option length"
  const types: Array<number> = []
  for (let i = 0; i < nreq; i++) types.push(data.readUInt16BE(6 + nameLen + 2 * i))
  return { name: data.toString("utf8", 4, 4 + nameLen), types }
}

// META_CONTEXT data: u32 namelen, name, u32 nqueries, nqueries × (u32 len, query).
export const parseMetaRequest = (data: Buffer): { readonly name: string; readonly queries: ReadonlyArray<string> } | string => {
  if (data.length < 8) return "META_CONTEXT data shorter than 8 bytes"
  const nameLen = data.readUInt32BE(0)
  if (nameLen > data.length - 8) return "export name length runs past the option data"
  const name = data.toString("utf8", 4, 4 + nameLen)
  let o = 4 + nameLen
  const count = data.readUInt32BE(o)
  o += 4
  const queries: Array<string> = []
  for (let i = 0; i < count; i++) {
    if (o + 4 > data.length) return "query count runs past the option data"
    const len = data.readUInt32BE(o)
    o += 4
    if (len > data.length - o) return "query length runs past the option data"
    queries.push(data.toString("utf8", o, o + len))
    o += len
  }
  if (o !== data.length) return "trailing bytes after the last query"
  return { name, queries }
}
