import { Either, Schema } from "effect"
import { HASH_BYTES, PAGE, type Run, WINDOW } from "./digest.js"
import { BODY_HASH_AT, HEADER, MAX_RUNS, readRunTable, readU64, RUN_BYTES, WINDOW_HEAD, WINDOW_MAX_BODY, writeWindowHead } from "./window-frame.js"

// The transfer's wire format (README.md): every frame is u8 type ‖ u32be body length ‖ body.
// Decoding is total: any byte string yields frames or one reason, never a throw, and nothing
// is allocated beyond one frame's declared (bounded) length.

export const FrameType = { hello: 1, start: 2, window: 3, end: 4, fail: 5 } as const
const JSON_MAX = 4096
const START_BODY = 28
const END_BODY = 44
export { MAX_RUNS, WINDOW_MAX_BODY }

export const Hello = Schema.Struct({
  login: Schema.String.pipe(Schema.maxLength(64)),
  generation: Schema.Int.pipe(Schema.nonNegative()),
  from: Schema.Int.pipe(Schema.nonNegative()),
  token: Schema.String.pipe(Schema.maxLength(200))
})
export type Hello = typeof Hello.Type

export const Fail = Schema.Struct({ tag: Schema.String.pipe(Schema.maxLength(64)), message: Schema.String.pipe(Schema.maxLength(2000)) })
export type Fail = typeof Fail.Type

export type Frame =
  | { readonly type: "hello"; readonly hello: Hello }
  | { readonly type: "start"; readonly size: number; readonly allocated: number; readonly window: number; readonly from: number }
  | { readonly type: "window"; readonly offset: number; readonly hash: Buffer; readonly runs: ReadonlyArray<Run>; readonly payload: Buffer }
  | { readonly type: "end"; readonly size: number; readonly windows: number; readonly digest: Buffer }
  | { readonly type: "fail"; readonly fail: Fail }

export type FrameName = Frame["type"]

// ---- encoding -----------------------------------------------------------------------------

const head = (type: number, length: number, extra: number): Buffer => {
  const b = Buffer.allocUnsafe(HEADER + extra)
  b.writeUInt8(type, 0)
  b.writeUInt32BE(length, 1)
  return b
}

const jsonFrame = (type: number, value: unknown): Buffer => {
  const body = Buffer.from(JSON.stringify(value), "utf8")
  const b = head(type, body.length, 0)
  return Buffer.concat([b, body])
}

export const encodeHello = (hello: Hello): Buffer => jsonFrame(FrameType.hello, hello)
export const encodeFail = (fail: Fail): Buffer =>
  jsonFrame(FrameType.fail, { tag: fail.tag.slice(0, 64), message: fail.message.slice(0, 2000) })

export const encodeStart = (size: number, allocated: number, from: number): Buffer => {
  const b = head(FrameType.start, START_BODY, START_BODY)
  b.writeBigUInt64BE(BigInt(size), 5)
  b.writeBigUInt64BE(BigInt(allocated), 13)
  b.writeUInt32BE(WINDOW, 21)
  b.writeBigUInt64BE(BigInt(from), 25)
  return b
}

/** The frame's head (everything before the payload); the payload is written after it as is. */
export const encodeWindowHead = (offset: number, hash: Buffer, runs: ReadonlyArray<Run>, payloadLength: number): Buffer => {
  const b = Buffer.allocUnsafe(HEADER + WINDOW_HEAD + runs.length * RUN_BYTES)
  writeWindowHead(b, 0, offset, runs, payloadLength)
  hash.copy(b, HEADER + BODY_HASH_AT)
  return b
}

export const encodeEnd = (size: number, windows: number, digest: Buffer): Buffer => {
  const b = head(FrameType.end, END_BODY, END_BODY)
  b.writeBigUInt64BE(BigInt(size), 5)
  b.writeUInt32BE(windows, 13)
  digest.copy(b, 17)
  return b
}

// ---- decoding -----------------------------------------------------------------------------

const u64 = readU64

const maxBody = (type: number): number | undefined => {
  switch (type) {
    case FrameType.hello:
    case FrameType.fail:
      return JSON_MAX
    case FrameType.start:
      return START_BODY
    case FrameType.end:
      return END_BODY
    case FrameType.window:
      return WINDOW_MAX_BODY
    default:
      return undefined
  }
}

const nameOf = (type: number): FrameName | undefined =>
  (["hello", "start", "window", "end", "fail"] as const)[type - 1]

const decodeJson = <A, I>(schema: Schema.Schema<A, I>, body: Buffer): Either.Either<A, string> => {
  let value: unknown
  try {
    value = JSON.parse(body.toString("utf8"))
  } catch {
    return Either.left("body is not JSON")
  }
  return Either.mapLeft(Schema.decodeUnknownEither(schema)(value), (e) => `body does not match: ${e.message.split("\n")[0]}`)
}

const decodeBody = (type: number, body: Buffer): Either.Either<Frame, string> => {
  switch (type) {
    case FrameType.hello:
      return Either.map(decodeJson(Hello, body), (hello) => ({ type: "hello", hello }) as const)
    case FrameType.fail:
      return Either.map(decodeJson(Fail, body), (fail) => ({ type: "fail", fail }) as const)
    case FrameType.start: {
      if (body.length !== START_BODY) return Either.left(`start body of ${body.length} bytes, expected ${START_BODY}`)
      const size = u64(body, 0)
      const allocated = u64(body, 8)
      const window = body.readUInt32BE(16)
      const from = u64(body, 20)
      if (size === undefined || allocated === undefined || from === undefined) return Either.left("start: a 64-bit field beyond 2^53")
      if (window !== WINDOW) return Either.left(`start: window of ${window} bytes, this side uses ${WINDOW}`)
      return Either.right({ type: "start", size, allocated, window, from })
    }
    case FrameType.end: {
      if (body.length !== END_BODY) return Either.left(`end body of ${body.length} bytes, expected ${END_BODY}`)
      const size = u64(body, 0)
      if (size === undefined) return Either.left("end: size beyond 2^53")
      return Either.right({ type: "end", size, windows: body.readUInt32BE(8), digest: Buffer.from(body.subarray(12, 12 + HASH_BYTES)) })
    }
    case FrameType.window: {
      if (body.length < WINDOW_HEAD) return Either.left(`window body of ${body.length} bytes, shorter than its head`)
      const offset = u64(body, 0)
      if (offset === undefined) return Either.left("window: offset beyond 2^53")
      const count = body.readUInt16BE(8)
      if (count > MAX_RUNS) return Either.left(`window: ${count} runs, at most ${MAX_RUNS}`)
      const headEnd = WINDOW_HEAD + count * RUN_BYTES
      if (body.length < headEnd) return Either.left(`window: ${count} runs do not fit in ${body.length} bytes`)
      const runs = readRunTable(body, WINDOW_HEAD, count)
      if (runs === undefined) return Either.left("window: run offset beyond 2^53")
      let total = 0
      for (const run of runs) total += run.length
      if (total !== body.length - headEnd) return Either.left(`window: runs total ${total} bytes, payload is ${body.length - headEnd}`)
      return Either.right({
        type: "window",
        offset,
        hash: body.subarray(BODY_HASH_AT, BODY_HASH_AT + HASH_BYTES),
        runs,
        payload: body.subarray(headEnd)
      })
    }
    default:
      return Either.left(`unknown frame type ${type}`)
  }
}

/** The stream is unreadable: why (the parser is dead after it). */
export interface Unreadable {
  readonly _tag: "Bad"
  readonly reason: string
}

export interface FrameParser {
  /**
   * Where the next bytes of the stream go: exactly the rest of the current part (a frame's
   * 5-byte header, or its body), so that a socket can read straight into it (socket-io.ts).
   * A window body goes into the buffer `windowBody` gave; undefined while it gives none (the
   * caller stops reading and asks again later), and once the stream is unreadable.
   */
  readonly target: () => Buffer | undefined
  /** `n` bytes landed at the start of `target()`: the frame they completed, if any, or why the stream is unreadable. */
  readonly advance: (n: number) => Frame | Unreadable | undefined
  /** Bytes of the frame in progress received so far. */
  readonly buffered: () => number
}

/**
 * The incremental decoder, accepting only the frame types in `accept`, reading in place:
 * `target()` says where the next bytes go, `advance(n)` that they arrived. Bodies are checked
 * (decodeBody) once complete. A window frame's body goes into the first `length` bytes of
 * `windowBody(length)` (its runs and payload stay views of it until the caller reuses it);
 * any other body into a fresh buffer of its declared length, bounded per type.
 */
export const makeFrameParser = (
  accept: ReadonlyArray<FrameName>,
  windowBody: (length: number) => Buffer | undefined = (length) => Buffer.allocUnsafe(length)
): FrameParser => {
  const header = Buffer.alloc(HEADER)
  let headerFill = 0
  let type = 0
  let length = 0
  let body: Buffer | undefined
  let bodyFill = 0
  let dead: Unreadable | undefined
  // The current target, until bytes land in it (a socket asks twice per read).
  let current: Buffer | undefined

  const finish = (): Frame | Unreadable => {
    const decoded = decodeBody(type, body ?? Buffer.alloc(0))
    headerFill = 0
    body = undefined
    bodyFill = 0
    if (Either.isLeft(decoded)) return (dead = { _tag: "Bad", reason: decoded.left })
    return decoded.right
  }

  const begin = (): Frame | Unreadable | undefined => {
    type = header.readUInt8(0)
    length = header.readUInt32BE(1)
    const name = nameOf(type)
    const max = maxBody(type)
    if (name === undefined || max === undefined) return (dead = { _tag: "Bad", reason: `unknown frame type ${type}` })
    if (!accept.includes(name)) return (dead = { _tag: "Bad", reason: `unexpected ${name} frame` })
    if (length > max) return (dead = { _tag: "Bad", reason: `${name} frame of ${length} bytes, at most ${max}` })
    if (length === 0) return finish()
    // A window body waits for its buffer (target); any other is small.
    if (type !== FrameType.window) body = Buffer.allocUnsafe(length)
    return undefined
  }

  const target = (): Buffer | undefined => {
    if (current !== undefined || dead !== undefined) return current
    if (headerFill < HEADER) return (current = headerFill === 0 ? header : header.subarray(headerFill))
    if (body === undefined) {
      const b = windowBody(length)
      if (b === undefined) return undefined
      body = b.length === length ? b : b.subarray(0, length)
    }
    return (current = bodyFill === 0 ? body : body.subarray(bodyFill))
  }

  const advance = (n: number): Frame | Unreadable | undefined => {
    current = undefined
    if (dead !== undefined) return dead
    if (headerFill < HEADER) {
      headerFill += n
      return headerFill < HEADER ? undefined : begin()
    }
    bodyFill += n
    return bodyFill < length ? undefined : finish()
  }

  return { target, advance, buffered: () => headerFill + bodyFill }
}

/**
 * The parser fed with chunks (copied in): `push` returns the frames completed by this chunk,
 * or the reason the stream is unreadable (then the decoder is dead). Every chunk is consumed
 * before `push` returns, so the caller may reuse it; at most one partial frame is held.
 */
export const makeDecoder = (accept: ReadonlyArray<FrameName>) => {
  const parser = makeFrameParser(accept)
  const push = (chunk: Buffer): Either.Either<ReadonlyArray<Frame>, string> => {
    const frames: Array<Frame> = []
    let at = 0
    do {
      const t = parser.target()
      // Dead (the only way a parser with its own window buffers has no target).
      if (t === undefined) return Either.left((parser.advance(0) as Unreadable).reason)
      const k = Math.min(t.length, chunk.length - at)
      chunk.copy(t, 0, at, at + k)
      at += k
      const r = parser.advance(k)
      if (r === undefined) continue
      if ("_tag" in r) return Either.left(r.reason)
      frames.push(r)
    } while (at < chunk.length)
    return Either.right(frames)
  }
  return { push, buffered: parser.buffered }
}

/**
 * What a window frame may say, given the image size and the previous window: aligned, after
 * the previous one, runs ascending, page-aligned, non-empty, never touching, inside the window.
 */
export const windowProblem = (
  frame: { readonly offset: number; readonly runs: ReadonlyArray<Run> },
  size: number,
  after: number
): string | undefined => {
  if (frame.offset % WINDOW !== 0) return `window offset ${frame.offset} is not a multiple of ${WINDOW}`
  if (frame.offset < after) return `window ${frame.offset} comes after window ${after - WINDOW} or before the resume offset`
  if (frame.offset >= size) return `window ${frame.offset} is beyond the image size ${size}`
  const end = Math.min(frame.offset + WINDOW, size)
  let prevEnd = -1
  for (const run of frame.runs) {
    const runEnd = run.offset + run.length
    if (run.length === 0) return `empty run at ${run.offset}`
    if (run.offset % PAGE !== 0 || (runEnd % PAGE !== 0 && runEnd !== size)) return `run ${run.offset}+${run.length} is not page-aligned`
    if (run.offset < frame.offset || runEnd > end) return `run ${run.offset}+${run.length} is outside window ${frame.offset}`
    if (run.offset <= prevEnd) return `run ${run.offset} overlaps or touches the previous run`
    prevEnd = runEnd
  }
  return undefined
}
