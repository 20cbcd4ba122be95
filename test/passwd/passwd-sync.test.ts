import { describe, expect, it } from "@effect/vitest"
import { Effect, Metric } from "effect"
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { passwdSyncFailures, syncAccountFiles } from "../../src/actors/passwd/passwd-sync.js"
import { baseFiles, users } from "./fixtures.js"

const tempRoot = (files: Partial<Record<"passwd" | "shadow" | "group" | "gshadow", string>>) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const root = mkdtempSync(path.join(tmpdir(), "prolo-accounts-"))
      mkdirSync(path.join(root, "etc"))
      for (const [name, text] of Object.entries(files)) writeFileSync(path.join(root, "etc", name), text)
      return root
    }),
    (root) => Effect.sync(() => rmSync(root, { recursive: true, force: true }))
  )

const sync = (root: string) => syncAccountFiles({ root, users })

const failuresOf = (root: string, reason: string) =>
  Effect.map(Metric.value(Metric.tagged(Metric.tagged(passwdSyncFailures, "root", root), "reason", reason)), (s) => s.count)

describe("syncAccountFiles", () => {
  it.scoped("writes what changed, then nothing on an unchanged state", () =>
    Effect.gen(function* () {
      const root = yield* tempRoot({ passwd: baseFiles.passwd, shadow: baseFiles.shadow, group: baseFiles.group })
      const first = yield* sync(root)
      expect(first.written.map((f) => path.basename(f))).toEqual(["group", "shadow", "passwd"]) // no gshadow in this root
      const mtimes = ["passwd", "shadow", "group"].map((f) => statSync(path.join(root, "etc", f)).mtimeMs)
      const second = yield* sync(root)
      expect(second.written).toEqual([])
      expect(["passwd", "shadow", "group"].map((f) => statSync(path.join(root, "etc", f)).mtimeMs)).toEqual(mtimes)
    })
  )

  it.scoped("an unparsable line aborts with a clear error and a metric, leaving the files untouched", () =>
    Effect.gen(function* () {
      const group = `${baseFiles.group}bad:line\n`
      const root = yield* tempRoot({ passwd: baseFiles.passwd, shadow: baseFiles.shadow, group })
      const before = yield* failuresOf(root, "unparsable")
      const error = yield* Effect.flip(sync(root))
      expect(error.reason).toBe("unparsable")
      expect(error.message).toBe(`${root}: group:7: expected 4 colon-separated fields, got 2: "bad:line"; files left untouched`)
      expect(yield* failuresOf(root, "unparsable")).toBe(before + 1)
      expect(readFileSync(path.join(root, "etc/passwd"), "utf8")).toBe(baseFiles.passwd)
      expect(readFileSync(path.join(root, "etc/shadow"), "utf8")).toBe(baseFiles.shadow)
      expect(readFileSync(path.join(root, "etc/group"), "utf8")).toBe(group)
    })
  )

  it.scoped("a missing file is an error, not an empty file", () =>
    Effect.gen(function* () {
      const root = yield* tempRoot({ passwd: baseFiles.passwd, group: baseFiles.group })
      const error = yield* Effect.flip(sync(root))
      expect(error.reason).toBe("unreadable")
      expect(error.message).toContain("etc/shadow")
      expect(readFileSync(path.join(root, "etc/passwd"), "utf8")).toBe(baseFiles.passwd)
    })
  )
})
