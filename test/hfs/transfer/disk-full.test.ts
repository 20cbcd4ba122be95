import { expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { imageDigestPromise } from "../../../src/actors/hfs/transfer/image-digest.js"
import { writeScatteredImage } from "./images.js"
import { failureOf, MiB, receive, run, source, workDir } from "./support.js"

// The destination's image directory on a small file system of its own (a loop mount): a home
// larger than its free space is refused before anything is written, with the figures.

it.live(
  "a home that does not fit on the destination is DiskFull; nothing is written, the source is untouched",
  () =>
    Effect.gen(function* () {
      const w = workDir("full")
      yield* Effect.addFinalizer(() => Effect.sync(w.remove))
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
