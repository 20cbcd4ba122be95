import { describe, expect, it } from "@effect/vitest"
import { type ChildProcess, spawn } from "node:child_process"
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { buildSync } from "esbuild"
import { removeStaleTemps, writeFileAtomic } from "../../src/actors/passwd/atomic-write.js"

// Two complete versions of three files, large enough (~150 KB) that a write spans many syscalls.
const version = (tag: string, name: string): string =>
  Array.from({ length: 2500 }, (_, i) => `${name}-${tag}-${i}:x:${10000 + i}:10000:Some Body ${tag}:/home/u${i}:/bin/bash`).join("\n") + "\n"
const NAMES = ["passwd", "shadow", "group"] as const

const waitReady = (child: ChildProcess): Promise<void> =>
  new Promise((resolve, reject) => {
    child.stdout!.once("data", () => resolve())
    child.once("exit", (code) => reject(new Error(`writer exited early (${code})`)))
  })

const waitExit = (child: ChildProcess): Promise<void> =>
  new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once("exit", () => resolve())))

describe("atomic write", () => {
  it("replaces content, keeps an existing file's mode, gives a new file the default mode", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "prolo-atomic-"))
    try {
      const target = path.join(dir, "shadow")
      await writeFileAtomic(target, "one\n", 0o600)
      expect(statSync(target).mode & 0o777).toBe(0o600)
      writeFileSync(path.join(dir, "group"), "old\n", { mode: 0o640 })
      await writeFileAtomic(path.join(dir, "group"), "new\n", 0o644)
      expect(statSync(path.join(dir, "group")).mode & 0o777).toBe(0o640)
      expect(readFileSync(path.join(dir, "group"), "utf8")).toBe("new\n")
      expect(readdirSync(dir).sort()).toEqual(["group", "shadow"])
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it("a failed write leaves the old file and no temp file", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "prolo-atomic-"))
    try {
      await expect(writeFileAtomic(path.join(dir, "missing-dir", "passwd"), "x", 0o644)).rejects.toThrow(/ENOENT/)
      expect(readdirSync(dir)).toEqual([])
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it("a writer killed at random points always leaves the old or the new complete files", async () => {
    const bundle = buildSync({
      entryPoints: [path.join(import.meta.dirname, "crash-writer.ts")],
      bundle: true,
      platform: "node",
      format: "esm",
      target: "node20",
      write: false
    }).outputFiles[0]!.text
    const work = mkdtempSync(path.join(tmpdir(), "prolo-crash-"))
    const script = path.join(work, "writer.mjs")
    writeFileSync(script, bundle)
    const versions = Object.fromEntries(NAMES.map((n) => [n, [version("A", n), version("B", n)]]))
    const spec = path.join(work, "versions.json")
    writeFileSync(spec, JSON.stringify(versions))
    const runs = 200
    let leftovers = 0
    let sawB = 0
    const started = Date.now()
    // One kill-and-check run in its own directory; a few run at once to overlap node start-ups.
    const once = async (slot: number) => {
      const dir = path.join(work, `etc${slot}`)
      rmSync(dir, { recursive: true, force: true })
      mkdirSync(dir)
      for (const n of NAMES) writeFileSync(path.join(dir, n), versions[n]![0]!)
      const child = spawn(process.execPath, [script, dir, spec], { stdio: ["ignore", "pipe", "inherit"] })
      try {
        await waitReady(child)
        await new Promise((r) => setTimeout(r, Math.random() * 15))
      } finally {
        child.kill("SIGKILL")
        await waitExit(child)
      }
      for (const n of NAMES) {
        const text = readFileSync(path.join(dir, n), "utf8")
        expect([versions[n]![0], versions[n]![1]]).toContain(text)
        if (text === versions[n]![1]) sawB++
      }
      const removed = (await Promise.all(NAMES.map((n) => removeStaleTemps(path.join(dir, n))))).flat()
      if (removed.length > 0) leftovers++
      expect(readdirSync(dir).sort()).toEqual([...NAMES].sort())
    }
    let next = 0
    try {
      await Promise.all(
        Array.from({ length: 3 }, async (_, slot) => {
          while (next < runs) {
            next++
            await once(slot)
          }
        })
      )
    } finally {
      rmSync(work, { recursive: true, force: true })
    }
    // Evidence the kills landed inside writes and after some of them completed.
    console.log(`crash test: ${runs} runs in ${Date.now() - started} ms, ${leftovers} killed mid-write, ${sawB} files replaced`)
    expect(leftovers).toBeGreaterThan(0)
    expect(sawB).toBeGreaterThan(0)
  }, 240_000) // node start-up dominates: 45 s measured at load average 10 on 2 cores
})
