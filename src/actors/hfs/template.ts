import { createHash } from "node:crypto"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { Effect } from "effect"
import * as libc from "../../nbd/libc.js"
import { runTool, type ToolOptions } from "./tools.js"

// New homes from a template: `mke2fs -d` of a skeleton costs ~100-150 ms of CPU (it lays out
// and checksums the whole 2-5 GiB file system's metadata), and the skeleton's files are the
// same for every user of a type. So a home is made by `mke2fs` once per (skeleton content,
// quota) — the template, held in memory as its allocated extents (~1.2 MiB for a 2 GiB
// image) — then, per user, those extents are written into a fresh sparse file and one
// `debugfs -w` run gives it its own identity: a random UUID and directory hash seed, the
// user's label, and the user as owner of the root directory and of every skeleton file
// (lost+found stays root's, as with mke2fs -E root_owner).
//
// The template is made with `metadata_csum_seed`: metadata checksums are seeded from a field
// of their own instead of the UUID, so a new UUID is one superblock write (without it every
// checksum would have to be rewritten, which only tune2fs does). Kernels mount it since 4.4.

/** What a skeleton directory holds, cheaply: a fingerprint of its tree and the bytes it takes. */
export interface SkeletonFacts {
  /** Changes when any entry's name, type, mode, size or mtime changes (a template is per fingerprint). */
  readonly fingerprint: string
  /** Allocated bytes of the entries (the free-space check). */
  readonly bytes: number
}

export const skeletonFacts = (entries: ReadonlyArray<string>): Effect.Effect<SkeletonFacts, string> =>
  Effect.tryPromise({
    try: async () => {
      const h = createHash("sha256")
      let bytes = 0
      const walk = async (p: string, rel: string): Promise<void> => {
        const st = await fs.lstat(p)
        bytes += st.blocks * 512
        h.update(`${rel}\0${st.mode}\0${st.size}\0${st.mtimeMs}\0${st.uid}\0${st.gid}\n`)
        if (st.isDirectory()) {
          const names = (await fs.readdir(p)).sort()
          for (const n of names) await walk(path.join(p, n), `${rel}/${n}`)
        }
      }
      for (const e of [...entries].sort()) await walk(e, path.basename(e))
      return { fingerprint: h.digest("hex"), bytes }
    },
    catch: (e) => `reading the skeleton: ${e instanceof Error ? e.message : String(e)}`
  })

export interface Template {
  readonly size: number
  /** The allocated extents of the template image, ascending. */
  readonly extents: ReadonlyArray<{ readonly offset: number; readonly bytes: Buffer }>
  /** Inodes of the skeleton's entries (every inode in use after lost+found). */
  readonly inodes: ReadonlyArray<number>
}

// External tools at most one per core at once: 100 users logging in together queue here
// instead of thrashing two cores with 100 mke2fs/debugfs processes.
const tools = Effect.unsafeMakeSemaphore(Math.max(1, os.availableParallelism()))
export const boundedTool = (command: string, args: ReadonlyArray<string>, options: ToolOptions = {}) => tools.withPermits(1)(runTool(command, args, options))

/** The allocated extents of a file (SEEK_DATA/SEEK_HOLE), read into memory. */
const readExtents = async (file: string) => {
  const h = await fs.open(file, "r")
  try {
    const size = (await h.stat()).size
    const extents: Array<{ offset: number; bytes: Buffer }> = []
    let pos = 0
    while (pos < size) {
      const data = libc.lseek(h.fd, pos, libc.SEEK_DATA)
      if (typeof data !== "number") {
        if (data.code === "ENXIO") break
        throw data
      }
      const hole = libc.lseek(h.fd, data, libc.SEEK_HOLE)
      const end = typeof hole === "number" ? Math.min(hole, size) : size
      const bytes = Buffer.alloc(end - data)
      const { bytesRead } = await h.read(bytes, 0, bytes.length, data)
      if (bytesRead !== bytes.length) throw new Error(`short read of ${file} at ${data}`)
      extents.push({ offset: data, bytes })
      pos = end
    }
    return { size, extents }
  } finally {
    await h.close()
  }
}

/** Inodes in use after lost+found, from dumpe2fs's per-group free-inode ranges. */
export const skeletonInodes = (dumpe2fs: string): ReadonlyArray<number> => {
  const num = (label: string) => Number(new RegExp(`^${label}:\\s+(\\d+)`, "m").exec(dumpe2fs)?.[1])
  const count = num("Inode count")
  const perGroup = num("Inodes per group")
  const first = num("First inode")
  if (!(count > 0 && perGroup > 0 && first > 0)) throw new Error("dumpe2fs: no inode count, inodes per group or first inode")
  const free = new Uint8Array(count + 1)
  const groups = [...dumpe2fs.matchAll(/^\s+Free inodes:\s*(.*)$/gm)]
  if (groups.length * perGroup < count) throw new Error(`dumpe2fs: ${groups.length} groups listed for ${count} inodes`)
  for (const [, list] of groups) {
    for (const part of (list ?? "").split(",")) {
      const m = /^\s*(\d+)(?:-(\d+))?\s*$/.exec(part)
      if (m === null) continue
      const a = Number(m[1])
      const b = m[2] === undefined ? a : Number(m[2])
      for (let i = a; i <= b && i <= count; i++) free[i] = 1
    }
  }
  const used: Array<number> = []
  for (let i = first + 1; i <= count; i++) if (free[i] === 0) used.push(i)
  return used
}

const buildTemplate = (staging: string, quotaBytes: number): Effect.Effect<Template, string> =>
  Effect.acquireUseRelease(
    Effect.tryPromise({ try: () => fs.mkdtemp(path.join(os.tmpdir(), "prolo-hfs-template-")), catch: (e) => String(e) }),
    (dir) =>
      Effect.gen(function* () {
        const image = path.join(dir, "template.img")
        yield* Effect.tryPromise({ try: () => fs.writeFile(image, "").then(() => fs.truncate(image, quotaBytes)), catch: (e) => String(e) })
        yield* boundedTool("mke2fs", [
          "-q", "-F", "-t", "ext4", "-m", "0",
          "-O", "metadata_csum_seed",
          "-d", staging,
          "-E", "root_owner=0:0,lazy_itable_init=1,lazy_journal_init=1",
          image
        ])
        const inodes = skeletonInodes(yield* boundedTool("dumpe2fs", [image]))
        const { size, extents } = yield* Effect.tryPromise({ try: () => readExtents(image), catch: (e) => `reading the template: ${String(e)}` })
        return { size, extents, inodes }
      }),
    (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
  )

// One template per (fingerprint, quota), made once by the first user that needs it; the ones
// who ask meanwhile wait for it. A failure is not kept: the next user tries again.
const templates = new Map<string, Promise<Template>>()

export const templateFor = (
  facts: SkeletonFacts,
  quotaBytes: number,
  stage: (staging: string) => Effect.Effect<void, string>
): Effect.Effect<Template, string> =>
  Effect.suspend(() => {
    const key = `${facts.fingerprint}:${quotaBytes}`
    let made = templates.get(key)
    if (made === undefined) {
      const build = Effect.acquireUseRelease(
        Effect.tryPromise({ try: () => fs.mkdtemp(path.join(os.tmpdir(), "prolo-hfs-skeleton-")), catch: (e) => String(e) }),
        (staging) => Effect.zipRight(stage(staging), buildTemplate(staging, quotaBytes)),
        (staging) => Effect.promise(() => fs.rm(staging, { recursive: true, force: true }))
      )
      made = Effect.runPromise(Effect.either(build)).then((r) => {
        if (r._tag === "Left") {
          templates.delete(key)
          throw new Error(r.left)
        }
        return r.right
      })
      templates.set(key, made)
    }
    const p = made
    return Effect.tryPromise({ try: () => p, catch: (e) => (e instanceof Error ? e.message : String(e)) })
  })

// debugfs takes labels of at most 15 bytes (it keeps room for a NUL the superblock does not
// need); a 16-byte label is set by e2label after it.
export const DEBUGFS_LABEL_BYTES = 15

/** debugfs commands that make a copy of the template the home of uid:gid labelled `label`. */
export const identityCommands = (template: Template, label: string, uid: number, gid: number): string =>
  [
    "ssv uuid random",
    "ssv hash_seed random",
    ...(Buffer.byteLength(label) <= DEBUGFS_LABEL_BYTES ? [`ssv volume_name ${label}`] : []),
    ...[2, ...template.inodes].flatMap((ino) => [`sif <${ino}> uid ${uid}`, `sif <${ino}> gid ${gid}`]),
    ""
  ].join("\n")
