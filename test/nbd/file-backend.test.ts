import { it as effectIt } from "@effect/vitest"
import { Effect, Exit } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type ExportBackend, type Extent, isBackendFailure } from "../../src/nbd/backend.js"
import { nbdErrnoOf, openFileBackend, openFileBackendPromise } from "../../src/nbd/file-backend.js"
import * as libc from "../../src/nbd/libc.js"

const KiB = 1024
const MiB = 1024 * KiB

let dir: string
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "prolo-file-backend-"))
})
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true })
})

let seq = 0
// A sparse file of `size` bytes with `data` written at the given offsets.
const sparseFile = (size: number, data: ReadonlyArray<readonly [number, Buffer]> = []): string => {
  const p = path.join(dir, `img-${seq++}.img`)
  const fd = fs.openSync(p, "w")
  fs.ftruncateSync(fd, size)
  for (const [off, buf] of data) fs.writeSync(fd, buf, 0, buf.length, off)
  fs.fsyncSync(fd)
  fs.closeSync(fd)
  return p
}
const pattern = (length: number, seed: number): Buffer => {
  const b = Buffer.alloc(length)
  for (let i = 0; i < length; i++) b[i] = (i * 31 + seed * 7 + 1) & 0xff || 1
  return b
}
const blocks = (p: string) => fs.statSync(p).blocks
const readBack = async (b: ExportBackend, offset: number, length: number) => {
  const buf = Buffer.alloc(length, 0xee)
  await b.read(buf, length, offset)
  return buf
}
const isZero = (b: Buffer) => b.every((x) => x === 0)
const errnoOf = async (p: Promise<unknown>): Promise<string> => {
  try {
    await p
  } catch (err) {
    if (isBackendFailure(err)) return err.nbdErrno
    throw err
  }
  throw new Error("expected the operation to fail")
}
const withBackend = async <A>(p: string, readOnly: boolean, f: (b: ExportBackend) => Promise<A>): Promise<A> => {
  const b = await openFileBackendPromise(p, { readOnly })
  try {
    return await f(b)
  } finally {
    await b.close()
  }
}

describe("file backend: read and write", () => {
  it("round-trips 512 B and 1 KiB aligned sub-4K I/O, odd I/O, and reads holes as zeroes", async () => {
    const p = sparseFile(4 * MiB)
    const shadow = Buffer.alloc(4 * MiB)
    await withBackend(p, false, async (b) => {
      expect(b.size).toBe(4 * MiB)
      expect(b.multiConn).toBe(true)
      const ios: Array<[number, number]> = [
        [512, 512],
        [3 * KiB, KiB],
        [4 * KiB + 512, 512],
        [MiB - 512, KiB], // crosses a 4 KiB and a MiB boundary
        [2 * MiB + 7, 4099], // unaligned
        [4 * MiB - 512, 512] // last sector
      ]
      for (const [i, [off, len]] of ios.entries()) {
        const data = pattern(len, i)
        await b.write(data, len, off, i % 2 === 0)
        data.copy(shadow, off)
      }
      await b.flush()
      for (const [off, len] of ios) expect((await readBack(b, off, len)).equals(shadow.subarray(off, off + len))).toBe(true)
      // A sub-sector read inside a written sector, and a hole that was never written.
      expect((await readBack(b, 3 * KiB + 100, 200)).equals(shadow.subarray(3 * KiB + 100, 3 * KiB + 300))).toBe(true)
      expect(isZero(await readBack(b, 3 * MiB, 64 * KiB))).toBe(true)
      // Only `length` bytes of a larger pooled buffer are written and read.
      const pooled = Buffer.alloc(64 * KiB, 0xab)
      await b.write(pooled, 512, 8 * KiB, false)
      const into = Buffer.alloc(64 * KiB, 0xcd)
      await b.read(into, 1024, 8 * KiB)
      expect(into.subarray(0, 512).every((x) => x === 0xab)).toBe(true)
      expect(isZero(into.subarray(512, 1024))).toBe(true)
      expect(into.subarray(1024).every((x) => x === 0xcd)).toBe(true)
    })
    expect(fs.readFileSync(p).equals(Buffer.concat([shadow.subarray(0, 8 * KiB), Buffer.alloc(512, 0xab), shadow.subarray(8 * KiB + 512)]))).toBe(true)
  })

  it("round-trips large writes (the threadpool path, above 1 MiB) and reads", async () => {
    const p = sparseFile(16 * MiB)
    const big = pattern(5 * MiB + 512, 7)
    await withBackend(p, false, async (b) => {
      await Promise.all([b.write(big, big.length, 3 * MiB, true), b.write(pattern(MiB, 8), MiB, 0, false)])
      expect((await readBack(b, 3 * MiB, big.length)).equals(big)).toBe(true)
      expect((await readBack(b, 0, MiB)).equals(pattern(MiB, 8))).toBe(true)
    })
  })

  it("reads zeroes past the end of a file that shrank after it was opened", async () => {
    const p = sparseFile(MiB, [[MiB - 4 * KiB, pattern(4 * KiB, 1)]])
    await withBackend(p, false, async (b) => {
      fs.truncateSync(p, MiB - 2 * KiB)
      const got = await readBack(b, MiB - 4 * KiB, 4 * KiB)
      expect(got.subarray(0, 2 * KiB).equals(pattern(4 * KiB, 1).subarray(0, 2 * KiB))).toBe(true)
      expect(isZero(got.subarray(2 * KiB))).toBe(true)
    })
  })

  it("coalesces concurrent flushes and every one of them resolves", async () => {
    const p = sparseFile(MiB)
    await withBackend(p, false, async (b) => {
      await Promise.all(Array.from({ length: 16 }, (_, i) => b.write(pattern(4 * KiB, i), 4 * KiB, i * 4 * KiB, i % 3 === 0).then(() => b.flush())))
    })
    expect(fs.readFileSync(p).subarray(15 * 4 * KiB, 16 * 4 * KiB).equals(pattern(4 * KiB, 15))).toBe(true)
  })
})

describe("file backend: reads from the page cache, the rest from the disk", () => {
  // posix_fadvise: DONTNEED drops clean pages from the page cache (whole folios only, so
  // whole files here); RANDOM turns readahead off for reads through that fd.
  const evict = (fd: number) => libc.fadvise(fd, 0, 0, 4)
  const noReadahead = (fd: number) => libc.fadvise(fd, 0, 0, 1)

  it("a read that is not (or only partly) cached is completed on the threadpool, byte-exact", async () => {
    const content = pattern(512 * KiB, 9)
    const p = sparseFile(MiB, [[0, content]])
    const fd = fs.openSync(p, "r")
    try {
      await noReadahead(fd)
      await withBackend(p, true, async (b) => {
        const probe = Buffer.alloc(512 * KiB)
        // Nothing cached: RWF_NOWAIT answers EAGAIN, the whole read goes to the threadpool.
        await evict(fd)
        const none = libc.preadNoWait(fd, probe, 0, probe.length, 0)
        expect(typeof none === "number" ? none : none.errno).toBe(libc.EAGAIN)
        expect((await readBack(b, 4096, 300 * KiB)).equals(content.subarray(4096, 4096 + 300 * KiB))).toBe(true)
        // Only the head cached: RWF_NOWAIT stops short at the first page it would wait for.
        await evict(fd)
        fs.readSync(fd, probe, 0, 16 * KiB, 0)
        const short = libc.preadNoWait(fd, probe, 0, probe.length, 0)
        expect(typeof short === "number" && short > 0 && short < probe.length ? "short" : short).toBe("short")
        expect((await readBack(b, 0, 512 * KiB)).equals(content)).toBe(true)
      })
    } finally {
      fs.closeSync(fd)
    }
  })

  it("preadNoWait refuses a range outside its buffer instead of letting the kernel write there", () => {
    const fd = fs.openSync(sparseFile(4096), "r")
    try {
      expect(() => libc.preadNoWait(fd, Buffer.alloc(16), 0, 17, 0)).toThrow(RangeError)
      expect(() => libc.preadNoWait(fd, Buffer.alloc(16), 8, 4, 0)).toThrow(RangeError)
      expect(() => libc.preadNoWait(fd, Buffer.alloc(16), -1, 4, 0)).toThrow(RangeError)
    } finally {
      fs.closeSync(fd)
    }
  })
})

describe("file backend: trim and zero", () => {
  it("trim punches a hole: st_blocks shrinks and the range reads zeroes", async () => {
    const p = sparseFile(8 * MiB, [[0, pattern(8 * MiB, 3)]])
    const before = blocks(p)
    expect(before).toBeGreaterThanOrEqual((8 * MiB) / 512)
    await withBackend(p, false, async (b) => {
      await b.trim(2 * MiB, 4 * MiB, true)
      expect(blocks(p)).toBeLessThanOrEqual(before - (4 * MiB) / 512)
      expect(isZero(await readBack(b, 2 * MiB, 4 * MiB))).toBe(true)
      expect((await readBack(b, 2 * MiB - 4 * KiB, 4 * KiB)).equals(pattern(8 * MiB, 3).subarray(2 * MiB - 4 * KiB, 2 * MiB))).toBe(true)
      expect((await readBack(b, 6 * MiB, 4 * KiB)).equals(pattern(8 * MiB, 3).subarray(6 * MiB, 6 * MiB + 4 * KiB))).toBe(true)
    })
    expect(fs.statSync(p).size).toBe(8 * MiB)
  })

  it("zero with mayTrim punches a hole; without it (NO_HOLE) keeps the blocks; both read zeroes, neighbours intact", async () => {
    const src = pattern(8 * MiB, 5)
    const p = sparseFile(8 * MiB, [[0, src]])
    const before = blocks(p)
    await withBackend(p, false, async (b) => {
      await b.zero(MiB, 2 * MiB, { mayTrim: true, fast: false, fua: false })
      const afterTrim = blocks(p)
      expect(afterTrim).toBeLessThanOrEqual(before - (2 * MiB) / 512)
      // Unaligned NO_HOLE zero: allocation stays (ZERO_RANGE keeps unwritten extents).
      await b.zero(4 * MiB + 100, 2 * MiB, { mayTrim: false, fast: false, fua: true })
      // (An extent split may cost the filesystem an extent-tree block, hence "about".)
      expect(blocks(p)).toBeGreaterThanOrEqual(afterTrim)
      expect(blocks(p)).toBeLessThanOrEqual(afterTrim + 64)
      const all = await readBack(b, 0, 8 * MiB)
      expect(isZero(all.subarray(MiB, 3 * MiB))).toBe(true)
      expect(isZero(all.subarray(4 * MiB + 100, 6 * MiB + 100))).toBe(true)
      expect(all.subarray(0, MiB).equals(src.subarray(0, MiB))).toBe(true)
      expect(all.subarray(3 * MiB, 4 * MiB + 100).equals(src.subarray(3 * MiB, 4 * MiB + 100))).toBe(true)
      expect(all.subarray(6 * MiB + 100).equals(src.subarray(6 * MiB + 100))).toBe(true)
      // A fast zero succeeds here: the filesystem zeroes ranges without writing them.
      await b.zero(7 * MiB, 4 * KiB, { mayTrim: false, fast: true, fua: false })
      expect(isZero(await readBack(b, 7 * MiB, 4 * KiB))).toBe(true)
    })
  })

  it("zeroes a range larger than any payload (80 MiB) completely", async () => {
    const marks = [0, 40 * MiB, 70 * MiB, 80 * MiB - 512]
    const p = sparseFile(96 * MiB, [...marks.map((m) => [m, pattern(512, 9)] as const), [80 * MiB, pattern(512, 10)]])
    await withBackend(p, false, async (b) => {
      await b.zero(0, 80 * MiB, { mayTrim: false, fast: false, fua: false })
      for (const m of marks) expect(isZero(await readBack(b, m, 512))).toBe(true)
      expect((await readBack(b, 80 * MiB, 512)).equals(pattern(512, 10))).toBe(true)
    })
  })

  it("cache (WILLNEED) succeeds and changes nothing", async () => {
    const p = sparseFile(MiB, [[0, pattern(MiB, 4)]])
    await withBackend(p, true, async (b) => {
      await b.cache(0, MiB)
      expect((await readBack(b, 0, MiB)).equals(pattern(MiB, 4))).toBe(true)
    })
  })
})

describe("file backend: extents (SEEK_DATA / SEEK_HOLE)", () => {
  const data = (length: number): Extent => ({ length, hole: false, zero: false })
  const hole = (length: number): Extent => ({ length, hole: true, zero: true })

  it("reports the known layout of a sparse file; the last extent runs to its real end", async () => {
    // hole [0,1M) data [1M,2M) hole [2M,5M) data [5M,5M+4K) hole [..,15M) data [15M,16M) hole [16M,20M)
    const p = sparseFile(20 * MiB, [
      [MiB, pattern(MiB, 1)],
      [5 * MiB, pattern(4 * KiB, 2)],
      [15 * MiB, pattern(MiB, 3)]
    ])
    await withBackend(p, true, async (b) => {
      expect(await b.extents(0, 20 * MiB)).toEqual([
        hole(MiB),
        data(MiB),
        hole(3 * MiB),
        data(4 * KiB),
        hole(10 * MiB - 4 * KiB),
        data(MiB),
        hole(4 * MiB)
      ])
      // Starting inside a hole and ending inside data: the data extent is reported whole.
      expect(await b.extents(MiB / 2, MiB)).toEqual([hole(MiB / 2), data(MiB)])
      // Starting inside data; a range entirely inside the trailing hole.
      expect(await b.extents(5 * MiB + 512, 8 * KiB)).toEqual([data(4 * KiB - 512), hole(10 * MiB - 4 * KiB)])
      expect(await b.extents(3 * MiB, 512)).toEqual([hole(2 * MiB)])
      expect(await b.extents(18 * MiB, 2 * MiB)).toEqual([hole(2 * MiB)])
      expect(await b.extents(0, 0)).toEqual([])
      // Cross-check against the raw syscalls with the backend's own file.
      const fd = fs.openSync(p, "r")
      try {
        expect(libc.lseek(fd, 0, libc.SEEK_DATA)).toBe(MiB)
        expect(libc.lseek(fd, MiB, libc.SEEK_HOLE)).toBe(2 * MiB)
        const beyond = libc.lseek(fd, 16 * MiB, libc.SEEK_DATA)
        expect(typeof beyond === "number" ? beyond : beyond.code).toBe("ENXIO")
      } finally {
        fs.closeSync(fd)
      }
    })
  })

  it("sees writes, trims and zeroes immediately (the image stays sparse)", async () => {
    const p = sparseFile(4 * MiB)
    await withBackend(p, false, async (b) => {
      expect(await b.extents(0, 4 * MiB)).toEqual([hole(4 * MiB)])
      await b.write(pattern(MiB, 1), MiB, MiB, false)
      expect(await b.extents(0, 4 * MiB)).toEqual([hole(MiB), data(MiB), hole(2 * MiB)])
      await b.trim(MiB, 512 * KiB, false)
      expect(await b.extents(0, 4 * MiB)).toEqual([hole(MiB + 512 * KiB), data(512 * KiB), hole(2 * MiB)])
      await b.zero(MiB + 512 * KiB, 512 * KiB, { mayTrim: true, fast: false, fua: false })
      expect(await b.extents(0, 4 * MiB)).toEqual([hole(4 * MiB)])
    })
  })
})

describe("file backend: errors", () => {
  it("a read-only export rejects write, trim and zero with EPERM and leaves the file alone", async () => {
    const p = sparseFile(MiB, [[0, pattern(4 * KiB, 1)]])
    const before = fs.readFileSync(p)
    await withBackend(p, true, async (b) => {
      expect(b.readOnly).toBe(true)
      expect([b.canTrim, b.canZero, b.canFastZero]).toEqual([false, false, false])
      expect(await errnoOf(b.write(pattern(512, 2), 512, 0, false))).toBe("EPERM")
      expect(await errnoOf(b.trim(0, 4 * KiB, false))).toBe("EPERM")
      expect(await errnoOf(b.zero(0, 4 * KiB, { mayTrim: true, fast: false, fua: false }))).toBe("EPERM")
      expect((await readBack(b, 0, 4 * KiB)).equals(pattern(4 * KiB, 1))).toBe(true)
      await b.flush()
    })
    expect(fs.readFileSync(p).equals(before)).toBe(true)
  })

  it("out-of-range requests fail with EINVAL (read, trim, cache, extents) or ENOSPC (write, zero) and change nothing", async () => {
    const p = sparseFile(MiB, [[MiB - 512, pattern(512, 1)]])
    await withBackend(p, false, async (b) => {
      const buf = Buffer.alloc(4 * KiB)
      expect(await errnoOf(b.read(buf, 1024, MiB - 512))).toBe("EINVAL")
      expect(await errnoOf(b.trim(MiB - 512, 1024, false))).toBe("EINVAL")
      expect(await errnoOf(b.cache(MiB, 1))).toBe("EINVAL")
      expect(await errnoOf(b.extents(MiB, 512))).toBe("EINVAL")
      expect(await errnoOf(b.write(buf, 1024, MiB - 512, false))).toBe("ENOSPC")
      expect(await errnoOf(b.zero(MiB - 512, 1024, { mayTrim: true, fast: false, fua: false }))).toBe("ENOSPC")
      expect(await errnoOf(b.read(buf, 512, -512))).toBe("EINVAL")
      expect(await errnoOf(b.read(buf, 512, 2 ** 64 - 512))).toBe("EINVAL")
      expect((await readBack(b, MiB - 512, 512)).equals(pattern(512, 1))).toBe(true)
    })
    expect(fs.statSync(p).size).toBe(MiB)
  })

  it("maps host errnos to the NBD errors the spec allows (EIO as the catch-all)", () => {
    expect(["ENOSPC", "EDQUOT", "EFBIG"].map(nbdErrnoOf)).toEqual(["ENOSPC", "ENOSPC", "ENOSPC"])
    expect(["EPERM", "EACCES", "EROFS"].map(nbdErrnoOf)).toEqual(["EPERM", "EPERM", "EPERM"])
    expect(nbdErrnoOf("EINVAL")).toBe("EINVAL")
    // ENOTSUP is only for FAST_ZERO; a host EOPNOTSUPP elsewhere is an I/O error.
    expect(["EIO", "EBADF", "EOPNOTSUPP", "ENOMEM", undefined].map(nbdErrnoOf)).toEqual(["EIO", "EIO", "EIO", "EIO", "EIO"])
    const e = libc.syscallError("fallocate", os.constants.errno.EDQUOT)
    expect([e.code, nbdErrnoOf(e.code)]).toEqual(["EDQUOT", "ENOSPC"])
  })

  it("a closed export answers EIO and never touches the fd again", async () => {
    const p = sparseFile(MiB)
    const b = await openFileBackendPromise(p, { readOnly: false })
    await b.close()
    await b.close()
    expect(await errnoOf(b.write(Buffer.alloc(512), 512, 0, false))).toBe("EIO")
    expect(await errnoOf(b.read(Buffer.alloc(512), 512, 0))).toBe("EIO")
    expect(await errnoOf(b.flush())).toBe("EIO")
  })

  effectIt.scoped("openFileBackend fails with a specific ExportOpenError, and closes the file with its scope", () =>
    Effect.gen(function* () {
      const missing = yield* Effect.exit(Effect.scoped(openFileBackend(path.join(dir, "nope.img"), { readOnly: true })))
      expect(Exit.isFailure(missing) && missing.cause._tag === "Fail" ? [missing.cause.error._tag, missing.cause.error.reason] : missing).toEqual([
        "ExportOpenError",
        "ENOENT"
      ])
      const notFile = yield* Effect.exit(Effect.scoped(openFileBackend(dir, { readOnly: true })))
      expect(Exit.isFailure(notFile) && notFile.cause._tag === "Fail" ? notFile.cause.error.reason : notFile).toBe("ENOTREG")

      const p = sparseFile(MiB)
      const fdsBefore = fs.readdirSync("/proc/self/fd").length
      const b = yield* Effect.scoped(
        Effect.gen(function* () {
          const b = yield* openFileBackend(p, { readOnly: false })
          expect(fs.readdirSync("/proc/self/fd").length).toBe(fdsBefore + 1)
          yield* Effect.promise(() => b.write(pattern(512, 1), 512, 0, true))
          return b
        })
      )
      expect(fs.readdirSync("/proc/self/fd").length).toBe(fdsBefore)
      expect(yield* Effect.promise(() => errnoOf(b.read(Buffer.alloc(512), 512, 0)))).toBe("EIO")
      expect(fs.readFileSync(p).subarray(0, 512).equals(pattern(512, 1))).toBe(true)
    })
  )
})
