import { createHash } from "node:crypto"
import { chmod, cp, mkdir, rename, rm, stat } from "node:fs/promises"
import * as path from "node:path"
import { Effect } from "effect"

// bwrap runs as the jail user, so that user opens the game's bind sources. A checkout under a
// 0700 directory (a fresh clone in `mktemp -d`, /root) is out of its reach: such a source is
// copied once, as root, beside the work dir (`<work_dir>.binds`, traversable by the jail user;
// not inside it, which holds only the tasks' directories) and bound from there to the same path
// inside the jail. A source the jail user reaches (or one that does not exist: bwrap then says
// so) is bound as it is.

/** Whether "others" may traverse every ancestor of `p` and read `p` itself. */
const reachableByOthers = async (p: string): Promise<boolean> => {
  let dir = path.resolve(p)
  const own = await stat(dir).catch(() => undefined)
  if (own === undefined) return true
  if ((own.mode & 0o004) === 0) return false
  for (let parent = path.dirname(dir); parent !== dir; dir = parent, parent = path.dirname(dir)) {
    if (((await stat(parent)).mode & 0o001) === 0) return false
  }
  return true
}

/** Whether "others" may traverse every ancestor of `dir` (the jail user must reach the boxes in it). */
export const ancestorsTraversable = async (dir: string): Promise<boolean> => {
  let at = path.resolve(dir)
  for (let parent = path.dirname(at); parent !== at; at = parent, parent = path.dirname(at)) {
    const st = await stat(parent).catch(() => undefined)
    if (st !== undefined && (st.mode & 0o001) === 0) return false
  }
  return true
}

const stage = async (workDir: string, source: string): Promise<string> => {
  if (await reachableByOthers(source)) return source
  const staged = `${path.resolve(workDir)}.binds`
  await mkdir(staged, { recursive: true, mode: 0o711 })
  await chmod(staged, 0o711)
  const target = path.join(staged, createHash("sha256").update(path.resolve(source)).digest("hex").slice(0, 16))
  const building = `${target}.${process.pid}.${Date.now()}`
  await cp(source, building, { recursive: true })
  await chmod(building, 0o755)
  await rm(target, { recursive: true, force: true })
  await rename(building, target)
  return target
}

/** `source → where to bind it from`, one copy per source for the executor's lifetime. */
export const makeBindSources = (workDir: string) => {
  const known = new Map<string, Promise<string>>()
  return (source: string): Effect.Effect<string> =>
    Effect.promise(() => {
      let found = known.get(source)
      if (found === undefined) {
        found = stage(workDir, source)
        known.set(source, found)
        found.catch(() => known.delete(source))
      }
      return found
    })
}
