import { describe, expect, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { removeStaleSocketDirs } from "../../src/store/socket-dirs.js"

// Which leftover socket directories a start removes: only those of dead nodes (issue 17 item 7).

describe("removeStaleSocketDirs", () => {
  it("removes the directories of dead nodes only", async () => {
    const tmp = await fs.mkdtemp(path.join(os.tmpdir(), "prolo-sockdirs-"))
    try {
      const dead = spawnSync("true").pid // exited and reaped
      const mk = async (name: string, files: Record<string, string> = {}) => {
        await fs.mkdir(path.join(tmp, name))
        for (const [file, text] of Object.entries(files)) await fs.writeFile(path.join(tmp, name, file), text)
      }
      await mk(`prolo-pg-${dead}-empty`)
      await mk(`prolo-pg-${dead}-deadlock`, { ".s.PGSQL.5432.lock": `${dead}\n/data\n` })
      await mk(`prolo-pg-${process.pid}-mine`) // its node lives
      await mk(`prolo-pg-${dead}-held`, { ".s.PGSQL.5432.lock": `${process.pid}\n/data\n` }) // a live postmaster holds it
      await mk("prolo-pg-AbC123") // no owner in the name: perhaps a node starting now
      await mk(`other-${dead}-x`)
      await fs.writeFile(path.join(tmp, `prolo-pg-${dead}-file`), "")
      await fs.symlink(path.join(tmp, `other-${dead}-x`), path.join(tmp, `prolo-pg-${dead}-link`))

      const removed = await removeStaleSocketDirs(tmp)
      expect(removed.map((d) => path.basename(d)).sort()).toEqual([`prolo-pg-${dead}-deadlock`, `prolo-pg-${dead}-empty`])
      expect((await fs.readdir(tmp)).sort()).toEqual(
        [`other-${dead}-x`, "prolo-pg-AbC123", `prolo-pg-${dead}-file`, `prolo-pg-${dead}-held`, `prolo-pg-${dead}-link`, `prolo-pg-${process.pid}-mine`].sort()
      )
      expect(await removeStaleSocketDirs(path.join(tmp, "missing"))).toEqual([])
    } finally {
      await fs.rm(tmp, { recursive: true, force: true })
    }
  })
})
