import * as fs from "node:fs/promises"
import * as path from "node:path"
import { Effect } from "effect"
import { HomeCreationFailed, OutOfSpace } from "../../protocols/hfs.js"
import { type Group, GROUPS } from "../../protocols/udb.js"
import { imagePathOf, labelOf } from "./names.js"
import { boundedTool, DEBUGFS_LABEL_BYTES, identityCommands, skeletonFacts, templateFor } from "./template.js"
import { runTool } from "./tools.js"

// A new home: a sparse ext4 image of the user's quota, pre-filled from the skeleton of the
// user's type and owned by the user (the original's create_nbd.sh, with its flaws fixed).
//
// All or nothing: everything is built under temporary names in the image directory (same file
// system) and the image appears under its final name by one rename after an fsync; on any
// failure the temporaries are removed. The caller records the location row only after this
// succeeded, and removes the image if that fails (see actor.ts).

export interface ImageSettings {
  /** `<export_base>/hfs<id>`, created 0700 on demand. */
  readonly imageDir: string
  /** Skeleton root; `<skeleton>/<group>` is used instead when it is a directory. */
  readonly skeleton: string
  /** Space that must stay free after a new home is made (so existing homes can grow). */
  readonly reserveBytes: number
}

export interface NewHome {
  readonly hfs: number
  readonly login: string
  readonly uid: number
  readonly gid: number
  readonly group: Group
  readonly quotaBytes: number
}

/**
 * What a fresh image allocates besides the skeleton's files: superblocks, group descriptors,
 * bitmaps, the root inode table blocks. With lazy inode-table and journal init an image file
 * stays sparse (a 2 GiB home allocates ~4 MiB, 5 GiB ~5 MiB; without it the zeroed journal
 * alone took 64 MiB). Holes read as zeroes, which is what the lazy init relies on.
 */
export const METADATA_ALLOWANCE = 16 * 1024 * 1024

const failed = (home: NewHome, what: string) => (reason: string) =>
  new HomeCreationFailed({ login: home.login, message: `new home of ${home.login}: ${what}: ${reason}; nothing was created` })

const errorText = (e: unknown) => (e instanceof Error ? e.message : String(e))

const isDirectory = (p: string) =>
  Effect.promise(() => fs.stat(p).then((s) => s.isDirectory(), () => false))

/**
 * What a home of `group` starts with: `<skeleton>/<group>` when that is a directory, else
 * `<skeleton>` without its per-type directories (`user`, `orga`, `root`). The original tested
 * `SKEL/UTYPE` but copied `SKEL_UTYPE`, so per-type skeletons never applied.
 */
export const skeletonFor = (
  skeleton: string,
  group: Group
): Effect.Effect<{ readonly dir: string; readonly entries: ReadonlyArray<string> } | undefined> =>
  Effect.gen(function* () {
    const perType = path.join(skeleton, group)
    const dir = (yield* isDirectory(perType)) ? perType : (yield* isDirectory(skeleton)) ? skeleton : undefined
    if (dir === undefined) return undefined
    const names = yield* Effect.promise(() => fs.readdir(dir, { withFileTypes: true }))
    const entries = names
      .filter((e) => dir === perType || !(e.isDirectory() && (GROUPS as ReadonlyArray<string>).includes(e.name)))
      .map((e) => path.join(dir, e.name))
    return { dir, entries }
  })

/** Bytes free for unprivileged writers: f_bavail × f_frsize (the original used f_bsize). */
export const availableBytes = (dir: string): Effect.Effect<number, string> =>
  Effect.tryPromise({
    // node's statfs gives f_bsize only; on Linux (ext4, xfs, tmpfs) it equals f_frsize.
    try: () => fs.statfs(dir).then((s) => s.bavail * s.bsize),
    catch: (e) => `statfs ${dir}: ${errorText(e)}`
  })

/**
 * Creates `<imageDir>/<login>.nbd`. An image already there has no location row (the caller
 * checked), so it is the leftover of an interrupted creation and is replaced.
 */
export const createHomeImage = (
  settings: ImageSettings,
  home: NewHome
): Effect.Effect<{ readonly path: string }, OutOfSpace | HomeCreationFailed> =>
  Effect.gen(function* () {
    const target = imagePathOf(settings.imageDir, home.login)
    yield* Effect.tryPromise({
      try: () => fs.mkdir(settings.imageDir, { recursive: true, mode: 0o700 }),
      catch: (e) => failed(home, `cannot create ${settings.imageDir}`)(errorText(e))
    })
    const skeleton = yield* skeletonFor(settings.skeleton, home.group)
    if (skeleton === undefined) return yield* failed(home, "skeleton")(`${settings.skeleton} is not a directory`)
    const facts = yield* Effect.mapError(skeletonFacts(skeleton.entries), failed(home, "skeleton"))

    // Sparse images: what a new home takes now is its skeleton plus a little metadata, not
    // its quota (the original asked for the whole quota free). The reserve keeps room for
    // the homes already there to grow.
    const available = yield* Effect.mapError(availableBytes(settings.imageDir), failed(home, "free space"))
    const needed = facts.bytes + METADATA_ALLOWANCE + settings.reserveBytes
    if (available < needed) {
      return yield* new OutOfSpace({
        hfs: home.hfs,
        neededBytes: needed,
        availableBytes: available,
        message: `out of disk space on hfs${home.hfs} (${settings.imageDir}): a new home needs ${mib(facts.bytes + METADATA_ALLOWANCE)} MiB with ${mib(settings.reserveBytes)} MiB kept free, ${mib(available)} MiB available`
      })
    }

    const temporary = path.join(settings.imageDir, `.new-${home.login}-${process.pid}-${Date.now().toString(36)}.nbd`)
    const build = Effect.gen(function* () {
      const template = yield* templateFor(facts, home.quotaBytes, (staging) =>
        skeleton.entries.length > 0 ? Effect.asVoid(runTool("cp", ["-a", "--", ...skeleton.entries, staging])) : Effect.void
      )
      yield* Effect.tryPromise({
        try: async () => {
          const file = await fs.open(temporary, "wx", 0o600)
          try {
            await file.truncate(template.size)
            for (const e of template.extents) await file.write(e.bytes, 0, e.bytes.length, e.offset)
          } finally {
            await file.close()
          }
        },
        catch: (e) => errorText(e)
      })
      const label = labelOf(home.login)
      yield* boundedTool("debugfs", ["-w", "-f", "-", temporary], {
        input: identityCommands(template, label, home.uid, home.gid),
        stderrAllowed: /^debugfs [0-9.]+ \(/
      })
      if (Buffer.byteLength(label) > DEBUGFS_LABEL_BYTES) yield* boundedTool("e2label", [temporary, label])
      yield* Effect.tryPromise({
        try: async () => {
          const file = await fs.open(temporary, "r+")
          try {
            await file.sync()
          } finally {
            await file.close()
          }
          await fs.rename(temporary, target)
          const dir = await fs.open(settings.imageDir, "r")
          try {
            await dir.sync()
          } finally {
            await dir.close()
          }
        },
        catch: (e) => errorText(e)
      })
    })
    yield* build.pipe(
      Effect.mapError(failed(home, "creating the image")),
      Effect.onError(() => Effect.promise(() => fs.rm(temporary, { force: true })))
    )
    return { path: target }
  })

const mib = (bytes: number) => Math.ceil(bytes / (1024 * 1024))
