import { randomBytes } from "node:crypto"
import { chmod, chown, lstat, mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises"
import * as path from "node:path"
import { Effect } from "effect"
import type { ArchiveEntry } from "./archive.js"

// A task's scratch directories on the worker: created for one compile or one match, owned by
// the jail user where a jail writes, read back after the jail is dead without following
// anything the jail left (a symlink to /etc/shadow in a box is skipped, never read as root),
// and removed at the end whatever happened.

export interface Owner {
  readonly uid: number
  readonly gid: number
}

/** `<work_dir>/<kind>-<id>-<attempt>-<random>`, removed when the scope closes. */
export const taskDir = (workDir: string, name: string) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const dir = path.join(workDir, `${name}-${randomBytes(4).toString("hex")}`)
      // The jail user must traverse it (bwrap opens the binds as that user), not list it.
      await mkdir(workDir, { recursive: true, mode: 0o711 })
      await chmod(workDir, 0o711)
      await mkdir(dir, { mode: 0o711 })
      return dir
    }),
    (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
  )

/** A directory a jail may write, owned by the jail user. */
export const jailDir = (dir: string, owner: Owner | undefined, mode = 0o700) =>
  Effect.promise(async () => {
    await mkdir(dir, { recursive: true, mode })
    await chmod(dir, mode)
    if (owner !== undefined) await chown(dir, owner.uid, owner.gid)
  })

/** Writes checked archive entries under `dir` (names already normalised by readTgz). */
export const writeEntries = (dir: string, entries: ReadonlyArray<ArchiveEntry>, owner: Owner | undefined) =>
  Effect.promise(async () => {
    for (const e of entries) {
      const target = path.join(dir, e.path)
      const parent = path.dirname(target)
      await mkdir(parent, { recursive: true })
      if (e.type === "dir") await mkdir(target, { recursive: true })
      else await writeFile(target, e.data, { mode: (e.mode & 0o755) | 0o600, flag: "wx" })
    }
    if (owner !== undefined) await chownTree(dir, owner)
  })

const chownTree = async (dir: string, owner: Owner): Promise<void> => {
  await chown(dir, owner.uid, owner.gid)
  for (const d of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, d.name)
    if (d.isDirectory()) await chownTree(p, owner)
    else await chown(p, owner.uid, owner.gid)
  }
}

/** Regular files and directories under `dir`, links and the rest skipped, bounded. */
export const readTree = (dir: string, maxBytes: number) =>
  Effect.tryPromise({ catch: (e) => (e instanceof Error ? e : new Error(String(e))), try: async () => {
    const out: Array<ArchiveEntry> = []
    let total = 0
    const walk = async (rel: string): Promise<void> => {
      for (const name of (await readdir(path.join(dir, rel))).sort()) {
        const r = rel === "" ? name : `${rel}/${name}`
        const st = await lstat(path.join(dir, r))
        if (st.isDirectory()) {
          out.push({ path: r, type: "dir", mode: 0o755, data: new Uint8Array() })
          await walk(r)
        } else if (st.isFile()) {
          total += st.size
          if (total > maxBytes) throw new Error(`the build output is larger than ${maxBytes} bytes`)
          out.push({ path: r, type: "file", mode: st.mode & 0o755, data: await readFile(path.join(dir, r)) })
        }
      }
    }
    await walk("")
    return out
  } })

/** The file's bytes if it is a regular file (not a link the jail left), else undefined. */
export const readRegular = (file: string) =>
  Effect.promise(async () => {
    const st = await lstat(file).catch(() => undefined)
    return st?.isFile() === true ? new Uint8Array(await readFile(file)) : undefined
  })
