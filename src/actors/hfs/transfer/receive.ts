import { Duration, Effect, Fiber, type Redacted } from "effect"
import * as fs from "node:fs"
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
import { warmHashPool, windowHashAsync } from "./hash-pool.js"
import { encodeHeader, encodeRecords, JOURNAL_HEADER, readJournal, resumeOffset, type VerifiedWindow } from "./journal.js"
import { connectionEnded, errorCode, ioFailure, peerIdle } from "./peer-failures.js"
import { frameReader, readInto, writeFrames } from "./socket-io.js"
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
  Effect.tryPromise({
    try: f,
    catch: (err) => {
      const code = errorCode(err)
      return code === "ENOSPC" || code === "EDQUOT"
        ? new DiskFull({ path: file, neededBytes: 0, availableBytes: 0, message: `${op} of ${file}: no space left (${code})` })
        : ioFailure(file, op, err)
    }
  })

const fsyncDir = (dir: string) =>
  io(dir, "fsync directory", async () => {
    const h = await fsp.open(dir, "r")
    try {
      await h.sync()
    } finally {
      await h.close()
    }
  })

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

const connect = (host: string, port: number, timeout: Duration.Duration, onread: ReturnType<typeof readInto>["onread"]) =>
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

// Window frames decoded ahead (socket-io's READ_AHEAD) plus those being hashed and written:
// the reader's reused buffers, about 4 MiB each.
const HASHING = 2
const WINDOW_BUFFERS = 7
// Bytes per read call (node's default is 64 KiB, freshly allocated each time).
const READ_BYTES = 1024 * 1024

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

    const input = readInto(READ_BYTES)
    const socket = yield* connect(options.host, options.port, Duration.decode(options.connectTimeout ?? "10 seconds"), input.onread)
    const reader = frameReader(socket, ["start", "window", "end", "fail"], { windowBuffers: WINDOW_BUFFERS, input: input.attach })
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
    if (journal === undefined) {
      yield* io(paths.image, "truncate", () => image.truncate(size))
      yield* io(paths.journal, "write", () => journalFile.write(encodeHeader(size, login, generation), 0, JOURNAL_HEADER, 0))
      yield* io(paths.journal, "fsync", () => journalFile.datasync())
      yield* io(paths.image, "fsync", () => image.sync())
      yield* fsyncDir(paths.incoming)
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
    let flushing: Fiber.Fiber<void, TransferError> | undefined
    const checkpoint = (wait: boolean) =>
      Effect.gen(function* () {
        if (flushing !== undefined) yield* Fiber.join(flushing)
        flushing = undefined
        if (pending.length === 0) return
        const records = encodeRecords(login, generation, pending)
        pending = []
        pendingBytes = 0
        const at = journalEnd
        journalEnd += records.length
        const flush = Effect.gen(function* () {
          yield* io(paths.image, "fdatasync", () => image.datasync())
          yield* io(paths.journal, "write", () => journalFile.write(records, 0, records.length, at))
          yield* io(paths.journal, "fdatasync", () => journalFile.datasync())
        })
        if (wait) yield* flush
        else flushing = yield* Effect.fork(flush)
      })

    // A window is hashed on a hash thread (hash-pool.ts) while the loop writes the window
    // before it and decodes the one after: at most HASHING windows wait for their hash.
    type WindowFrame = Extract<Frame, { type: "window" }>
    const hashing: Array<{ readonly frame: WindowFrame; readonly hash: Effect.Effect<Buffer, TransferError> }> = []
    const land = (frame: WindowFrame, hash: Buffer) =>
      Effect.gen(function* () {
        if (!hash.equals(frame.hash)) {
          return yield* Effect.fail(
            new ChecksumMismatch({ login, offset: frame.offset, message: `transfer of ${login}: checksum mismatch in the window at offset ${frame.offset}: refused, nothing of it written` })
          )
        }
        // Synchronous pwrite into the page cache (as the NBD file backend does for its
        // writes): a threadpool round trip per run cost more than the copy.
        yield* io(paths.image, "write", async () => {
          let at = 0
          for (const run of frame.runs) {
            for (let done = 0; done < run.length; ) done += fs.writeSync(image.fd, frame.payload, at + done, run.length - done, run.offset + done)
            at += run.length
          }
        })
        const w = { offset: frame.offset, hash }
        verified.push(w)
        pending.push(w)
        pendingBytes += frame.payload.length
        reader.release(frame)
        if (pendingBytes >= checkpointBytes) yield* checkpoint(false)
        options.onWindow?.(frame.offset)
      })
    const landOldest = Effect.suspend(() => {
      const oldest = hashing.shift()!
      return Effect.flatMap(oldest.hash, (hash) => land(oldest.frame, hash))
    })

    const stream = Effect.gen(function* () {
      let after = from
      let windows = 0
      for (;;) {
        const frame = yield* next("window")
        if (frame.type === "window") {
          const problem = windowProblem(frame, size, after)
          if (problem !== undefined) return yield* Effect.fail(new BadFrame({ reason: problem, message: `transfer of ${login}: bad window frame: ${problem}` }))
          after = frame.offset + WINDOW
          windows++
          // Started now (the promise never rejects: a dead hash thread is an error value).
          const started = windowHashAsync(frame.runs, frame.payload).then(
            (h) => ({ h }),
            (e: unknown) => ({ e })
          )
          const hash = Effect.flatMap(Effect.promise(() => started), (r) => ("h" in r ? Effect.succeed(r.h) : Effect.fail(ioFailure(paths.image, "hash", r.e))))
          hashing.push({ frame, hash })
          if (hashing.length >= HASHING) yield* landOldest
          continue
        }
        while (hashing.length > 0) yield* landOldest
        if (frame.type !== "end") return yield* Effect.fail(new BadFrame({ reason: `unexpected ${frame.type} frame`, message: `transfer of ${login}: ${frame.type} frame in the middle of the stream` }))
        if (frame.size !== size || frame.windows !== windows) {
          return yield* Effect.fail(
            new BadFrame({ reason: "end does not match", message: `transfer of ${login}: the source ended with ${frame.windows} windows of a ${frame.size}-byte image, received ${windows} of ${size}` })
          )
        }
        yield* checkpoint(true)
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
      }
    })
    // A failure (damaged window, lost source) still lets the checkpoint in flight land: the
    // next attempt resumes after it.
    return yield* stream.pipe(Effect.ensuring(Effect.suspend(() => (flushing === undefined ? Effect.void : Fiber.await(flushing)))))
  }).pipe(Effect.scoped, Effect.annotateLogs({ transfer: "destination", login: options.login }))

