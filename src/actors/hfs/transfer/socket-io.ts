import { Effect } from "effect"
import type * as net from "node:net"
import { type Frame, type FrameName, makeFrameParser } from "./frames.js"

// Frames in and out of one node:net socket, with bounded memory both ways. Reading: the
// parser (frames.ts) says where the next bytes go, and a socket made with `frameSocket` reads
// straight there (node's `onread` with a buffer function: no copy, no allocation per read),
// a window's body into a buffer the consumer lends (`windowBody`); reading stops while none
// is free, or while READ_AHEAD frames wait for a consumer that takes them one by one (`next`).
// Writing: a write completes only once node handed its bytes to the kernel, so a caller that
// waits for it before reusing its buffer never queues more than it wrote.

const READ_AHEAD = 4
// Bytes that arrive while no buffer is lent for a window's body (a read node started on its
// own, or the first read after `wake`) land here, one byte at a time, and are copied on.
const STASH_MAX = 4096

/** Why no further frame will come: unreadable bytes, or the connection ended. */
export type ReadEnd = { readonly _tag: "Bad"; readonly reason: string } | { readonly _tag: "Closed"; readonly message: string }

export interface FrameReader {
  /** The next frame (one consumer at a time); not used once `follow` was called. */
  readonly next: Effect.Effect<Frame, ReadEnd>
  /**
   * From now on frames go to `onFrame` as they complete (those already queued first) and the
   * end to `onEnd`, once; reading stops only for want of a window buffer.
   */
  readonly follow: (onFrame: (frame: Frame) => void, onEnd: (end: ReadEnd) => void) => void
  /** A window buffer was given back: read on if a frame waits for one. */
  readonly wake: () => void
  /** Reading, not held back by this side: the peer is the one we wait for. */
  readonly waitingOnPeer: () => boolean
  /** Bytes received so far on this socket. */
  readonly bytes: () => number
}

export interface FrameReaderOptions {
  /**
   * Where a window frame's body of `length` bytes goes (its first `length` bytes), or
   * undefined while the consumer has no buffer free (reading stops until `wake`).
   * Default: a fresh buffer per frame.
   */
  readonly windowBody?: (length: number) => Buffer | undefined
}

interface Reading {
  readonly reader: FrameReader
  /** Bytes received in a buffer of the caller's (copied into the parser's targets). */
  readonly feed: (chunk: Buffer) => boolean
  /** Bytes received in place: `n` bytes at the start of the last `target()`. */
  readonly landed: (n: number) => boolean
  readonly target: () => Buffer | undefined
  readonly attach: (socket: net.Socket, pause: () => void) => void
}

const reading = (accept: ReadonlyArray<FrameName>, options: FrameReaderOptions): Reading => {
  const parser = makeFrameParser(accept, options.windowBody)
  const queue: Array<Frame> = []
  let socket: net.Socket | undefined
  let pauseSocket = () => {}
  let end: ReadEnd | undefined
  let endSaid = false
  let onFrame: ((frame: Frame) => void) | undefined
  let onEnd: ((end: ReadEnd) => void) | undefined
  let closeReason = "closed by the peer"
  let bytes = 0
  let held = false
  let stash: Buffer | undefined
  let wakeNext: (() => void) | undefined

  const poke = () => {
    if (onEnd !== undefined) {
      if (end !== undefined && !endSaid && queue.length === 0) {
        endSaid = true
        onEnd(end)
      }
      return
    }
    const w = wakeNext
    wakeNext = undefined
    w?.()
  }
  const fail = (reason: string) => {
    end ??= { _tag: "Bad", reason }
    held = true
    pauseSocket()
    poke()
    return false
  }
  // A step of the parser: a frame goes to the consumer, a bad stream ends reading.
  const step = (r: ReturnType<typeof parser.advance>): boolean => {
    if (r === undefined) return true
    if ("_tag" in r) return fail(r.reason)
    if (onFrame !== undefined) onFrame(r)
    else {
      queue.push(r)
      poke()
    }
    return end === undefined
  }
  // Whether to read on: a place for the next bytes, and room in the queue.
  const room = (): boolean => end === undefined && (onFrame !== undefined || queue.length < READ_AHEAD) && parser.target() !== undefined
  const after = (): boolean => {
    if (end !== undefined) return false
    if (room()) return true
    held = true
    return false
  }
  const copyIn = (chunk: Buffer): boolean => {
    let at = 0
    while (at < chunk.length) {
      const t = parser.target()
      if (t === undefined) {
        if (end !== undefined) return false
        const rest = chunk.subarray(at)
        const had = stash?.length ?? 0
        if (had + rest.length > STASH_MAX) return fail("no buffer for a window frame")
        stash = stash === undefined ? Buffer.from(rest) : Buffer.concat([stash, rest])
        return true
      }
      const k = Math.min(t.length, chunk.length - at)
      chunk.copy(t, 0, at, at + k)
      at += k
      if (!step(parser.advance(k))) return false
    }
    return true
  }
  const drainStash = (): boolean => {
    if (stash === undefined || parser.target() === undefined) return true
    const s = stash
    stash = undefined
    return copyIn(s)
  }
  const feed = (chunk: Buffer): boolean => {
    if (end !== undefined) return false
    bytes += chunk.length
    return copyIn(chunk) && after()
  }
  const landed = (n: number): boolean => {
    if (end !== undefined) return false
    bytes += n
    return step(parser.advance(n)) && after()
  }
  const wake = () => {
    if (!held || end !== undefined) return
    if (!drainStash() || !room()) return
    held = false
    socket?.resume()
  }

  const next = Effect.async<Frame, ReadEnd>((resume) => {
    const attempt = (): boolean => {
      const f = queue.shift()
      if (f !== undefined) {
        wake()
        resume(Effect.succeed(f))
        return true
      }
      if (end !== undefined) {
        resume(Effect.fail(end))
        return true
      }
      return false
    }
    if (attempt()) return
    wake()
    const again = () => {
      if (!attempt()) wakeNext = again
    }
    wakeNext = again
    return Effect.sync(() => {
      wakeNext = undefined
    })
  })

  const reader: FrameReader = {
    next,
    follow: (frame, done) => {
      onFrame = frame
      onEnd = done
      for (let f = queue.shift(); f !== undefined; f = queue.shift()) frame(f)
      poke()
      wake()
    },
    wake,
    waitingOnPeer: () => end === undefined && !held,
    bytes: () => bytes
  }
  return {
    reader,
    feed,
    landed,
    target: parser.target,
    attach: (s, pause) => {
      socket = s
      pauseSocket = pause
      s.on("error", (e) => {
        closeReason = e.message
      })
      s.on("close", () => {
        end ??= { _tag: "Closed", message: closeReason }
        poke()
      })
    }
  }
}

/** A reader of `socket`'s "data" events (each chunk copied into the frame it belongs to). */
export const frameReader = (socket: net.Socket, accept: ReadonlyArray<FrameName>, options: FrameReaderOptions = {}): FrameReader => {
  const r = reading(accept, options)
  r.attach(socket, () => socket.pause())
  socket.on("data", (chunk: Buffer) => {
    if (!r.feed(chunk)) socket.pause()
  })
  return r.reader
}

/**
 * A reader for a socket to be made with the returned `onread` option (`net.createConnection`),
 * reading each frame's header and body straight into place (see the module comment); call
 * `attach` with the socket once it exists. Bytes read before are not lost: they wait for it.
 */
export const frameSocket = (accept: ReadonlyArray<FrameName>, options: FrameReaderOptions = {}) => {
  const r = reading(accept, options)
  // Where a read lands when the parser has no place for it yet (see STASH_MAX).
  const parking = Buffer.alloc(1)
  let last: Buffer | undefined
  return {
    onread: {
      buffer: (): Buffer => {
        last = r.target()
        return last ?? parking
      },
      // false: node stops reading (resumed by `wake`).
      callback: (n: number, buf: Uint8Array): boolean => (buf === last ? r.landed(n) : r.feed(Buffer.from(buf.buffer, buf.byteOffset, n)))
    },
    attach: (socket: net.Socket): FrameReader => {
      r.attach(socket, () => socket.pause())
      return r.reader
    }
  }
}

/** Writes `buffers` as one batch; succeeds once node handed them to the kernel. */
export const writeFrames = (socket: net.Socket, buffers: ReadonlyArray<Buffer>): Effect.Effect<void, ReadEnd> =>
  Effect.async<void, ReadEnd>((resume) => {
    if (socket.destroyed || !socket.writable) {
      resume(Effect.fail({ _tag: "Closed", message: "connection already closed" }))
      return
    }
    socket.cork()
    buffers.forEach((b, i) =>
      socket.write(
        b,
        i === buffers.length - 1
          ? (err) => resume(err ? Effect.fail({ _tag: "Closed", message: err.message }) : Effect.void)
          : undefined
      )
    )
    socket.uncork()
  })
