import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { pruneRetired, retiredDirOf, retireImage } from "../../src/actors/hfs/retention.js"
import { tempDir } from "./support/images.js"

// Old copies of homes that moved away: bounded by count per login and by age (the original
// kept backup_<login>.nbd forever).

const DAY = 86_400_000

describe("HFS retention of old copies", () => {
  it.scoped("retired copies are kept up to `count` per login and `seconds` old; count 0 deletes at once; other files untouched", () =>
    Effect.gen(function* () {
      const dir = yield* Effect.acquireRelease(Effect.promise(() => tempDir("hfs-retention-")), (d) =>
        Effect.promise(() => fs.rm(d, { recursive: true, force: true }))
      )
      const image = (login: string) => Effect.promise(() => fs.writeFile(path.join(dir, `${login}.nbd`), login))
      const retired = Effect.promise(async () => (await fs.readdir(retiredDirOf(dir))).sort())
      const keep2 = { count: 2, seconds: 86400 }
      for (const [at, login] of [[1000, "alice"], [2000, "bob"], [3000, "alice"], [4000, "alice"]] as const) {
        yield* image(login)
        expect(yield* retireImage(dir, login, at, keep2)).toBe("retired")
      }
      expect(yield* retired).toEqual(["alice@3000.nbd", "alice@4000.nbd", "bob@2000.nbd"])
      expect(yield* retireImage(dir, "carol", 5000, keep2)).toBe("absent")
      yield* Effect.promise(() => fs.writeFile(path.join(retiredDirOf(dir), "notes.txt"), "operator's"))
      // a day later, bob's and alice's first copies are too old
      expect(yield* pruneRetired(dir, 3000 + DAY + 1, keep2)).toBe(2)
      expect(yield* retired).toEqual(["alice@4000.nbd", "notes.txt"])
      yield* image("dave")
      expect(yield* retireImage(dir, "dave", 6000, { count: 0, seconds: 86400 })).toBe("deleted")
      expect(yield* Effect.promise(() => fs.access(path.join(dir, "dave.nbd")).then(() => true, () => false))).toBe(false)
    })
  )
})
