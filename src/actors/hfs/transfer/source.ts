import { Duration, Effect, type Redacted } from "effect"
import * as fs from "node:fs"
import type * as net from "node:net"
import { LOGIN_PATTERN } from "../../../protocols/udb.js"
import * as timeauth from "../../../runtime/timeauth.js"
import type * as libc from "../../../nbd/libc.js"
import { HASH_BYTES, makeImageDigest, WINDOW } from "./digest.js"
import {
  BadFrame,
  SourceImageMissing,
  TransferAuthRefused,
  type TransferError,
  type TransferIoError,
  TransferTimeout
} from "./errors.js"
import { nextData, windowRuns } from "./extents.js"
import { encodeEnd, encodeFail, encodeStart, type Hello } from "./frames.js"
import { leaseSlots, makeRequests, type Pending, threadFailure } from "./hash-pool.js"
import { connectionEnded, errorCode, idleTimeout, idleWatch, ioFailure, peerIdle } from "./peer-failures.js"
import { frameReader, writeFrames } from "./socket-io.js"
import { Op, Status } from "./thread-protocol.js"
import { transferMessage } from "./token.js"
import { BODY_HASH_AT, frameStart, HEADER, SLOT_PAYLOAD_AT, SOURCE_SLOT_BYTES, writeWindowHead } from "./window-frame.js"

// The source side (HFS A) of one connection: check the request, then stream the allocated
// windows of the image from the resume offset, each with its checksum, then the whole-image
// digest. The caller's `resolve` hands out the image only when that home is fenced at that
// generation on this HFS (no writer left): this side never changes the image.

export interface SourceOptions {
  readonly secret: Redacted.Redacted<string>
  /** The fenced image of `login` at `generation`, or why it cannot be sent. */
  readonly resolve: (request: { readonly login: string; readonly generation: number }) => Effect.Effect<string, SourceImageMissing>
  /** Bound on the request's arrival and on each write the receiver does not take. Default 30 s. */
  readonly idleTimeout?: Duration.DurationInput
  /** Called after each window is handed to the socket (progress, tests). */
  readonly onWindow?: (login: string, offset: number) => void
}

export interface SentHome {
  readonly login: string
  readonly from: number
  readonly windows: number
  readonly payloadBytes: number
}

const openImage = (login: string, path: string) =>
  Effect.acquireRelease(
    Effect.async<{ fd: number; size: number; allocated: number }, SourceImageMissing | TransferIoError>((resume) => {
      fs.open(path, "r", (err, fd) => {
        if (err) {
          return resume(
            Effect.fail(
              errorCode(err) === "ENOENT"
                ? new SourceImageMissing({ login, message: `the image of ${login} is missing on the source (${path})` })
                : ioFailure(path, "open", err)
            )
          )
        }
        fs.fstat(fd, (err2, st) => {
          if (err2 || !st.isFile()) {
            fs.close(fd, () => {})
            return resume(Effect.fail(new SourceImageMissing({ login, message: `the image of ${login} is not a regular file (${path})` })))
          }
          resume(Effect.succeed({ fd, size: st.size, allocated: st.blocks * 512 }))
        })
      })
    }),
    ({ fd }) => Effect.async<void>((resume) => fs.close(fd, () => resume(Effect.void)))
  )

// Windows in flight per transfer (memory: SLOTS × ~4.01 MiB).
const SLOTS = 4

interface Sent {
  readonly windows: number
  readonly payloadBytes: number
  readonly digest: Buffer
}

/**
 * The windows of the image from 0, on the loop's callbacks (no effect per window): the loop
 * finds a window's runs (lseek) and writes its frame head into a free slot; a hash thread
 * reads the runs into the slot and writes W into the head (hash-pool.ts); in window order,
 * the loop adds W to D and writes the frame (one buffer, no copy), and the slot is free again
 * once node handed it to the kernel. Windows before `from` are hashed for D, not sent.
 */
const sendWindows = (socket: net.Socket, fd: number, size: number, from: number, path: string, login: string, options: SourceOptions) => {
  const slots = leaseSlots(SLOTS, SOURCE_SLOT_BYTES)
  const free = slots.buffers.map((_, i) => i)
  const requests = makeRequests()
  let written = 0
  let writing = 0
  const pump = Effect.async<Sent, TransferError>((resume) => {
    const digest = makeImageDigest(size)
    const order: Array<Pending & { readonly slot: number; readonly start: number; readonly at: number; readonly n: number }> = []
    let done = false
    let windows = 0
    let payloadBytes = 0
    let pos: number | libc.SyscallError = nextData(fd, 0, size)
    const finish = (r: Effect.Effect<Sent, TransferError>) => {
      if (done) return
      done = true
      resume(r)
    }
    const fill = () => {
      while (!done && free.length > 0 && typeof pos === "number" && pos < size) {
        const start = pos - (pos % WINDOW)
        const runs = windowRuns(fd, start, size)
        if (!Array.isArray(runs)) return finish(Effect.fail(ioFailure(path, "lseek", runs)))
        const slot = free.pop()!
        let n = 0
        for (const run of runs) n += run.length
        const at = frameStart(runs.length)
        writeWindowHead(slots.buffers[slot]!, at, start, runs, n)
        const w = { slot, start, at, n, status: -1 } as (typeof order)[number]
        order.push(w)
        requests.send([Op.readHash, slots.ids[slot]!, fd, at], w, send)
        pos = nextData(fd, start + WINDOW, size)
      }
      if (typeof pos !== "number") return finish(Effect.fail(ioFailure(path, "lseek", pos)))
      if (pos >= size && order.length === 0 && writing === 0) finish(Effect.succeed({ windows, payloadBytes, digest: digest.digest() }))
    }
    const send = () => {
      for (let w = order[0]; !done && w !== undefined && w.status >= 0; w = order[0]) {
        order.shift()
        if (w.status !== Status.ok) return finish(Effect.fail(ioFailure(path, "read", threadFailure(w.code, w.message))))
        const buf = slots.buffers[w.slot]!
        const hashAt = w.at + HEADER + BODY_HASH_AT
        digest.add(w.start, buf.subarray(hashAt, hashAt + HASH_BYTES))
        if (w.start < from) {
          free.push(w.slot)
          continue
        }
        windows++
        payloadBytes += w.n
        writing++
        socket.write(buf.subarray(w.at, SLOT_PAYLOAD_AT + w.n), (err) => {
          writing--
          if (err) return finish(Effect.fail(connectionEnded(login, "destination")({ _tag: "Closed", message: err.message })))
          written++
          free.push(w.slot)
          options.onWindow?.(login, w.start)
          fill()
        })
      }
      fill()
    }
    fill()
    return Effect.sync(() => {
      done = true
    })
  })
  const waiting = () => writing > 0
  // In-flight requests read the image into the slots: both stay until they are done.
  return { pump, progress: () => written, waiting, release: Effect.zipRight(requests.settled, Effect.sync(() => slots.release(writing === 0))) }
}

const stream = (socket: net.Socket, hello: Hello, path: string, options: SourceOptions) =>
  Effect.gen(function* () {
    const { login, from } = hello
    const idle = Duration.decode(options.idleTimeout ?? "30 seconds")
    const write = (buffers: ReadonlyArray<Buffer>, phase: string) =>
      writeFrames(socket, buffers).pipe(Effect.mapError(connectionEnded(login, "destination")), peerIdle(login, "destination", phase, idle))
    const image = yield* openImage(login, path)
    yield* write([encodeStart(image.size, image.allocated, from)], "start")
    const windows = yield* Effect.acquireRelease(
      Effect.sync(() => sendWindows(socket, image.fd, image.size, from, path, login, options)),
      (w) => w.release
    )
    const sent = yield* Effect.raceFirst(
      windows.pump,
      idleWatch(idle, windows.progress, windows.waiting, () => idleTimeout(login, "destination", "window", idle))
    )
    yield* write([encodeEnd(image.size, sent.windows, sent.digest)], "end")
    return { login, from, windows: sent.windows, payloadBytes: sent.payloadBytes } satisfies SentHome
  }).pipe(Effect.scoped)

/** Serves one accepted connection to its end; the socket is closed when this completes. */
export const serveConnection = (socket: net.Socket, options: SourceOptions): Effect.Effect<SentHome, TransferError> => {
  const idle = Duration.decode(options.idleTimeout ?? "30 seconds")
  let login = ""
  const session = Effect.gen(function* () {
    const reader = frameReader(socket, ["hello"])
    const first = yield* reader.next.pipe(
      Effect.mapError(connectionEnded("", "destination")),
      Effect.timeoutFail({
        duration: idle,
        onTimeout: () => new TransferTimeout({ login: "?", phase: "hello", seconds: Duration.toSeconds(idle), message: `no transfer request within ${Duration.format(idle)}` })
      })
    )
    if (first.type !== "hello") return yield* Effect.fail(new BadFrame({ reason: `unexpected ${first.type} frame`, message: "a transfer starts with a hello frame" }))
    const hello = first.hello
    login = hello.login
    const message = transferMessage(hello.login, hello.generation, socket.localAddress ?? "")
    yield* timeauth.check(hello.token, options.secret, message).pipe(
      Effect.mapError((r) => new TransferAuthRefused({ login: hello.login, reason: r.reason, message: `transfer of ${hello.login} refused: token ${r.reason}` }))
    )
    // The caller's resolve builds a path from it: nothing but a UDB login gets that far.
    if (!LOGIN_PATTERN.test(hello.login)) {
      return yield* Effect.fail(new BadFrame({ reason: "invalid login", message: `transfer request for an invalid login ${JSON.stringify(hello.login)}` }))
    }
    if (hello.from % WINDOW !== 0) {
      return yield* Effect.fail(new BadFrame({ reason: `resume offset ${hello.from} is not a multiple of ${WINDOW}`, message: `transfer of ${hello.login}: bad resume offset ${hello.from}` }))
    }
    const path = yield* options.resolve({ login: hello.login, generation: hello.generation })
    return yield* stream(socket, hello, path, options)
  })
  return session.pipe(
    // The destination learns why (unless it is the one that went away); nothing else is said.
    Effect.tapError((e) =>
      e._tag === "TransferInterrupted"
        ? Effect.void
        : writeFrames(socket, [encodeFail({ tag: e._tag, message: e.message })]).pipe(Effect.ignore, Effect.timeout(idle), Effect.ignore)
    ),
    Effect.ensuring(Effect.sync(() => socket.end())),
    Effect.annotateLogs({ transfer: "source", login })
  )
}
