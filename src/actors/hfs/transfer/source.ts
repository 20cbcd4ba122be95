import { Duration, Effect, Fiber, type Redacted } from "effect"
import * as fs from "node:fs"
import type * as net from "node:net"
import { LOGIN_PATTERN } from "../../../protocols/udb.js"
import * as timeauth from "../../../runtime/timeauth.js"
import { makeImageDigest, WINDOW } from "./digest.js"
import {
  BadFrame,
  SourceImageMissing,
  TransferAuthRefused,
  type TransferError,
  type TransferIoError,
  TransferTimeout
} from "./errors.js"
import { nextData, readRuns, windowRuns } from "./extents.js"
import { encodeEnd, encodeFail, encodeStart, encodeWindowHead, type Hello } from "./frames.js"
import { connectionEnded, errorCode, ioFailure, peerIdle } from "./peer-failures.js"
import { sharedBuffer, windowHashAsync } from "./hash-pool.js"
import { frameReader, writeFrames } from "./socket-io.js"
import { transferMessage } from "./token.js"

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

// Windows in flight per transfer (memory: SLOTS × 4 MiB).
const SLOTS = 4

const stream = (socket: net.Socket, hello: Hello, path: string, options: SourceOptions) =>
  Effect.gen(function* () {
    const { login, from } = hello
    const idle = Duration.decode(options.idleTimeout ?? "30 seconds")
    const write = (buffers: ReadonlyArray<Buffer>, phase: string) =>
      writeFrames(socket, buffers).pipe(Effect.mapError(connectionEnded(login, "destination")), peerIdle(login, "destination", phase, idle))
    const image = yield* openImage(login, path)
    const ioError = (op: string) => (err: unknown) => ioFailure(path, op, err)
    yield* write([encodeStart(image.size, image.allocated, from)], "start")
    const digest = makeImageDigest(image.size)
    // SLOTS shared buffers: the loop reads window k+1 while a hash thread hashes window k and
    // the kernel takes window k-1. Each window's step (wait for its hash, add it to D, send)
    // runs after the previous window's, so frames and D stay in window order.
    const buffers = Array.from({ length: SLOTS }, () => sharedBuffer(WINDOW))
    const steps: Array<Fiber.Fiber<void, TransferError> | undefined> = buffers.map(() => undefined)
    let previous: Fiber.Fiber<void, TransferError> | undefined
    let slot = 0
    let windows = 0
    let payloadBytes = 0
    let pos = nextData(image.fd, 0, image.size)
    while (typeof pos === "number" && pos < image.size) {
      const start = pos - (pos % WINDOW)
      const runs = windowRuns(image.fd, start, image.size)
      if (!Array.isArray(runs)) return yield* Effect.fail(ioError("lseek")(runs))
      const inFlight = steps[slot]
      if (inFlight !== undefined) yield* Fiber.join(inFlight)
      const buf = buffers[slot]!
      const n = yield* Effect.tryPromise({ try: () => readRuns(image.fd, runs, buf), catch: ioError("read") })
      const payload = buf.subarray(0, n)
      const hashed = Effect.tryPromise({ try: () => windowHashAsync(runs, payload), catch: ioError("hash") })
      // Windows before the resume offset are on the destination already: hashed for the
      // digest (which covers the whole image), not sent.
      const send = start >= from
      const after = previous
      const step: Effect.Effect<void, TransferError> = Effect.gen(function* () {
        const hash = yield* hashed
        if (after !== undefined) yield* Fiber.join(after)
        digest.add(start, hash)
        if (send) {
          yield* write([encodeWindowHead(start, hash, runs, n), payload], "window")
          options.onWindow?.(login, start)
        }
      })
      steps[slot] = previous = yield* Effect.fork(step)
      slot = (slot + 1) % SLOTS
      if (send) {
        windows++
        payloadBytes += n
      }
      pos = nextData(image.fd, start + WINDOW, image.size)
    }
    if (typeof pos !== "number") return yield* Effect.fail(ioError("lseek")(pos))
    if (previous !== undefined) yield* Fiber.join(previous)
    yield* write([encodeEnd(image.size, windows, digest.digest())], "end")
    return { login, from, windows, payloadBytes } satisfies SentHome
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
