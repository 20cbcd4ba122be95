import { describe, expect, it } from "@effect/vitest"
import { execFileSync } from "node:child_process"
import { mkdirSync, readdirSync, symlinkSync, writeFileSync } from "node:fs"
import * as path from "node:path"
import { gunzipSync, gzipSync } from "node:zlib"
import { Effect } from "effect"
import { ArchiveRejected, readTgz, writeTgz } from "../../src/actors/worker/archive.js"
import { makeExecutor } from "../../src/actors/worker/executor-live.js"
import type { ArchiveProblem } from "../../src/protocols/cluster-task.js"
import { skipUnlessRoot } from "../support/root.js"
import { champion, ensureClusterUser, scratch, testConfig } from "./support.js"

// Uploaded archives: real ones from GNU tar (long names, directories) read back exactly; every
// bad one refused with its reason before anything is written, and the compile answers `error`
// with that reason and no compiled archive.

const bounds = { maxEntries: 100, maxBytes: 1 << 20 }

/** A tar made by GNU tar from a directory tree built by `make(dir)`. */
const gnuTar = (dir: string, make: (root: string) => void, args: Array<string> = ["."]): Uint8Array => {
  const root = path.join(dir, `src-${Math.random().toString(36).slice(2)}`)
  mkdirSync(root)
  make(root)
  return new Uint8Array(execFileSync("tar", ["-czf", "-", "-C", root, ...args]))
}

/** A raw ustar header block + data, for entries GNU tar will not write (absolute, `..`). */
const rawTar = (name: string, type: string, data = "", linkname = ""): Uint8Array => {
  const h = Buffer.alloc(512)
  h.write(name, 0)
  h.write("0000644", 100)
  h.write("0000000", 108)
  h.write("0000000", 116)
  h.write(Buffer.byteLength(data).toString(8).padStart(11, "0"), 124)
  h.write("00000000000", 136)
  h.write("        ", 148)
  h.write(type, 156)
  h.write(linkname, 157)
  h.write("ustar\u000000", 257)
  let sum = 0
  for (const x of h) sum += x
  h.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148)
  const body = Buffer.alloc(Math.ceil(Buffer.byteLength(data) / 512) * 512)
  body.write(data)
  return gzipSync(Buffer.concat([rawLang, h, body, Buffer.alloc(1024)]))
}
const rawLang = (() => {
  const t = Buffer.from(writeTgz([{ path: "_lang", type: "file", mode: 0o644, data: Buffer.from("c\n") }]))
  const tar = gunzipSync(t)
  return tar.subarray(0, 1024) // header + one data block, without the end marker
})()

const problemOf = (r: ReturnType<typeof readTgz>): ArchiveProblem | "accepted" => (r instanceof ArchiveRejected ? r.problem : "accepted")

describe("champion archives", () => {
  it.scoped("reads GNU tar archives: nested directories, a 150-byte name, ./ prefixes, modes", () =>
    Effect.gen(function* () {
      const dir = yield* scratch
      const long = `${"d".repeat(70)}/${"f".repeat(79)}.c`
      const tgz = gnuTar(dir, (root) => {
        writeFileSync(path.join(root, "_lang"), "c\n")
        mkdirSync(path.join(root, "d".repeat(70)))
        writeFileSync(path.join(root, long), "int x;\n")
        writeFileSync(path.join(root, "run.sh"), "#!/bin/sh\n", { mode: 0o755 })
      })
      const entries = readTgz(tgz, bounds)
      if (entries instanceof ArchiveRejected) throw entries
      expect(entries.map((e) => `${e.type} ${e.path}`).sort()).toEqual([`dir ${"d".repeat(70)}`, `file ${long}`, "file _lang", "file run.sh"].sort())
      expect(entries.find((e) => e.path === "run.sh")!.mode).toBe(0o755)
      // And what we write, GNU tar reads (the long name through its GNU record).
      const out = path.join(dir, "out.tgz")
      writeFileSync(out, writeTgz(entries))
      expect(execFileSync("tar", ["-tzf", out]).toString().split("\n").filter((l) => l !== "").sort()).toEqual(
        [`${"d".repeat(70)}/`, long, "_lang", "run.sh"].sort()
      )
    }))

  it.scoped("refuses each bad archive with its reason", () =>
    Effect.gen(function* () {
      const dir = yield* scratch
      const cases: Array<[string, Uint8Array, ArchiveProblem]> = [
        ["not gzip", new TextEncoder().encode("hello, I am not an archive"), "corrupt_archive"],
        ["gzip of garbage", gzipSync(Buffer.alloc(2048, 7)), "corrupt_archive"],
        ["truncated", gzipSync(Buffer.from(execFileSync("tar", ["-cf", "-", "-C", path.resolve("games/reference/champions/c"), "."])).subarray(0, 700)), "corrupt_archive"],
        ["absolute path", rawTar("/etc/cron.d/evil", "0", "x"), "path_escape"],
        ["dot-dot", rawTar("../../evil.c", "0", "x"), "path_escape"],
        ["dot-dot inside", rawTar("a/../../evil.c", "0", "x"), "path_escape"],
        ["symlink out", gnuTar(dir, (r) => symlinkSync("/etc/shadow", path.join(r, "shadow"))), "path_escape"],
        ["hard link", rawTar("hl", "1", "", "/etc/shadow"), "path_escape"],
        ["device", rawTar("dev", "3"), "path_escape"],
        ["fifo", rawTar("fifo", "6"), "path_escape"],
        [
          "file then a path under it",
          writeTgz([
            { path: "a", type: "file", mode: 0o644, data: new Uint8Array() },
            { path: "a/b.c", type: "file", mode: 0o644, data: new Uint8Array() }
          ]),
          "corrupt_archive"
        ],
        ["too many entries", writeTgz(Array.from({ length: 101 }, (_, i) => ({ path: `f${i}`, type: "file" as const, mode: 0o644, data: new Uint8Array() }))), "too_large"],
        ["gzip bomb", gnuTar(dir, (r) => writeFileSync(path.join(r, "zeros"), Buffer.alloc(4 << 20))), "too_large"]
      ]
      for (const [what, tgz, problem] of cases) expect(problemOf(readTgz(tgz, bounds)), what).toBe(problem)
    }))

  it.scopedLive.skipIf(skipUnlessRoot("executor: bwrap jails as the cluster user"))(
    "a compile of a refused archive answers error with the reason, writes nothing, and the executor goes on",
    () =>
      Effect.gen(function* () {
        ensureClusterUser()
        const dir = yield* scratch
        const work = path.join(dir, "work")
        const ex = yield* makeExecutor(testConfig(work))
        const cases: Array<[string, Uint8Array, ArchiveProblem, RegExp]> = [
          ["no _lang", champion({ "champion.c": "int x;" }), "no_lang", /no _lang file/],
          ["unknown language", champion({ _lang: "brainfuck\n", "champion.bf": "+" }), "unknown_language", /unknown language "brainfuck"/],
          ["corrupt", new Uint8Array([1, 2, 3]), "corrupt_archive", /not a gzip'd tar archive/],
          ["escape", rawTar("../../escape.c", "0", "int x;"), "path_escape", /points outside/]
        ]
        for (const [what, sources, problem, message] of cases) {
          const r = yield* ex.compile({ taskId: 1, attempt: 1, championId: 7, author: "mallory", sources })
          expect([r.status, r.rejected, r.compiled], what).toEqual(["error", problem, undefined])
          expect(r.log, what).toMatch(message)
          expect(r.log).toContain("*** Compilation refused.")
        }
        // Nothing was unpacked anywhere: the work directory was not even created.
        expect(readdirSync(dir)).toEqual([])
        // A compile error is an `error` result with the compiler's message, not a failure.
        const bad = yield* ex.compile({ taskId: 2, attempt: 1, championId: 8, author: "bob", sources: champion({ _lang: "c", "champion.c": "int play_turn( {" }) })
        expect(bad.status).toBe("error")
        expect(bad.rejected).toBeUndefined()
        expect(bad.log).toMatch(/error: [\s\S]*\*\*\* Compilation failed\. Try again :\)\n$/)
        const good = yield* ex.compile({ taskId: 3, attempt: 1, championId: 9, author: "bob", sources: champion({ _lang: "python", "champion.py": "def play_turn(t, c, m, o):\n  return 0\n" }) })
        expect(good.status, good.log).toBe("ready")
      }),
    60_000
  )
})
