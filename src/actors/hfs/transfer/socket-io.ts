import { Effect } from "effect"
import type * as net from "node:net"
import { type Frame, type FrameName, makeDecoder, WINDOW_MAX_BODY } from "./frames.js"
import { sharedBuffer } from "./hash-pool.js"

// Frames in and out of one node:net socket, with bounded memory both ways: the reader stops
// reading (socket.pause) while READ_AHEAD decoded frames wait for the consumer, and a write
// completes only once node handed its bytes to the kernel, so a caller that waits for it
// before reusing its buffer never queues more than it wrote.

// Four 4 MiB windows: enough to keep both sides busy (bench: 2 → 4 here and in the source
// took a 204 MiB home from 1.46 s to 0.98 s), still a fixed bound per transfer.
const READ_AHEAD = 4

/** Why no further frame will come: unreadable bytes, or the connection ended. */
export type ReadEnd = { readonly _tag: "Bad"; readonly reason: string } | { readonly _tag: "Closed"; readonly message: string }

export interface FrameReader {
  readonly next: Effect.Effect<Frame, ReadEnd>
  /** Bytes received so far on this socket. */
  readonly bytes: () => number
  /** Gives a window frame's buffer back to the reader: the frame must not be used after. */
  readonly release: (frame: Frame) => void
}

export interface FrameReaderOptions {
  /**
   * Window frames are decoded into this many reused shared buffers (hash-pool.ts) that the
   * consumer gives back with `release`; the socket pauses while none is free, so a slow
   * consumer bounds memory to them. 0 (default): a fresh buffer per frame, nothing to release.
   */
  readonly windowBuffers?: number
  /**
   * How the socket's bytes reach the reader: by default its "data" events; a socket made
   * with `onread` (readInto below) hands them over itself.
   */
  readonly input?: (onChunk: (chunk: Buffer) => void) => void
}

/**
 * A socket option reading into one reused buffer (node's `onread`) instead of a fresh 64 KiB
 * allocation per read, and up to `size` bytes per read call; pass `attach` as the reader's
 * `input`. The reader's decoder copies every chunk out before the next read.
 */
export const readInto = (size: number) => {
  let sink: ((chunk: Buffer) => void) | undefined
  return {
    onread: {
      buffer: Buffer.allocUnsafe(size),
      callback: (n: number, buf: Uint8Array): boolean => {
        sink?.(Buffer.from(buf.buffer, buf.byteOffset, n))
        return true
      }
    },
    attach: (onChunk: (chunk: Buffer) => void) => {
      sink = onChunk
    }
  }
}

export const frameReader = (socket: net.Socket, accept: ReadonlyArray<FrameName>, options: FrameReaderOptions = {}): FrameReader => {
  const pool = Array.from({ length: options.windowBuffers ?? 0 }, () => sharedBuffer(WINDOW_MAX_BODY))
  const owned = new Set(pool.map((b) => b.buffer))
  const free = [...pool]
  const decoder = makeDecoder(accept, { windowBuffer: () => free.pop() })
  // Paused for want of room: too many decoded frames waiting, or no free window buffer.
  const full = () => queue.length >= READ_AHEAD || (pool.length > 0 && free.length === 0)
  const queue: Array<Frame> = []
  let end: ReadEnd | undefined
  let closeReason = "closed by the peer"
  let bytes = 0
  let wake: (() => void) | undefined
  const poke = () => {
    const w = wake
    wake = undefined
    w?.()
  }
  const input = options.input ?? ((onChunk) => socket.on("data", onChunk))
  input((chunk: Buffer) => {
    if (end !== undefined) return
    bytes += chunk.length
    const r = decoder.push(chunk)
    if (r._tag === "Left") {
      end = { _tag: "Bad", reason: r.left }
      socket.pause()
    } else {
      for (const f of r.right) queue.push(f)
      if (full()) socket.pause()
    }
    poke()
  })
  socket.on("error", (e) => {
    closeReason = e.message
  })
  socket.on("close", () => {
    end ??= { _tag: "Closed", message: closeReason }
    poke()
  })
  const next = Effect.async<Frame, ReadEnd>((resume) => {
    const attempt = (): boolean => {
      const f = queue.shift()
      if (f !== undefined) {
        if (!full() && end === undefined) socket.resume()
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
    // Nothing queued: read on even if every window buffer is held (the decoder then
    // allocates one), since the consumer waits for this frame.
    socket.resume()
    wake = () => {
      if (!attempt()) wake = wakeAgain
    }
    const wakeAgain = wake
    return Effect.sync(() => {
      wake = undefined
    })
  })
  const release = (frame: Frame) => {
    if (frame.type !== "window" || !owned.has(frame.payload.buffer)) return
    free.push(Buffer.from(frame.payload.buffer, 0, WINDOW_MAX_BODY))
    if (!full() && end === undefined) socket.resume()
  }
  return { next, bytes: () => bytes, release }
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
