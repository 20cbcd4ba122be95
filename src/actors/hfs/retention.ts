import { Effect } from "effect"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { imagePathOf } from "./names.js"

// Old copies of homes that moved to another HFS. The original renamed them `backup_<login>.nbd`
// and kept them forever (spec hfs.md weakness 5); here they go to `<imageDir>/.retired/` as
// `<login>@<clock millis>.nbd`, at most `count` per login and none older than `seconds`
// (hfs-server.yml `retention`), pruned on every retirement and by the HFS's sweep loop.

export interface Retention {
  readonly count: number
  readonly seconds: number
}

export const retiredDirOf = (imageDir: string) => path.join(imageDir, ".retired")

const NAME = /^([a-z_][a-z0-9_]{0,30})@([0-9]{1,16})\.nbd$/

/** Moves (or deletes, `count: 0`) the image of `login` out of the served set. */
export const retireImage = (imageDir: string, login: string, now: number, retention: Retention): Effect.Effect<"retired" | "deleted" | "absent"> =>
  Effect.promise(async () => {
    const image = imagePathOf(imageDir, login)
    const present = await fs.access(image).then(() => true, () => false)
    if (!present) return "absent" as const
    if (retention.count === 0 || retention.seconds === 0) {
      await fs.rm(image, { force: true })
      return "deleted" as const
    }
    const dir = retiredDirOf(imageDir)
    await fs.mkdir(dir, { recursive: true, mode: 0o700 })
    await fs.rename(image, path.join(dir, `${login}@${now}.nbd`))
    return "retired" as const
  }).pipe(Effect.tap(() => pruneRetired(imageDir, now, retention)))

/** Deletes the retired copies beyond the count per login or older than the age; returns how many. */
export const pruneRetired = (imageDir: string, now: number, retention: Retention): Effect.Effect<number> =>
  Effect.promise(async () => {
    const dir = retiredDirOf(imageDir)
    const names = await fs.readdir(dir).catch(() => [] as Array<string>)
    const byLogin = new Map<string, Array<{ name: string; at: number }>>()
    for (const name of names) {
      const m = NAME.exec(name)
      if (m === null) continue
      const list = byLogin.get(m[1]!) ?? []
      list.push({ name, at: Number(m[2]) })
      byLogin.set(m[1]!, list)
    }
    let removed = 0
    for (const list of byLogin.values()) {
      list.sort((a, b) => b.at - a.at)
      for (const [i, copy] of list.entries()) {
        if (i >= retention.count || now - copy.at > retention.seconds * 1000) {
          await fs.rm(path.join(dir, copy.name), { force: true })
          removed++
        }
      }
    }
    return removed
  })
