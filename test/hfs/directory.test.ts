import { describe, expect, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { HfsDirectory, indexMachines, indexUsers } from "../../src/actors/hfs/directory.js"
import type { SyncRecord } from "../../src/protocols/sync.js"

// Facts from the mdb/udb topics' records: an HFS finds its address by the EXACT alias.

const record = (r: SyncRecord) => r

describe("HFS directory", () => {
  it.effect("hfs1 never matches hfs10 (or rhfs1); hostnames are not aliases", () =>
    Effect.gen(function* () {
      const machines = new Map()
      indexMachines(
        new Map([
          ["a", record({ hostname: "rhfs10", ip: "192.168.1.10", hfs: 10, aliases: "rfs10,hfs10", mac: "a" })],
          ["b", record({ hostname: "rhfs1", ip: "192.168.1.1", hfs: 1, aliases: "rfs1, hfs1", mac: "b" })],
          ["c", record({ hostname: "hfs2", ip: "192.168.1.2", hfs: 2, aliases: "", mac: "c" })],
          ["d", record({ hostname: "broken", ip: 5, hfs: 0, aliases: "hfs3", mac: "d" })]
        ]),
        machines
      )
      const directory = yield* Effect.provide(HfsDirectory, HfsDirectory.fromRecords([...machines.values()], []))
      expect(yield* directory.hfsAddress(1)).toEqual(Option.some("192.168.1.1"))
      expect(yield* directory.hfsAddress(10)).toEqual(Option.some("192.168.1.10"))
      expect(yield* directory.hfsAddress(2)).toEqual(Option.none())
      expect(yield* directory.hfsAddress(3)).toEqual(Option.none())
      expect(Option.getOrThrow(yield* directory.machine("rhfs1"))).toMatchObject({ hfs: 1, ip: "192.168.1.1" })
    })
  )

  it("users: login, uid and group from the udb topic; records without them are skipped", () => {
    const users = new Map()
    indexUsers(
      new Map([
        ["alice", record({ login: "alice", uid: 10001, group: "user" })],
        ["bob", record({ login: "bob", uid: 11001, group: "orga" })],
        ["eve", record({ login: "eve", uid: "x", group: "user" })],
        ["mallory", record({ login: "mallory", uid: 10002, group: "wheel" })]
      ]),
      users
    )
    expect([...users.keys()]).toEqual(["alice", "bob"])
  })
})
