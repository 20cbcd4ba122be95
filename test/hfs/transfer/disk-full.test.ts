import { expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as net from "node:net"
import * as path from "node:path"
import { WINDOW, windowHash } from "../../../src/actors/hfs/transfer/digest.js"
import { encodeEnd, encodeStart, encodeWindowHead } from "../../../src/actors/hfs/transfer/frames.js"
import { imageDigestPromise } from "../../../src/actors/hfs/transfer/image-digest.js"
import { writeScatteredImage } from "./images.js"
import { failureOf, MiB, receive, run, source, workDir } from "./support.js"

// The destination's image directory on a small file system of its own (a loop mount): a home
// larger than its free space is refused before anything is written, with the figures; one
// whose source understates it fails at the write that finds no room (on a hash thread).

/** A 32 MiB ext4 mounted for the scope; its mount point. */
const smallFs = (w: ReturnType<typeof workDir>) =>
  Effect.gen(function* () {
    const backing = path.join(w.root, "small.fs")
    fs.closeSync(fs.openSync(backing, "w"))
    fs.truncateSync(backing, 32 * MiB)
    const mk = yield* Effect.promise(() => run("mke2fs", ["-q", "-F", "-t", "ext4", backing]))
    expect(mk.code, mk.out).toBe(0)
    const mnt = path.join(w.root, "b-small")
    fs.mkdirSync(mnt)
    yield* Effect.acquireRelease(
      Effect.promise(async () => {
        const m = await run("mount", ["-o", "loop", backing, mnt])
        if (m.code !== 0) throw new Error(`mount -o loop: ${m.out}`)
      }),
      () => Effect.promise(() => run("umount", [mnt]))
    )
    return mnt
  })

it.live(
  "a home that does not fit on the destination is DiskFull; nothing is written, the source is untouched",
  () =>
    Effect.gen(function* () {
      const w = workDir("full")
      yield* Effect.addFinalizer(() => Effect.sync(w.remove))
      const mnt = yield* smallFs(w)
      const src = path.join(w.a, "lena.nbd")
      writeScatteredImage(src, 128 * MiB, 48 * MiB, 11)
      const before = yield* Effect.promise(() => imageDigestPromise(src))
      const srv = yield* source(src)
      const e = failureOf(yield* Effect.exit(receive(srv.port, mnt, "lena", 2)))
      expect(e._tag).toBe("DiskFull")
      if (e._tag === "DiskFull") {
        expect(e.neededBytes).toBeGreaterThan(e.availableBytes)
        expect(e.message).toMatch(/bytes needed/)
      }
      expect(fs.existsSync(path.join(mnt, "lena.nbd"))).toBe(false)
      expect(fs.readdirSync(path.join(mnt, ".incoming"))).toEqual([])
      expect(yield* Effect.promise(() => imageDigestPromise(src))).toBe(before)
    }).pipe(Effect.scoped),
  60_000
)

it.live(
  "a source that understates its allocated bytes: the write that finds no room is DiskFull (ENOSPC from a hash thread), nothing reaches the final path",
  () =>
    Effect.gen(function* () {
      const w = workDir("full-late")
      yield* Effect.addFinalizer(() => Effect.sync(w.remove))
      const mnt = yield* smallFs(w)
      // 12 full windows (48 MiB) of an image said to allocate nothing: each frame verifies.
      const windows = Array.from({ length: 12 }, (_, k) => {
        const payload = crypto.randomBytes(WINDOW)
        const runs = [{ offset: k * WINDOW, length: WINDOW }]
        return Buffer.concat([encodeWindowHead(k * WINDOW, windowHash(runs, payload), runs, WINDOW), payload])
      })
      const stream = Buffer.concat([encodeStart(64 * MiB, 0, 0), ...windows, encodeEnd(64 * MiB, 12, Buffer.alloc(32))])
      const sockets = new Set<net.Socket>()
      const liar = yield* Effect.acquireRelease(
        Effect.async<net.Server>((resume) => {
          const server = net.createServer((s) => {
            sockets.add(s)
            s.on("error", () => {})
            s.once("data", () => s.write(stream))
          })
          server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
        }),
        (server) =>
          Effect.async<void>((resume) => {
            for (const s of sockets) s.destroy()
            server.close(() => resume(Effect.void))
          })
      )
      const e = failureOf(yield* Effect.exit(receive((liar.address() as net.AddressInfo).port, mnt, "mona", 1)))
      expect(e._tag).toBe("DiskFull")
      expect(e.message).toMatch(/write of .*mona\.1\.img: no space left \(ENOSPC\)/)
      expect(fs.existsSync(path.join(mnt, "mona.nbd"))).toBe(false)
    }).pipe(Effect.scoped),
  60_000
)
