import { OPTION_REPLY_MAGIC, ReplyFlag, ReplyType, SIMPLE_REPLY_MAGIC, STRUCTURED_REPLY_MAGIC } from "./protocol.js"

// Encoders for everything the server sends. Cookies are echoed as two u32 halves so the
// hot path never builds a BigInt.

export const optionReply = (option: number, type: number, data?: Buffer): Buffer => {
  const len = data?.length ?? 0
  const b = Buffer.allocUnsafe(20 + len)
  OPTION_REPLY_MAGIC.copy(b, 0)
  b.writeUInt32BE(option, 8)
  b.writeUInt32BE(type, 12)
  b.writeUInt32BE(len, 16)
  if (data !== undefined) data.copy(b, 20)
  return b
}

export const simpleReply = (errno: number, cookieHi: number, cookieLo: number): Buffer => {
  const b = Buffer.allocUnsafe(16)
  b.writeUInt32BE(SIMPLE_REPLY_MAGIC, 0)
  b.writeUInt32BE(errno, 4)
  b.writeUInt32BE(cookieHi, 8)
  b.writeUInt32BE(cookieLo, 12)
  return b
}

// A structured chunk header with `extra` bytes of room after it for the fixed part of
// the payload (filled by the caller); `payloadLength` counts the whole payload.
export const structuredHeader = (
  flags: number,
  type: number,
  cookieHi: number,
  cookieLo: number,
  payloadLength: number,
  extra: number
): Buffer => {
  const b = Buffer.allocUnsafe(20 + extra)
  b.writeUInt32BE(STRUCTURED_REPLY_MAGIC, 0)
  b.writeUInt16BE(flags, 4)
  b.writeUInt16BE(type, 6)
  b.writeUInt32BE(cookieHi, 8)
  b.writeUInt32BE(cookieLo, 12)
  b.writeUInt32BE(payloadLength, 16)
  return b
}

// OFFSET_DATA header (20 + u64 offset); the data follows as a separate write.
export const offsetDataHeader = (cookieHi: number, cookieLo: number, offset: number, dataLength: number, done: boolean): Buffer => {
  const b = structuredHeader(done ? ReplyFlag.DONE : 0, ReplyType.OFFSET_DATA, cookieHi, cookieLo, 8 + dataLength, 8)
  writeU64(b, 20, offset)
  return b
}

export const noneChunk = (cookieHi: number, cookieLo: number): Buffer =>
  structuredHeader(ReplyFlag.DONE, ReplyType.NONE, cookieHi, cookieLo, 0, 0)

export const errorChunk = (cookieHi: number, cookieLo: number, errno: number, message: string): Buffer => {
  // Error strings are for humans; keep them well under any payload limit.
  const msg = Buffer.from(message.slice(0, 200), "utf8")
  const b = structuredHeader(ReplyFlag.DONE, ReplyType.ERROR, cookieHi, cookieLo, 6 + msg.length, 6 + msg.length)
  b.writeUInt32BE(errno, 20)
  b.writeUInt16BE(msg.length, 24)
  msg.copy(b, 26)
  return b
}

// BLOCK_STATUS chunk: context id + (length, flags) pairs.
export const blockStatusChunk = (
  cookieHi: number,
  cookieLo: number,
  contextId: number,
  extents: ReadonlyArray<readonly [length: number, flags: number]>
): Buffer => {
  const payload = 4 + 8 * extents.length
  const b = structuredHeader(ReplyFlag.DONE, ReplyType.BLOCK_STATUS, cookieHi, cookieLo, payload, payload)
  b.writeUInt32BE(contextId, 20)
  let o = 24
  for (const [length, flags] of extents) {
    b.writeUInt32BE(length, o)
    b.writeUInt32BE(flags, o + 4)
    o += 8
  }
  return b
}

export const writeU64 = (b: Buffer, at: number, value: number): void => {
  b.writeUInt32BE(Math.floor(value / 0x100000000), at)
  b.writeUInt32BE(value >>> 0, at + 4)
}

// A u64 as a Number; values ≥ 2^53 (never a valid offset here) come back as +Infinity.
export const readU64 = (b: Buffer, at: number): number => {
  const hi = b.readUInt32BE(at)
  if (hi >= 0x200000) return Number.POSITIVE_INFINITY
  return hi * 0x100000000 + b.readUInt32BE(at + 4)
}
