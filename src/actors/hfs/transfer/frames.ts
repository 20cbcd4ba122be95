import { Either, Schema } from "effect"
import { HASH_BYTES, PAGE, type Run, WINDOW } from "./digest.js"

// The transfer's wire format (README.md): every frame is u8 type ‖ u32be body length ‖ body.
// Decoding is total: any byte string yields frames or one reason, never a throw, and nothing
// is allocated beyond one frame's declared (bounded) length.

export const FrameType = { hello: 1, start: 2, window: 3, end: 4, fail: 5 } as const
const HEADER = 5
const JSON_MAX = 4096
const START_BODY = 28
const END_BODY = 44
const WINDOW_HEAD = 8 + 2 + HASH_BYTES
const RUN_BYTES = 12
export const MAX_RUNS = WINDOW / PAGE
const WINDOW_MAX = WINDOW_HEAD + MAX_RUNS * RUN_BYTES + WINDOW

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
  const body = WINDOW_HEAD + runs.length * RUN_BYTES
  const b = head(FrameType.window, body + payloadLength, body)
  b.writeBigUInt64BE(BigInt(offset), 5)
  b.writeUInt16BE(runs.length, 13)
  hash.copy(b, 15)
  let at = 15 + HASH_BYTES
  for (const run of runs) {
    b.writeBigUInt64BE(BigInt(run.offset), at)
    b.writeUInt32BE(run.length, at + 8)
    at += RUN_BYTES
  }
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

const u64 = (b: Buffer, at: number): number | undefined => {
  const v = b.readBigUInt64BE(at)
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : undefined
}

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
      return WINDOW_MAX
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
      const runs: Array<Run> = []
      let total = 0
      for (let at = WINDOW_HEAD; at < headEnd; at += RUN_BYTES) {
        const runOffset = u64(body, at)
        if (runOffset === undefined) return Either.left("window: run offset beyond 2^53")
        const length = body.readUInt32BE(at + 8)
        runs.push({ offset: runOffset, length })
        total += length
      }
      if (total !== body.length - headEnd) return Either.left(`window: runs total ${total} bytes, payload is ${body.length - headEnd}`)
      return Either.right({
        type: "window",
        offset,
        hash: body.subarray(10, 10 + HASH_BYTES),
        runs,
        payload: body.subarray(headEnd)
      })
    }
    default:
      return Either.left(`unknown frame type ${type}`)
  }
}

export interface DecoderOptions {
  /**
   * A buffer of at least WINDOW_MAX_BODY bytes to decode the next window frame into (the
   * frame's runs and payload stay views of it until the caller gives it back), or undefined
   * to allocate one. Lets the destination reuse a few shared buffers instead of a fresh
   * 4 MiB allocation per frame (10 % of its time went to the GC).
   */
  readonly windowBuffer?: () => Buffer | undefined
}

/** The largest window frame body: head, a full run table and a full window. */
export const WINDOW_MAX_BODY = WINDOW_MAX

/**
 * An incremental decoder accepting only the frame types in `accept`. `push` returns the frames
 * completed by this chunk, or the reason the stream is unreadable (then the decoder is dead).
 * Every chunk is consumed (copied) before `push` returns, so the caller may reuse it; at most
 * one partial frame is held.
 */
export const makeDecoder = (accept: ReadonlyArray<FrameName>, options: DecoderOptions = {}) => {
  const header = Buffer.alloc(HEADER)
  let headerFill = 0
  let body: Buffer | undefined
  let bodyFill = 0
  let bodyType = 0
  let dead: string | undefined

  const push = (chunk: Buffer): Either.Either<ReadonlyArray<Frame>, string> => {
    if (dead !== undefined) return Either.left(dead)
    const frames: Array<Frame> = []
    let at = 0
    for (;;) {
      if (body === undefined) {
        if (headerFill < HEADER) {
          const k = Math.min(HEADER - headerFill, chunk.length - at)
          chunk.copy(header, headerFill, at, at + k)
          headerFill += k
          at += k
          if (headerFill < HEADER) return Either.right(frames)
        }
        const type = header.readUInt8(0)
        const length = header.readUInt32BE(1)
        const name = nameOf(type)
        const max = maxBody(type)
        if (name === undefined || max === undefined) return Either.left((dead = `unknown frame type ${type}`))
        if (!accept.includes(name)) return Either.left((dead = `unexpected ${name} frame`))
        if (length > max) return Either.left((dead = `${name} frame of ${length} bytes, at most ${max}`))
        const reused = type === FrameType.window ? options.windowBuffer?.() : undefined
        body = reused !== undefined && reused.length >= length ? reused.subarray(0, length) : Buffer.allocUnsafe(length)
        bodyFill = 0
        bodyType = type
      }
      const k = Math.min(body.length - bodyFill, chunk.length - at)
      chunk.copy(body, bodyFill, at, at + k)
      bodyFill += k
      at += k
      if (bodyFill < body.length) return Either.right(frames)
      const decoded = decodeBody(bodyType, body)
      body = undefined
      headerFill = 0
      bodyFill = 0
      if (Either.isLeft(decoded)) return Either.left((dead = decoded.left))
      frames.push(decoded.right)
      if (at === chunk.length) return Either.right(frames)
    }
  }

  return { push, buffered: () => headerFill + bodyFill }
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
