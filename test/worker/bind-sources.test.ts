import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { makeBindSources } from "../../src/actors/worker/bind-sources.js"

// The game's files as the jail user sees them: a checkout under a 0700 directory (a fresh clone
// in `mktemp -d`) is copied once to where that user can read it; a reachable one is used as is.

describe("bind sources of the jails", () => {
  it.effect("unreachable source: one readable copy beside the work dir; reachable or missing: as is", () =>
    Effect.gen(function* () {
      const root = mkdtempSync(path.join(os.tmpdir(), "prolo-binds-"))
      try {
        chmodSync(root, 0o755)
        const hidden = path.join(root, "private")
        mkdirSync(path.join(hidden, "game"), { recursive: true })
        writeFileSync(path.join(hidden, "game", "server.py"), "print('hello')\n")
        chmodSync(hidden, 0o700)
        const open = path.join(root, "open")
        mkdirSync(open, { mode: 0o755 })
        const work = path.join(root, "boxes")
        const bindFrom = makeBindSources(work)

        const staged = yield* bindFrom(path.join(hidden, "game"))
        expect(staged.startsWith(`${work}.binds${path.sep}`)).toBe(true)
        expect(readFileSync(path.join(staged, "server.py"), "utf8")).toBe("print('hello')\n")
        expect(statSync(`${work}.binds`).mode & 0o777).toBe(0o711)
        expect(statSync(staged).mode & 0o005).toBe(0o005)
        expect(yield* bindFrom(path.join(hidden, "game"))).toBe(staged) // once per executor
        expect(yield* bindFrom(open)).toBe(open)
        expect(yield* bindFrom(path.join(root, "missing"))).toBe(path.join(root, "missing"))
      } finally {
        rmSync(root, { recursive: true, force: true })
      }
    })
  )
})
