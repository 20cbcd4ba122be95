import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { createHomeImage, type NewHome } from "../../src/actors/hfs/image.js"
import { labelOf } from "../../src/actors/hfs/names.js"
import { allocatedBytes, debugfs, fsck, makeSkeleton, run, tempDir } from "./support/images.js"

// New homes with the real mke2fs, checked with e2fsck and debugfs.

const GiB = 1024 ** 3
const home = (login: string, over: Partial<NewHome> = {}): NewHome => ({
  hfs: 0, login, uid: 10042, gid: 10000, group: "user", quotaBytes: 2 * GiB, ...over
})

const setup = Effect.promise(async () => {
  const root = await tempDir("hfs-image-")
  const skeleton = await makeSkeleton(root)
  return { root, skeleton, imageDir: path.join(root, "export", "hfs0") }
})
const cleanup = (root: string) => Effect.promise(() => fs.rm(root, { recursive: true, force: true }))

describe("createHomeImage", () => {
  it.scoped("a sparse ext4 image of the quota, from the type's skeleton, owned by the user, e2fsck clean", () =>
    Effect.gen(function* () {
      const { root, skeleton, imageDir } = yield* Effect.acquireRelease(setup, (s) => cleanup(s.root))
      const { path: image } = yield* createHomeImage({ imageDir, skeleton, reserveBytes: 0 }, home("alice"))
      expect(image).toBe(path.join(imageDir, "alice.nbd"))
      expect((yield* Effect.promise(() => fs.stat(image))).size).toBe(2 * GiB)
      expect(yield* Effect.promise(() => allocatedBytes(image))).toBeLessThan(16 * 1024 * 1024)
      expect((yield* Effect.promise(() => fs.stat(imageDir))).mode & 0o777).toBe(0o700)
      expect((yield* Effect.promise(() => fsck(image))).code).toBe(0)
      // a contestant gets the root skeleton (there is no skeleton/user): the files, not the orga part
      expect(yield* Effect.promise(() => debugfs(image, "cat /.bashrc"))).toBe("# default\n")
      expect(yield* Effect.promise(() => debugfs(image, "cat /.config/i3"))).toContain("bindsym")
      expect(yield* Effect.promise(() => debugfs(image, "ls -l /"))).not.toContain("orga")
      const rootStat = yield* Effect.promise(() => debugfs(image, "stat /"))
      expect(rootStat).toMatch(/User:\s+10042\s+Group:\s+10000/)
      expect(yield* Effect.promise(() => debugfs(image, "stat /.config/i3"))).toMatch(/User:\s+10042\s+Group:\s+10000/)
      const label = (yield* Effect.promise(() => run("e2label", [image]))).stdout.trim()
      expect(label).toBe("alice")
      // nothing else left behind in the directory
      expect(yield* Effect.promise(() => fs.readdir(imageDir))).toEqual(["alice.nbd"])
      void root
    })
  )

  it.scoped("an orga gets skeleton/orga (the path the original checked but did not copy)", () =>
    Effect.gen(function* () {
      const { skeleton, imageDir } = yield* Effect.acquireRelease(setup, (s) => cleanup(s.root))
      const { path: image } = yield* createHomeImage(
        { imageDir, skeleton, reserveBytes: 0 },
        home("bob", { group: "orga", gid: 10001, quotaBytes: 5 * GiB })
      )
      expect(yield* Effect.promise(() => debugfs(image, "cat /.bashrc"))).toBe("# orga\n")
      expect((yield* Effect.promise(() => fs.stat(image))).size).toBe(5 * GiB)
      expect((yield* Effect.promise(() => fsck(image))).code).toBe(0)
    })
  )

  it.scoped("long logins with a common prefix get distinct 16-byte labels", () =>
    Effect.gen(function* () {
      const { skeleton, imageDir } = yield* Effect.acquireRelease(setup, (s) => cleanup(s.root))
      const a = "abcdefghijklmnopq_one"
      const b = "abcdefghijklmnopq_two"
      const labels: Array<string> = []
      for (const login of [a, b]) {
        const { path: image } = yield* createHomeImage({ imageDir, skeleton, reserveBytes: 0 }, home(login))
        labels.push((yield* Effect.promise(() => run("e2label", [image]))).stdout.trim())
      }
      expect(labels).toEqual([labelOf(a), labelOf(b)])
      expect(labels[0]).not.toBe(labels[1])
      for (const l of labels) expect(Buffer.byteLength(l)).toBeLessThanOrEqual(16)
      expect(labelOf("exactly16chars__")).toBe("exactly16chars__")
    })
  )

  it.scoped("mke2fs failing (skeleton larger than the quota) leaves nothing behind", () =>
    Effect.gen(function* () {
      const { skeleton, imageDir } = yield* Effect.acquireRelease(setup, (s) => cleanup(s.root))
      yield* Effect.promise(() => fs.writeFile(path.join(skeleton, "big"), Buffer.alloc(6 * 1024 * 1024, 7)))
      const e = yield* Effect.flip(createHomeImage({ imageDir, skeleton, reserveBytes: 0 }, home("carol", { quotaBytes: 4 * 1024 * 1024 })))
      expect(e).toMatchObject({ _tag: "HomeCreationFailed", login: "carol" })
      expect(e.message).toContain("mke2fs")
      expect(yield* Effect.promise(() => fs.readdir(imageDir))).toEqual([])
    })
  )

  it.scoped("a missing skeleton is a clear error and creates nothing", () =>
    Effect.gen(function* () {
      const { root, imageDir } = yield* Effect.acquireRelease(setup, (s) => cleanup(s.root))
      const e = yield* Effect.flip(createHomeImage({ imageDir, skeleton: path.join(root, "nope"), reserveBytes: 0 }, home("dave")))
      expect(e).toMatchObject({ _tag: "HomeCreationFailed" })
      expect(e.message).toContain("is not a directory")
      expect(yield* Effect.promise(() => fs.readdir(imageDir))).toEqual([])
    })
  )

  it.scoped("disk full: a small loop file system refuses the new home (sparse-aware check), nothing created", () =>
    Effect.gen(function* () {
      const { root, skeleton } = yield* Effect.acquireRelease(setup, (s) => cleanup(s.root))
      const backing = path.join(root, "small.img")
      const mnt = path.join(root, "mnt")
      yield* Effect.promise(async () => {
        await fs.mkdir(mnt)
        await fs.writeFile(backing, "")
        await fs.truncate(backing, 24 * 1024 * 1024)
        const mk = await run("mke2fs", ["-q", "-F", "-t", "ext4", "-m", "0", backing])
        if (mk.code !== 0) throw new Error(mk.stderr)
      })
      yield* Effect.acquireRelease(
        Effect.promise(async () => {
          const m = await run("mount", ["-o", "loop", backing, mnt])
          if (m.code !== 0) throw new Error(`mount -o loop: ${m.stderr}`)
        }),
        () => Effect.promise(() => run("umount", [mnt]))
      )
      const imageDir = path.join(mnt, "hfs0")
      // a 2 GiB home fits a 24 MiB file system (sparse): the original refused it, quota > free
      yield* createHomeImage({ imageDir, skeleton, reserveBytes: 0 }, home("erin"))
      // with a reserve it no longer fits: refused before anything is written
      const e = yield* Effect.flip(createHomeImage({ imageDir, skeleton, reserveBytes: 8 * 1024 * 1024 }, home("frank")))
      expect(e).toMatchObject({ _tag: "OutOfSpace", hfs: 0 })
      expect(e.message).toContain("out of disk space on hfs0")
      // a skeleton bigger than what is free: refused too
      yield* Effect.promise(() => fs.writeFile(path.join(skeleton, "big"), Buffer.alloc(12 * 1024 * 1024, 1)))
      expect(yield* Effect.flip(createHomeImage({ imageDir, skeleton, reserveBytes: 0 }, home("gina")))).toMatchObject({ _tag: "OutOfSpace" })
      expect((yield* Effect.promise(() => fs.readdir(imageDir))).sort()).toEqual(["erin.nbd"])
    })
  )

  it.scoped("homes copied from one template each get their own UUID, label and owner; a changed skeleton gets a new template", () =>
    Effect.gen(function* () {
      const { skeleton, imageDir } = yield* Effect.acquireRelease(setup, (s) => cleanup(s.root))
      // a deeper tree, a symlink and an empty directory: every entry must change owner
      yield* Effect.promise(async () => {
        await fs.mkdir(path.join(skeleton, ".local", "share", "empty"), { recursive: true })
        await fs.writeFile(path.join(skeleton, ".local", "share", "x"), "x\n")
        await fs.symlink(".bashrc", path.join(skeleton, ".profile"))
      })
      const made = [
        { login: "hana", uid: 20001, gid: 10000 },
        { login: "ivan", uid: 20002, gid: 10001 },
        { login: "abcdefghijklmnop", uid: 20003, gid: 10000 }
      ]
      const uuids = new Set<string>()
      for (const u of made) {
        const { path: image } = yield* createHomeImage({ imageDir, skeleton, reserveBytes: 0 }, home(u.login, { uid: u.uid, gid: u.gid }))
        expect((yield* Effect.promise(() => fsck(image))).code).toBe(0)
        const sb = (yield* Effect.promise(() => run("dumpe2fs", ["-h", image]))).stdout
        uuids.add(/^Filesystem UUID:\s+(\S+)/m.exec(sb)![1]!)
        expect(/^Filesystem volume name:\s+(\S+)/m.exec(sb)![1]).toBe(labelOf(u.login))
        const owner = new RegExp(`User:\\s+${u.uid}\\s+Group:\\s+${u.gid}\\b`)
        for (const p of ["/", "/.bashrc", "/.config", "/.config/i3", "/.local", "/.local/share", "/.local/share/empty", "/.local/share/x", "/.profile"]) {
          expect(yield* Effect.promise(() => debugfs(image, `stat ${p}`)), p).toMatch(owner)
        }
        expect(yield* Effect.promise(() => debugfs(image, "stat /lost+found"))).toMatch(/User:\s+0\s+Group:\s+0\b/)
        expect(yield* Effect.promise(() => debugfs(image, "cat /.local/share/x"))).toBe("x\n")
      }
      expect(uuids.size).toBe(made.length)
      // the skeleton changes: the next home has the new file
      yield* Effect.promise(() => fs.writeFile(path.join(skeleton, ".bashrc"), "# changed\n"))
      const { path: image } = yield* createHomeImage({ imageDir, skeleton, reserveBytes: 0 }, home("jade"))
      expect(yield* Effect.promise(() => debugfs(image, "cat /.bashrc"))).toBe("# changed\n")
      expect((yield* Effect.promise(() => fsck(image))).code).toBe(0)
    })
  )
})
