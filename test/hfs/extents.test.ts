import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { createHash } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { type Chunk, CHUNK, forEachChunk, makeImageWriter } from "../../src/actors/hfs/extents.js"
import { mulberry32 } from "../support/random.js"
import { allocatedBytes, tempDir } from "./support/images.js"

// The migration data path on real sparse files: only data crosses, every chunk is verified,
// the copy reads the same as the source, holes stay holes.

const MiB = 1024 * 1024
const SEED = Number(process.env["HFS_EXTENTS_SEED"] ?? 20261205)

const scattered = async (file: string, size: number, seed: number) => {
  const rnd = mulberry32(seed)
  const f = await fs.open(file, "w")
  await f.truncate(size)
  let written = 0
  for (let i = 0; i < 60; i++) {
    const len = 4096 * (1 + Math.floor(rnd() * 64))
    const at = Math.floor((rnd() * (size - len)) / 4096) * 4096
    const data = Buffer.alloc(len)
    for (let j = 0; j < len; j += 4) data.writeUInt32LE(Math.floor(rnd() * 2 ** 32), j)
    await f.write(data, 0, len, at)
    written += len
  }
  // the last bytes of the image, a partial last chunk
  await f.write(Buffer.from("tail"), 0, 4, size - 4)
  await f.close()
  return written
}

const sha = async (file: string) => createHash("sha256").update(await fs.readFile(file)).digest("hex")

describe("image chunks (SEEK_DATA/SEEK_HOLE, per-chunk checksums)", () => {
  it.scoped(`a 256 MiB image with scattered data copies exactly, holes stay holes (seed ${SEED}, HFS_EXTENTS_SEED to replay)`, () =>
    Effect.gen(function* () {
      const dir = yield* Effect.acquireRelease(Effect.promise(() => tempDir("hfs-extents-")), (d) =>
        Effect.promise(() => fs.rm(d, { recursive: true, force: true }))
      )
      const source = path.join(dir, "alice.nbd")
      const size = 256 * MiB + 3 * 4096 // not a whole number of chunks
      yield* Effect.promise(() => scattered(source, size, SEED))
      const target = path.join(dir, "copy.nbd")
      const writer = yield* makeImageWriter(path.join(dir, ".copy.tmp"), target, size)
      let sent = 0
      let count = 0
      const { digest } = yield* forEachChunk(source, (c) => {
        sent += c.pieces.reduce((m, p) => m + p.data.length, 0)
        count++
        return writer.write(c)
      })
      const allocated = yield* Effect.promise(() => allocatedBytes(source))
      // only allocated data crosses: never more than what the source allocates
      expect(sent).toBeLessThanOrEqual(allocated)
      expect(count).toBeLessThan(Math.ceil(size / CHUNK))
      yield* writer.finish(digest)
      expect(yield* Effect.promise(() => sha(target))).toBe(yield* Effect.promise(() => sha(source)))
      expect((yield* Effect.promise(() => fs.stat(target))).size).toBe(size)
      expect(yield* Effect.promise(() => allocatedBytes(target))).toBeLessThanOrEqual(allocated + 64 * 1024)
    })
  )

  it.scoped("a corrupted chunk is refused and leaves nothing of itself; a wrong image digest commits nothing", () =>
    Effect.gen(function* () {
      const dir = yield* Effect.acquireRelease(Effect.promise(() => tempDir("hfs-extents-")), (d) =>
        Effect.promise(() => fs.rm(d, { recursive: true, force: true }))
      )
      const source = path.join(dir, "bob.nbd")
      const size = 32 * MiB
      yield* Effect.promise(() => scattered(source, size, SEED + 1))
      const chunks: Array<Chunk> = []
      // copies: a piece's buffer is only valid during the callback
      yield* forEachChunk(source, (c) =>
        Effect.sync(() => void chunks.push({ ...c, pieces: c.pieces.map((p) => ({ offset: p.offset, data: Buffer.from(p.data) })) }))
      )
      const target = path.join(dir, "copy.nbd")
      const temporary = path.join(dir, ".copy.tmp")
      const writer = yield* makeImageWriter(temporary, target, size)
      const first = chunks[0]!
      const piece = first.pieces[0]!
      const flipped = Buffer.from(piece.data)
      flipped[0] = flipped[0]! ^ 0xff
      const bad = { ...first, pieces: [{ offset: piece.offset, data: flipped }, ...first.pieces.slice(1)] }
      const e = yield* Effect.flip(writer.write(bad))
      expect(e).toMatchObject({ _tag: "ChecksumMismatch", index: first.index })
      expect(writer.verified().has(first.index)).toBe(false)
      // out-of-chunk pieces are refused too
      const stray = { ...first, pieces: [{ offset: (first.index + 1) * CHUNK, data: Buffer.from("x") }] }
      expect(yield* Effect.flip(writer.write(stray))).toMatchObject({ _tag: "ChecksumMismatch" })
      for (const c of chunks) yield* writer.write(c)
      const wrong = yield* Effect.flip(writer.finish("0".repeat(64)))
      expect(wrong).toMatchObject({ _tag: "ChecksumMismatch", index: -1 })
      expect(yield* Effect.promise(() => fs.access(target).then(() => true, () => false))).toBe(false)
      yield* writer.abort
      expect(yield* Effect.promise(() => fs.readdir(dir))).toEqual(["bob.nbd"])
    })
  )
})
