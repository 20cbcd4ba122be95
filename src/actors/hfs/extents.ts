import { createHash } from "node:crypto"
import * as fs from "node:fs/promises"
import { Effect, Schema } from "effect"
import * as libc from "../../nbd/libc.js"

// The data path of a home migration (the next step; see README): an image is cut into
// fixed logical chunks of `CHUNK` bytes. A chunk's checksum is the SHA-256 of its logical
// content (holes read as zeroes), so it does not depend on how either file system allocated
// it; only the chunk's data ranges (SEEK_DATA/SEEK_HOLE) are read and sent, holes never cross
// the wire, and a chunk without data is not sent at all. The whole-image digest is the SHA-256
// of every chunk's checksum in order (a chunk never sent counts as the all-zero chunk's), so
// the receiver verifies it from what it wrote without reading its holes.

export const CHUNK = 4 * 1024 * 1024

export interface Piece {
  /** Offset in the image. */
  readonly offset: number
  readonly data: Buffer
}

export interface Chunk {
  readonly index: number
  /** The chunk's data ranges; everything else in the chunk reads as zeroes. */
  readonly pieces: ReadonlyArray<Piece>
  /** SHA-256 (hex) of the chunk's logical content. */
  readonly sha256: string
}

export class ChecksumMismatch extends Schema.TaggedError<ChecksumMismatch>()("ChecksumMismatch", {
  index: Schema.Number,
  message: Schema.String
}) {}

export class ExtentIoError extends Schema.TaggedError<ExtentIoError>()("ExtentIoError", {
  path: Schema.String,
  message: Schema.String
}) {}

const zeroHashes = new Map<number, string>()
/** Checksum of `length` zero bytes (cached: one per chunk size seen). */
export const zeroChunkHash = (length: number): string => {
  let h = zeroHashes.get(length)
  if (h === undefined) {
    h = createHash("sha256").update(Buffer.alloc(length)).digest("hex")
    zeroHashes.set(length, h)
  }
  return h
}

export const chunkLength = (size: number, index: number): number => Math.min(CHUNK, size - index * CHUNK)

/** Data ranges [start, end) of the open file `fd` of `size` bytes, in order. */
export const dataRanges = (fd: number, size: number, path: string): Array<readonly [number, number]> => {
  const ranges: Array<readonly [number, number]> = []
  let pos = 0
  while (pos < size) {
    const data = libc.lseek(fd, pos, libc.SEEK_DATA)
    if (typeof data !== "number") {
      if (data.code === "ENXIO") break // no data after pos
      if (data.code === "EINVAL" || data.code === "EOPNOTSUPP") return [[pos, size]] // no SEEK_DATA: all data
      throw new Error(`${path}: lseek(SEEK_DATA): ${data.message}`)
    }
    const hole = libc.lseek(fd, data, libc.SEEK_HOLE)
    if (typeof hole !== "number") throw new Error(`${path}: lseek(SEEK_HOLE): ${hole.message}`)
    ranges.push([data, Math.min(hole, size)])
    pos = hole
  }
  return ranges
}

const errorText = (e: unknown) => (e instanceof Error ? e.message : String(e))

/**
 * Reads the chunks of `path` that hold data, one at a time (memory: one chunk), each with its
 * logical checksum, and hands each to `onChunk`; returns the size and the whole-image digest.
 */
export const forEachChunk = <E>(
  path: string,
  onChunk: (chunk: Chunk, size: number) => Effect.Effect<void, E>
): Effect.Effect<{ readonly size: number; readonly digest: string }, ExtentIoError | E> =>
  Effect.acquireUseRelease(
    Effect.tryPromise({
      try: () => fs.open(path, "r"),
      catch: (e) => new ExtentIoError({ path, message: `cannot open ${path}: ${errorText(e)}` })
    }),
    (file) =>
      Effect.gen(function* () {
        const io = (e: unknown) => new ExtentIoError({ path, message: `cannot read the chunks of ${path}: ${errorText(e)}` })
        const { size } = yield* Effect.tryPromise({ try: () => file.stat(), catch: io })
        const ranges = yield* Effect.try({ try: () => dataRanges(file.fd, size, path), catch: io })
        const byChunk = new Map<number, Array<readonly [number, number]>>()
        for (const [start, end] of ranges) {
          for (let at = start; at < end; ) {
            const index = Math.floor(at / CHUNK)
            const stop = Math.min(end, (index + 1) * CHUNK)
            const list = byChunk.get(index) ?? []
            list.push([at, stop])
            byChunk.set(index, list)
            at = stop
          }
        }
        const sent = new Map<number, string>()
        for (const [index, parts] of [...byChunk].sort((a, b) => a[0] - b[0])) {
          const length = chunkLength(size, index)
          const logical = Buffer.alloc(length)
          const pieces = yield* Effect.tryPromise({
            try: async () => {
              const out: Array<Piece> = []
              for (const [start, end] of parts) {
                const data = logical.subarray(start - index * CHUNK, end - index * CHUNK)
                const { bytesRead } = await file.read(data, 0, data.length, start)
                if (bytesRead !== data.length) throw new Error(`short read at ${start}`)
                out.push({ offset: start, data })
              }
              return out
            },
            catch: io
          })
          const sha256 = createHash("sha256").update(logical).digest("hex")
          sent.set(index, sha256)
          yield* onChunk({ index, pieces, sha256 }, size)
        }
        return { size, digest: imageDigest(size, sent) }
      }),
    (file) => Effect.promise(() => file.close())
  )

/** The whole-image digest from the checksums of the chunks that hold data. */
export const imageDigest = (size: number, sent: ReadonlyMap<number, string>): string => {
  const h = createHash("sha256")
  const count = Math.ceil(size / CHUNK)
  for (let i = 0; i < count; i++) h.update(sent.get(i) ?? zeroChunkHash(chunkLength(size, i)))
  return h.digest("hex")
}

/**
 * The receiving side: a sparse temporary file of `size`; each chunk is written, read back
 * (holes as zeroes) and checked against its checksum before it counts. `finish` checks the
 * whole-image digest, fsyncs and renames to `target`; `abort` removes the temporary.
 */
export const makeImageWriter = (temporary: string, target: string, size: number) =>
  Effect.gen(function* () {
    const file = yield* Effect.tryPromise({
      try: async () => {
        const f = await fs.open(temporary, "wx+", 0o600)
        await f.truncate(size)
        return f
      },
      catch: (e) => new ExtentIoError({ path: temporary, message: `cannot create ${temporary}: ${errorText(e)}` })
    })
    const verified = new Map<number, string>()
    const io = (what: string) => (e: unknown) => new ExtentIoError({ path: temporary, message: `${what}: ${errorText(e)}` })

    const write = (chunk: Chunk): Effect.Effect<void, ChecksumMismatch | ExtentIoError> =>
      Effect.gen(function* () {
        const length = chunkLength(size, chunk.index)
        const base = chunk.index * CHUNK
        if (!(length > 0) || chunk.pieces.some((p) => p.offset < base || p.offset + p.data.length > base + length)) {
          return yield* new ChecksumMismatch({ index: chunk.index, message: `chunk ${chunk.index}: pieces outside the chunk` })
        }
        const logical = yield* Effect.tryPromise({
          try: async () => {
            // a resent chunk replaces the previous content wholly
            await libc.fallocate(file.fd, libc.FALLOC_FL_PUNCH_HOLE | libc.FALLOC_FL_KEEP_SIZE, base, length)
            for (const p of chunk.pieces) await file.write(p.data, 0, p.data.length, p.offset)
            const back = Buffer.alloc(length)
            await file.read(back, 0, length, base)
            return back
          },
          catch: io(`writing chunk ${chunk.index}`)
        })
        const got = createHash("sha256").update(logical).digest("hex")
        if (got !== chunk.sha256) {
          yield* Effect.tryPromise({
            try: () => libc.fallocate(file.fd, libc.FALLOC_FL_PUNCH_HOLE | libc.FALLOC_FL_KEEP_SIZE, base, length),
            catch: io(`discarding chunk ${chunk.index}`)
          })
          verified.delete(chunk.index)
          return yield* new ChecksumMismatch({ index: chunk.index, message: `chunk ${chunk.index}: checksum ${got.slice(0, 12)}… is not the sender's ${chunk.sha256.slice(0, 12)}…` })
        }
        verified.set(chunk.index, got)
      })

    const finish = (digest: string): Effect.Effect<void, ChecksumMismatch | ExtentIoError> =>
      Effect.gen(function* () {
        const mine = imageDigest(size, verified)
        if (mine !== digest) return yield* new ChecksumMismatch({ index: -1, message: `image digest ${mine.slice(0, 12)}… is not the sender's ${digest.slice(0, 12)}…` })
        yield* Effect.tryPromise({
          try: async () => {
            await file.sync()
            await file.close()
            await fs.rename(temporary, target)
          },
          catch: io("committing the image")
        })
      })

    const abort = Effect.promise(async () => {
      await file.close().catch(() => undefined)
      await fs.rm(temporary, { force: true })
    })
    return { write, finish, abort, verified: (): ReadonlySet<number> => new Set(verified.keys()) }
  })
