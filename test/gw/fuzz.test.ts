import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { renderDhcpdConf } from "../../src/actors/dhcp/render.js"
import { makeZoneWriter } from "../../src/actors/dns/generate.js"
import { rejectedPath } from "../../src/actors/dns/swap.js"
import { Mdb } from "../../src/actors/mdb/service.js"
import type { NewMachine } from "../../src/protocols/mdb.js"
import { runTool } from "../../src/runtime/run-tool.js"
import { gw, gwMachine, MdbTest, resetMdb } from "../mdb/support.js"
import { mulberry32 } from "../support/random.js"

// 1000 random machine records, valid and invalid, through MDB's API: whatever MDB accepts, the
// zones and dhcpd.conf generated from it pass the real checkers (named-checkzone -k fail, dhcpd
// -t). Records are only added, so a record that made a file invalid would still be there at the
// next check: checking every 50 adds covers every step. GW_FUZZ_SEED=S replays one run.

const ADDS = 1000
const CHECK_EVERY = 50

const pick = <A>(r: () => number, xs: ReadonlyArray<A>): A => xs[Math.floor(r() * xs.length)]!
const chars = (r: () => number, alphabet: string, min: number, max: number) =>
  Array.from({ length: min + Math.floor(r() * (max - min + 1)) }, () => pick(r, [...alphabet])).join("")

const NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789-"
const WEIRD = ["_", ".", "..", " ", "A", "é", "*", "@", "\n", ";", "{", '"', "$ORIGIN"]

const randomName = (r: () => number): string => {
  const roll = r()
  if (roll < 0.6) return chars(r, NAME_CHARS, 1, 12)
  if (roll < 0.7) return `${chars(r, NAME_CHARS, 1, 8)}.${chars(r, NAME_CHARS, 1, 4)}`
  if (roll < 0.8) return chars(r, NAME_CHARS, 60, 70)
  return `${chars(r, NAME_CHARS, 0, 5)}${pick(r, WEIRD)}${chars(r, NAME_CHARS, 0, 5)}`
}
const randomMac = (r: () => number): string => {
  const roll = r()
  const hex = () => chars(r, "0123456789abcdef", 2, 2)
  if (roll < 0.8) return Array.from({ length: 6 }, hex).join(":")
  if (roll < 0.9) return Array.from({ length: 6 }, () => chars(r, "0123456789abcdefghzZ", 2, 2)).join(":")
  return chars(r, "0123456789abcdef:-", 0, 20)
}
const randomIp = (r: () => number): string | undefined => {
  const roll = r()
  const octet = () => String(Math.floor(r() * 256))
  if (roll < 0.5) return undefined // allocated from the pool
  if (roll < 0.8) return `192.168.${pick(r, ["0", "1", "2", "250"])}.${octet()}`
  if (roll < 0.9) return `${octet()}.${octet()}.${octet()}.${octet()}`
  return pick(r, ["fe80::1", "::1", "2001:db8::5", "300.1.1.1", "1.2.3", "", "a.b.c.d"])
}
const randomMachine = (r: () => number): NewMachine => {
  const ip = randomIp(r)
  return {
    hostname: randomName(r),
    mac: randomMac(r),
    ...(ip === undefined ? {} : { ip }),
    aliases: Array.from({ length: Math.floor(r() * 4) }, () => randomName(r)).join(pick(r, [",", ", ", ",,"])),
    mtype: pick(r, ["user", "orga", "cluster", "service"]),
    room: pick(r, ["pasteur", "alt", "cluster", "other"])
  }
}

describe("gateway generators under random MDB contents", () => {
  it.live(`${ADDS} random records never yield a zone or dhcpd.conf the checkers refuse`, () =>
    Effect.gen(function* () {
      const seed = Number(process.env["GW_FUZZ_SEED"] ?? Math.floor(Math.random() * 2 ** 31))
      console.log(`gw fuzz: seed ${seed} (replay: GW_FUZZ_SEED=${seed})`)
      const r = mulberry32(seed)
      yield* resetMdb
      const mdb = yield* Mdb
      const dir = yield* Effect.acquireRelease(
        Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "prolo-gw-fuzz-"))),
        (d) => Effect.promise(() => fs.rm(d, { recursive: true, force: true }))
      )
      const refusals: Array<string> = []
      const writeZones = makeZoneWriter({
        dir,
        checkZone: (origin, file) =>
          Effect.tap(runTool(["named-checkzone", "-k", "fail", origin, file]), (t) =>
            Effect.sync(() => void (t.code === 0 ? undefined : refusals.push(`${origin}: ${t.output}`)))
          )
      })
      const dhcpFile = path.join(dir, "dhcpd.conf")
      const check = Effect.gen(function* () {
        const machines = yield* mdb.query({})
        yield* writeZones(machines)
        yield* Effect.promise(() => fs.writeFile(dhcpFile, renderDhcpdConf(machines).text))
        const dhcp = yield* runTool(["dhcpd", "-t", "-q", "-cf", dhcpFile])
        if (dhcp.code !== 0) refusals.push(`dhcpd.conf: ${dhcp.output}`)
      })
      yield* mdb.addMachine(gw) // the NS name `ns.prolo` has an address, as on every real site
      let accepted = 0
      for (let i = 1; i <= ADDS; i++) {
        const record = randomMachine(r)
        const added = yield* Effect.either(mdb.addMachine(record))
        if (Either.isRight(added)) accepted++
        if (i % CHECK_EVERY === 0) {
          yield* check
          if (refusals.length > 0) break
        }
      }
      const rejected = (yield* Effect.promise(() => fs.readdir(dir))).filter((f) => f.endsWith(".rejected"))
      expect({ seed, refusals, rejected }).toEqual({ seed, refusals: [], rejected: [] })
      console.log(`gw fuzz: ${accepted} of ${ADDS} records accepted by MDB, ${ADDS / CHECK_EVERY} checks passed`)
    }).pipe(Effect.scoped, Effect.provide(MdbTest)),
    600_000
  )

  // The topic's records are input too (a record MDB never checked, an older MDB): the renderers
  // leave out what the daemons would refuse instead of breaking the whole file.
  it.live("the same random records straight to the renderers (not through MDB) still pass the checkers", () =>
    Effect.gen(function* () {
      const seed = Number(process.env["GW_FUZZ_SEED"] ?? Math.floor(Math.random() * 2 ** 31))
      console.log(`gw fuzz (raw records): seed ${seed} (replay: GW_FUZZ_SEED=${seed})`)
      const r = mulberry32(seed)
      const dir = yield* Effect.acquireRelease(
        Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "prolo-gw-fuzz-"))),
        (d) => Effect.promise(() => fs.rm(d, { recursive: true, force: true }))
      )
      const machines = [
        { hostname: gwMachine.hostname, mac: gwMachine.mac, ip: gwMachine.ip, aliases: gwMachine.aliases, mtype: "service" as const },
        ...Array.from({ length: 300 }, () => {
          const m = randomMachine(r)
          return { hostname: m.hostname, mac: m.mac, ip: m.ip ?? "192.168.0.1", aliases: m.aliases ?? "", mtype: "user" as const }
        })
      ]
      const refusals: Array<string> = []
      yield* makeZoneWriter({
        dir,
        checkZone: (origin, file) =>
          Effect.tap(runTool(["named-checkzone", "-k", "fail", origin, file]), (t) =>
            Effect.sync(() => void (t.code === 0 ? undefined : refusals.push(`${origin}: ${t.output}`)))
          )
      })(machines.map((m) => ({ ...m, rfs: 0, hfs: 0, room: "other" as const, is_faulty: false, is_faulty_details: "" })))
      const dhcpFile = path.join(dir, "dhcpd.conf")
      yield* Effect.promise(() => fs.writeFile(dhcpFile, renderDhcpdConf(machines).text))
      const dhcp = yield* runTool(["dhcpd", "-t", "-q", "-cf", dhcpFile])
      if (dhcp.code !== 0) refusals.push(`dhcpd.conf: ${dhcp.output}`)
      expect({ seed, refusals }).toEqual({ seed, refusals: [] })
      expect(rejectedPath(path.join(dir, "generated_prolo_normal.zone"))).toMatch(/\.rejected$/)
    }).pipe(Effect.scoped)
  )
})
