import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Logger } from "effect"
import { makeZoneWriter } from "../../src/actors/dns/generate.js"
import { parseSerial } from "../../src/actors/dns/render.js"
import { rejectedPath } from "../../src/actors/dns/swap.js"
import { runTool } from "../../src/runtime/run-tool.js"
import { gwMachine } from "../mdb/fixtures.js"

// Validate, then swap, with the real named-checkzone: a refused zone never replaces the live
// one, is kept aside with the checker's message, and each serial moves only with its zone.

const tempDir = Effect.acquireRelease(
  Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "prolo-dns-"))),
  (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
)
const checkZone = (origin: string, file: string) => runTool(["named-checkzone", "-k", "fail", origin, file])
const user = { ...gwMachine, hostname: "pas-r01p01", aliases: "", ip: "192.168.0.1", mac: "aa:bb:cc:dd:ee:01", mtype: "user" as const }
const read = (dir: string, name: string) => Effect.promise(() => fs.readFile(path.join(dir, `generated_${name}.zone`), "utf8"))

describe("dns zone writer", () => {
  it.scoped("writes every zone once, then bumps only the serials of the zones that changed", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const write = makeZoneWriter({ dir, checkZone })
      expect((yield* write([gwMachine])).map((z) => z.name)).toHaveLength(6)
      expect(parseSerial(yield* read(dir, "prolo_normal"))).toBe(1)
      expect(yield* write([gwMachine])).toEqual([])
      expect((yield* write([gwMachine, user])).map((z) => z.name)).toEqual(["0.168.192.in-addr.arpa", "prolo_normal"])
      expect(parseSerial(yield* read(dir, "prolo_normal"))).toBe(2)
      expect(parseSerial(yield* read(dir, "0.168.192.in-addr.arpa"))).toBe(2)
      expect(parseSerial(yield* read(dir, "1.168.192.in-addr.arpa"))).toBe(1)
      // A fresh writer (a restarted node) continues from the files on disk.
      expect(yield* makeZoneWriter({ dir, checkZone })([gwMachine, user])).toEqual([])
    })
  )

  it.scoped("a zone the checker refuses is kept aside, logged, and the last good one stays live", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      // The renderer leaves out what BIND would refuse, so a refusal is made here: the real
      // checker, refusing any zone that names the new machine.
      const refusing = (origin: string, file: string) =>
        Effect.flatMap(Effect.promise(() => fs.readFile(file, "utf8")), (text) =>
          text.includes("pas-r01p01") ? Effect.succeed({ code: 1, output: "refused by the test" }) : checkZone(origin, file))
      const write = makeZoneWriter({ dir, checkZone: refusing })
      yield* write([gwMachine])
      const good = yield* read(dir, "prolo_normal")
      expect(yield* write([gwMachine, user])).toEqual([])
      expect(yield* read(dir, "prolo_normal")).toBe(good)
      const target = path.join(dir, "generated_prolo_normal.zone")
      expect(yield* Effect.promise(() => fs.readFile(rejectedPath(target), "utf8"))).toContain("pas-r01p01\tIN\tA\t192.168.0.1")
      // Back to a valid state: the next serial follows the live file's.
      yield* makeZoneWriter({ dir, checkZone })([gwMachine, user])
      expect(parseSerial(yield* read(dir, "prolo_normal"))).toBe(2)
    })
  )

  it.scoped("before the gateway (alias ns) is in MDB: zone prolo waits with one warning, no refused file; written once it comes", () =>
    Effect.gen(function* () {
      const dir = yield* tempDir
      const write = makeZoneWriter({ dir, checkZone })
      const logs: Array<string> = []
      const logger = Logger.make(({ message }) => logs.push(String(message)))
      const run = (machines: ReadonlyArray<typeof gwMachine>) => write(machines).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
      expect((yield* run([user])).map((z) => z.name)).not.toContain("prolo_normal")
      yield* run([user, { ...user, hostname: "pas-r01p02", ip: "192.168.0.2", mac: "aa:bb:cc:dd:ee:02" }])
      expect(logs.filter((l) => l.includes('no machine in MDB has the alias "ns"'))).toHaveLength(1)
      const names = yield* Effect.promise(() => fs.readdir(dir))
      expect(names.filter((n) => n.includes("prolo_normal"))).toEqual([])
      expect((yield* run([gwMachine, user])).map((z) => z.name)).toContain("prolo_normal")
      expect(yield* read(dir, "prolo_normal")).toContain("pas-r01p01\tIN\tA\t192.168.0.1")
    })
  )

  it.effect("a missing checker refuses, with its error", () =>
    Effect.gen(function* () {
      const r = yield* runTool(["/nonexistent/named-checkzone", "prolo", "/dev/null"])
      expect(r.code).toBe(-1)
      expect(r.output).toContain("ENOENT")
    })
  )
})
