import { Duration, Effect, type Redacted } from "effect"
import * as fsp from "node:fs/promises"
import * as net from "node:net"
import * as path from "node:path"
import * as libc from "../../../nbd/libc.js"
import { LOGIN_PATTERN } from "../../../protocols/udb.js"
import * as timeauth from "../../../runtime/timeauth.js"
import { makeImageDigest, WINDOW } from "./digest.js"
import {
  BadFrame,
  ChecksumMismatch,
  DigestMismatch,
  DiskFull,
  InvalidTransfer,
  PeerUnreachable,
  SourceChanged,
  SourceImageMissing,
  TransferAuthRefused,
  type TransferError,
  TransferInterrupted,
  TransferIoError
} from "./errors.js"
import { encodeHello, type Fail, type Frame, windowProblem } from "./frames.js"
import { leaseSlots, makeRequests, type Pending, threadFailure, warmHashPool } from "./hash-pool.js"
import { encodeHeader, encodeRecords, JOURNAL_HEADER, readJournal, resumeOffset, type VerifiedWindow } from "./journal.js"
import { connectionEnded, fileFailure, idleTimeout, idleWatch, peerIdle } from "./peer-failures.js"
import { frameSocket, writeFrames } from "./socket-io.js"
import { Op, Status } from "./thread-protocol.js"
import { WINDOW_MAX_BODY } from "./window-frame.js"
import { transferMessage } from "./token.js"

// The destination side (HFS B): pull a home from the source into a partial sparse image
// under `<dir>/.incoming/`, verify each window before writing it, journal the verified
// windows durably, and only once the whole-image digest matches, fsync and rename it onto
// `finalPath` (then fsync the directory). The location row is the caller's to commit after.

export interface ReceiveOptions {
  readonly host: string
  readonly port: number
  readonly secret: Redacted.Redacted<string>
  readonly login: string
  /** The generation the source fenced the home at (the token is bound to it). */
  readonly generation: number
  /** The destination's image directory (`<export_base>/hfs<id>`); partial copies go in `.incoming/`. */
  readonly dir: string
  /** Where the verified image is renamed to (replacing whatever is there: the row says it is stale). */
  readonly finalPath: string
  /** Default 10 s. */
  readonly connectTimeout?: Duration.DurationInput
  /** Bound on each wait for the next frame. Default 30 s. */
  readonly idleTimeout?: Duration.DurationInput
  /** Verified bytes between two durable checkpoints of the journal. Default 32 MiB. */
  readonly checkpointBytes?: number
  /** Called after each window is verified and written (progress, tests). */
  readonly onWindow?: (offset: number) => void
}

export interface ReceivedHome {
  /** The image size. */
  readonly bytes: number
  /** Allocated bytes of the destination image. */
  readonly allocatedBytes: number
  /** Bytes that crossed the wire in this attempt (both ways). */
  readonly wireBytes: number
  /** The whole-image digest (hex), see digest.ts. */
  readonly digest: string
  /** Where this attempt started (0, or just after the last window verified by an earlier one). */
  readonly resumedFrom: number
}

/** The partial copy's files for `login` at `generation`. */
export const incomingPaths = (dir: string, login: string, generation: number) => {
  const incoming = path.join(dir, ".incoming")
  return {
    incoming,
    image: path.join(incoming, `${login}.${generation}.img`),
    journal: path.join(incoming, `${login}.${generation}.journal`)
  }
}

/** The offset the next attempt for `login` at `generation` would resume from (0: none). */
export const readProgress = async (dir: string, login: string, generation: number): Promise<number> => {
  const p = incomingPaths(dir, login, generation)
  const j = await readJournal(p.journal, login, generation)
  return j === undefined ? 0 : resumeOffset(j)
}

const io = <A>(file: string, op: string, f: () => Promise<A>): Effect.Effect<A, TransferIoError | DiskFull> =>
  Effect.tryPromise({ try: f, catch: (err) => fileFailure(file, op, err) })

const syncDir = async (dir: string): Promise<void> => {
  const h = await fsp.open(dir, "r")
  try {
    await h.sync()
  } finally {
    await h.close()
  }
}

const fsyncDir = (dir: string) => io(dir, "fsync directory", () => syncDir(dir))

/** `p`, failing with the transfer error of `op` on `file`. */
const fileOp = <A>(file: string, op: string, p: Promise<A>): Promise<A> => p.catch((e: unknown) => Promise.reject(fileFailure(file, op, e)))

const removeQuietly = (...files: ReadonlyArray<string>) => Effect.promise(() => Promise.all(files.map((f) => fsp.rm(f, { force: true }))))

/** Partial copies of `login` at other generations: the source moved on, they can never be resumed. */
const dropOtherGenerations = (incoming: string, login: string, generation: number) =>
  Effect.promise(async () => {
    const names = await fsp.readdir(incoming).catch(() => [] as Array<string>)
    const mine = new RegExp(`^${login}\\.([0-9]+)\\.(img|journal)$`)
    await Promise.all(
      names.filter((n) => mine.exec(n)?.[1] !== undefined && mine.exec(n)?.[1] !== String(generation)).map((n) => fsp.rm(path.join(incoming, n), { force: true }))
    )
  })

const remoteFailure = (login: string, fail: Fail): TransferError => {
  switch (fail.tag) {
    case "TransferAuthRefused":
      return new TransferAuthRefused({ login, reason: "refused by the source", message: `source: ${fail.message}` })
    case "SourceImageMissing":
      return new SourceImageMissing({ login, message: `source: ${fail.message}` })
    case "BadFrame":
      return new BadFrame({ reason: "refused by the source", message: `source: ${fail.message}` })
    default:
      return new TransferInterrupted({ login, message: `source failed (${fail.tag}): ${fail.message}` })
  }
}

const connect = (host: string, port: number, timeout: Duration.Duration, onread: ReturnType<typeof frameSocket>["onread"]) =>
  Effect.acquireRelease(
    Effect.async<net.Socket, PeerUnreachable>((resume) => {
      const socket = net.createConnection({ host, port, noDelay: true, onread })
      const refused = (e: Error) => {
        socket.destroy()
        resume(Effect.fail(new PeerUnreachable({ host, port, message: `cannot reach the source HFS at ${host}:${port}: ${e.message}` })))
      }
      socket.once("error", refused)
      socket.once("connect", () => {
        socket.off("error", refused)
        socket.on("error", () => {})
        resume(Effect.succeed(socket))
      })
      return Effect.sync(() => socket.destroy())
    }).pipe(
      Effect.timeoutFail({
        duration: timeout,
        onTimeout: () => new PeerUnreachable({ host, port, message: `no answer from the source HFS at ${host}:${port} within ${Duration.format(timeout)}` })
      })
    ),
    (socket) => Effect.sync(() => socket.destroy())
  )

// Window frames in flight (being received, verified and written on the hash threads, or
// waiting to be landed in order): the reader's slots, one window frame body each (~4.02 MiB).
const SLOTS = 6

const openFile = (file: string, flags: string) =>
  Effect.acquireRelease(io(file, "open", () => fsp.open(file, flags, 0o600)), (h) => Effect.promise(() => h.close().catch(() => undefined)))

/** Receives `login`'s home from the source HFS at `host:port` (see the module comment). */
export const receiveHome = (options: ReceiveOptions): Effect.Effect<ReceivedHome, TransferError> =>
  Effect.gen(function* () {
    const { login, generation } = options
    if (!LOGIN_PATTERN.test(login)) return yield* Effect.fail(new InvalidTransfer({ field: "login", message: `invalid login ${JSON.stringify(login.slice(0, 40))}` }))
    if (!Number.isSafeInteger(generation) || generation < 0) {
      return yield* Effect.fail(new InvalidTransfer({ field: "generation", message: `invalid generation ${generation}` }))
    }
    yield* Effect.sync(warmHashPool)
    const idle = Duration.decode(options.idleTimeout ?? "30 seconds")
    const checkpointBytes = options.checkpointBytes ?? 32 * 1024 * 1024
    const paths = incomingPaths(options.dir, login, generation)
    yield* io(paths.incoming, "mkdir", () => fsp.mkdir(paths.incoming, { recursive: true, mode: 0o700 }))
    yield* dropOtherGenerations(paths.incoming, login, generation)

    // Resume only from a journal of this very copy, beside its partial image.
    let journal = yield* Effect.promise(() => readJournal(paths.journal, login, generation))
    const imageExists = yield* Effect.promise(() => fsp.stat(paths.image).then((s) => s.isFile(), () => false))
    if (journal !== undefined && !imageExists) journal = undefined
    if (journal === undefined) yield* removeQuietly(paths.image, paths.journal)
    const from = journal === undefined ? 0 : resumeOffset(journal)

    // The slots are given back after the socket is closed (scope order) and the threads are
    // done with them (the `ensuring` at the end).
    const slots = yield* Effect.acquireRelease(
      Effect.sync(() => leaseSlots(SLOTS, WINDOW_MAX_BODY)),
      (s) => Effect.sync(s.release)
    )
    const slotOf = new Map(slots.buffers.map((b, i) => [b.buffer, i] as const))
    const freeSlots = slots.buffers.map((_, i) => i)
    const input = frameSocket(["start", "window", "end", "fail"], {
      windowBody: () => {
        const i = freeSlots.pop()
        return i === undefined ? undefined : slots.buffers[i]
      }
    })
    const socket = yield* connect(options.host, options.port, Duration.decode(options.connectTimeout ?? "10 seconds"), input.onread)
    const reader = input.attach(socket)
    let sentBytes = 0
    const next = (phase: string): Effect.Effect<Frame, TransferError> =>
      reader.next.pipe(
        Effect.mapError(connectionEnded(login, "source")),
        peerIdle(login, "source", phase, idle),
        Effect.flatMap((f) => (f.type === "fail" ? Effect.fail(remoteFailure(login, f.fail)) : Effect.succeed(f)))
      )

    const token = yield* timeauth.generate(options.secret, transferMessage(login, generation, socket.remoteAddress ?? options.host))
    const hello = encodeHello({ login, generation, from, token })
    sentBytes += hello.length
    yield* writeFrames(socket, [hello]).pipe(Effect.mapError(connectionEnded(login, "source")))

    const start = yield* next("start")
    if (start.type !== "start") return yield* Effect.fail(new BadFrame({ reason: `unexpected ${start.type} frame`, message: `transfer of ${login}: the source did not start with a start frame` }))
    const size = start.size
    if (start.from !== from) return yield* Effect.fail(new BadFrame({ reason: `start from ${start.from}`, message: `transfer of ${login}: asked to resume at ${from}, the source starts at ${start.from}` }))
    if (journal !== undefined && journal.size !== size) {
      yield* removeQuietly(paths.image, paths.journal)
      return yield* Effect.fail(
        new SourceChanged({ login, message: `transfer of ${login}: the source image is ${size} bytes, the partial copy was of ${journal.size}: discarded, start over` })
      )
    }

    // Room for what is still to come (the source's allocated bytes, less what is here).
    const have = journal === undefined ? 0 : yield* io(paths.image, "stat", () => fsp.stat(paths.image).then((s) => s.blocks * 512))
    const free = yield* io(paths.incoming, "statfs", () => fsp.statfs(paths.incoming).then((s) => s.bavail * s.bsize))
    const needed = Math.max(0, start.allocated - have)
    if (needed > free) {
      return yield* Effect.fail(
        new DiskFull({ path: paths.incoming, neededBytes: needed, availableBytes: free, message: `transfer of ${login}: ${needed} bytes needed in ${paths.incoming}, ${free} free` })
      )
    }

    const image = yield* openFile(paths.image, journal === undefined ? "w+" : "r+")
    const journalFile = yield* openFile(paths.journal, journal === undefined ? "w+" : "r+")
    let journalEnd: number
    // A new copy's files are made durable (the journal's header, the image's size, both
    // names) beside the first windows: only the first checkpoint's records need them.
    let prepared: Promise<void> = Promise.resolve()
    if (journal === undefined) {
      yield* io(paths.image, "truncate", () => image.truncate(size))
      yield* io(paths.journal, "write", () => journalFile.write(encodeHeader(size, login, generation), 0, JOURNAL_HEADER, 0))
      prepared = (async () => {
        await fileOp(paths.journal, "fsync", journalFile.datasync())
        await fileOp(paths.image, "fsync", image.sync())
        await fileOp(paths.incoming, "fsync directory", syncDir(paths.incoming))
      })()
      // Awaited by the first checkpoint, the end, and the finalizer.
      prepared.catch(() => undefined)
      journalEnd = JOURNAL_HEADER
    } else {
      // Whatever an earlier attempt wrote past its last record is unverified: back to holes.
      if (from < size) {
        yield* io(paths.image, "punch hole", () => libc.fallocate(image.fd, libc.FALLOC_FL_PUNCH_HOLE | libc.FALLOC_FL_KEEP_SIZE, from, size - from))
      }
      yield* io(paths.journal, "truncate", () => journalFile.truncate(journal!.validLength))
      journalEnd = journal.validLength
    }

    const verified: Array<VerifiedWindow> = journal === undefined ? [] : [...journal.windows]
    let pending: Array<VerifiedWindow> = []
    let pendingBytes = 0
    // A checkpoint makes the windows verified so far durable: fdatasync of the image (which
    // also covers anything written after the snapshot), then their records, then fdatasync
    // of the journal. It runs beside the reception of the next windows, so that the disk
    // flush overlaps the network; the next checkpoint waits for it (records stay in order).
    let flushing: Promise<void> | undefined
    const flush = async (records: Buffer, at: number): Promise<void> => {
      await prepared
      await fileOp(paths.image, "fdatasync", image.datasync())
      await fileOp(paths.journal, "write", journalFile.write(records, 0, records.length, at))
      await fileOp(paths.journal, "fdatasync", journalFile.datasync())
    }
    const checkpoint = (): Promise<void> => {
      const records = encodeRecords(login, generation, pending)
      pending = []
      pendingBytes = 0
      const at = journalEnd
      journalEnd += records.length
      const p = flush(records, at)
      flushing = p
      return p
    }

    // Window frames, on the loop's callbacks (no effect per window): the reader reads each
    // body into a free slot; a hash thread computes its W, compares it with the frame's and
    // writes its runs only if they match (hash-pool.ts); windows are then landed in order
    // (records, onWindow, the slot given back), a checkpoint every checkpointBytes.
    type EndFrame = Extract<Frame, { type: "end" }>
    const requests = makeRequests()
    let landed = 0
    const windowsIn = Effect.async<{ readonly end: EndFrame; readonly windows: number }, TransferError>((resume) => {
      let done = false
      let after = from
      let windows = 0
      let end: EndFrame | undefined
      let checkpointing = false
      const order: Array<Pending & { readonly slot: number; readonly offset: number; readonly hash: Buffer; readonly bytes: number }> = []
      const fail = (e: TransferError) => {
        if (done) return
        done = true
        resume(Effect.fail(e))
      }
      const land = () => {
        while (!done) {
          if (pendingBytes >= checkpointBytes && pending.length > 0) {
            if (checkpointing) return
            checkpointing = true
            checkpoint().then(
              () => {
                checkpointing = false
                land()
              },
              fail
            )
          }
          const w = order[0]
          if (w === undefined || w.status < 0) break
          order.shift()
          if (w.status === Status.mismatch) {
            return fail(
              new ChecksumMismatch({ login, offset: w.offset, message: `transfer of ${login}: checksum mismatch in the window at offset ${w.offset}: refused, nothing of it written` })
            )
          }
          if (w.status !== Status.ok) return fail(fileFailure(paths.image, "write", threadFailure(w.code, w.message)))
          const v = { offset: w.offset, hash: Buffer.from(w.hash) }
          verified.push(v)
          pending.push(v)
          pendingBytes += w.bytes
          landed++
          freeSlots.push(w.slot)
          reader.wake()
          options.onWindow?.(w.offset)
        }
        if (!done && end !== undefined && order.length === 0) {
          done = true
          resume(Effect.succeed({ end, windows }))
        }
      }
      const onFrame = (frame: Frame) => {
        if (done) return
        if (frame.type === "window") {
          const problem = windowProblem(frame, size, after)
          const slot = slotOf.get(frame.payload.buffer)
          if (problem !== undefined) return fail(new BadFrame({ reason: problem, message: `transfer of ${login}: bad window frame: ${problem}` }))
          after = frame.offset + WINDOW
          windows++
          const w = { slot: slot!, offset: frame.offset, hash: frame.hash, bytes: frame.payload.length, status: -1 } as (typeof order)[number]
          order.push(w)
          requests.send([Op.verifyWrite, slots.ids[slot!]!, frame.payload.byteOffset + frame.payload.length, image.fd], w, land)
          return
        }
        if (frame.type === "fail") return fail(remoteFailure(login, frame.fail))
        if (frame.type !== "end") return fail(new BadFrame({ reason: `unexpected ${frame.type} frame`, message: `transfer of ${login}: ${frame.type} frame in the middle of the stream` }))
        end = frame
        land()
      }
      reader.follow(onFrame, (e) => {
        if (end === undefined) fail(connectionEnded(login, "source")(e))
      })
      return Effect.sync(() => {
        done = true
      })
    })
    // In-flight requests write into the image (and read the slots): both stay open until they are done.

    const stream = Effect.gen(function* () {
      const { end: frame, windows } = yield* Effect.raceFirst(
        windowsIn,
        idleWatch(idle, () => reader.bytes() + landed, reader.waitingOnPeer, () => idleTimeout(login, "source", "window", idle))
      )
      if (frame.size !== size || frame.windows !== windows) {
        return yield* Effect.fail(
          new BadFrame({ reason: "end does not match", message: `transfer of ${login}: the source ended with ${frame.windows} windows of a ${frame.size}-byte image, received ${windows} of ${size}` })
        )
      }
      yield* Effect.tryPromise({ try: () => prepared, catch: (e) => e as TransferError })
      if (flushing !== undefined) yield* Effect.tryPromise({ try: () => flushing!, catch: (e) => e as TransferError })
      if (pending.length > 0) yield* Effect.tryPromise({ try: checkpoint, catch: (e) => e as TransferError })
      const digest = makeImageDigest(size)
      for (const w of verified) digest.add(w.offset, w.hash)
      const actual = digest.digest()
      if (!actual.equals(frame.digest)) {
        yield* removeQuietly(paths.image, paths.journal)
        return yield* Effect.fail(
          new DigestMismatch({
            login,
            expected: frame.digest.toString("hex"),
            actual: actual.toString("hex"),
            message: `transfer of ${login}: whole-image digest mismatch: partial copy discarded, the source stays the home`
          })
        )
      }
      yield* io(paths.image, "fsync", () => image.sync())
      const allocatedBytes = yield* io(paths.image, "stat", () => image.stat().then((s) => s.blocks * 512))
      yield* io(options.finalPath, "rename", () => fsp.rename(paths.image, options.finalPath))
      yield* fsyncDir(path.dirname(options.finalPath))
      yield* removeQuietly(paths.journal)
      return {
        bytes: size,
        allocatedBytes,
        wireBytes: reader.bytes() + sentBytes,
        digest: actual.toString("hex"),
        resumedFrom: from
      } satisfies ReceivedHome
    })
    // A failure (damaged window, lost source) still lets the checkpoint in flight land: the
    // next attempt resumes after it. The threads finish their windows before the files close.
    return yield* stream.pipe(
      Effect.ensuring(
        Effect.zipRight(
          requests.settled,
          Effect.promise(async () => {
            await prepared.catch(() => undefined)
            await flushing?.catch(() => undefined)
          })
        )
      )
    )
  }).pipe(Effect.scoped, Effect.annotateLogs({ transfer: "destination", login: options.login }))
