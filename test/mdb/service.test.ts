import { SqlClient } from "@effect/sql"
import { describe, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { Mdb } from "../../src/actors/mdb/service.js"
import { ChangeLog } from "../../src/store/change-log.js"
import { gw, gwMachine, MdbTest, refused, resetMdb, userMachine } from "./support.js"

describe("MDB machines", () => {
  layer(MdbTest)((it) => {
    it.effect("adds gw with its aliases; query shows the original to_dict; the change log has it keyed by mac", () =>
      Effect.gen(function* () {
        yield* resetMdb
        const mdb = yield* Mdb
        const added = yield* mdb.addMachine(gw)
        const expected = gwMachine
        expect(added).toEqual(expected)
        expect(yield* mdb.query({})).toEqual([expected])
        const log = yield* ChangeLog
        const [batch] = yield* log.readSince("mdb", 0, 10)
        expect(batch?.entries).toEqual([{ op: "update", key: "11:22:33:44:55:66", record: { id: expect.any(Number), ...expected } }])
      })
    )

    it.effect("allocates the lowest free address, skips reserved ones, reuses freed ones, never leaves the network", () =>
      Effect.gen(function* () {
        yield* resetMdb
        const mdb = yield* Mdb
        const sql = yield* SqlClient.SqlClient
        const a = yield* mdb.addMachine(userMachine(1))
        const b = yield* mdb.addMachine(userMachine(2))
        expect([a.ip, b.ip]).toEqual(["192.168.0.1", "192.168.0.2"])
        // orga machines share the user pool, as in the original.
        const orga = yield* mdb.addMachine({ ...userMachine(3), mtype: "orga" })
        expect(orga.ip).toBe("192.168.0.3")
        yield* mdb.deleteMachine(a.hostname)
        expect((yield* mdb.addMachine(userMachine(4))).ip).toBe("192.168.0.1")

        // A small pool at the top of its /24 with a reserved gateway: .249–.253 only.
        yield* sql`UPDATE ip_pool SET network = '192.168.2.248/29', reserved = '{192.168.2.254}' WHERE mtype = 'cluster'`
        const ips: Array<string> = []
        for (let i = 0; i < 5; i++) {
          ips.push((yield* mdb.addMachine({ hostname: `c${i}`, mac: `cc:00:00:00:00:0${i}`, mtype: "cluster", room: "cluster" })).ip)
        }
        expect(ips).toEqual(["192.168.2.249", "192.168.2.250", "192.168.2.251", "192.168.2.252", "192.168.2.253"])
        const full = yield* refused(mdb.addMachine({ hostname: "c9", mac: "cc:00:00:00:00:09", mtype: "cluster", room: "cluster" }))
        expect(full._tag).toBe("PoolExhausted")
        expect(full.message).toBe("unable to allocate an IP address: the cluster pool 192.168.2.248/29 is full")
      })
    )

    it.effect("refuses bad input with a clear error and changes nothing", () =>
      Effect.gen(function* () {
        yield* resetMdb
        const mdb = yield* Mdb
        yield* mdb.addMachine(gw)
        const pc = yield* mdb.addMachine({ ...userMachine(1), aliases: "rfs0,hfs0" })

        const cases = [
          [{ ...userMachine(2), mac: gw.mac }, "AlreadyTaken", "mac 11:22:33:44:55:66 is already used by machine gw"],
          [{ ...userMachine(2), mac: "11:22:33:44:55:66".toUpperCase() }, "AlreadyTaken", "mac 11:22:33:44:55:66 is already used by machine gw"],
          [{ ...userMachine(2), ip: pc.ip }, "AlreadyTaken", "ip 192.168.0.1 is already used by machine pas-r01p01"],
          [{ ...userMachine(2), hostname: "gw" }, "AlreadyTaken", "hostname gw is already used by machine gw"],
          [{ ...userMachine(2), hostname: "mdb" }, "AlreadyTaken", "hostname mdb is already used by machine gw"],
          [{ ...userMachine(2), aliases: "pas-r01p01" }, "AlreadyTaken", "alias pas-r01p01 is already used by machine pas-r01p01"],
          [{ ...userMachine(2), aliases: "x,rfs0" }, "AlreadyTaken", "alias rfs0 is already used by machine pas-r01p01"],
          [{ ...userMachine(2), hostname: "pas_r01p02" }, "InvalidField", "hostname 'pas_r01p02': '_' is not allowed in DNS names (use '-')"],
          [{ ...userMachine(2), aliases: "ok,bad_alias" }, "InvalidField", "alias 'bad_alias': '_' is not allowed in DNS names (use '-')"],
          [{ ...userMachine(2), hostname: "-lead" }, "InvalidField", "hostname '-lead' is not a valid DNS name: letters a-z, digits and inner '-', optionally one '.suffix' (e.g. pas-r01p01, master.cl)"],
          [{ ...userMachine(2), hostname: "Upper" }, "InvalidField", "hostname 'Upper' must be lower case"],
          [{ ...userMachine(2), aliases: "a,a" }, "InvalidField", "alias 'a' is listed twice"],
          [{ ...userMachine(2), aliases: "pas-r01p02" }, "InvalidField", "alias 'pas-r01p02' repeats the machine's hostname"],
          [{ ...userMachine(2), mtype: "laptop" }, "InvalidField", "unknown mtype 'laptop' (expected one of user, orga, cluster, service)"],
          [{ ...userMachine(2), room: "kitchen" }, "InvalidField", "unknown room 'kitchen' (expected one of pasteur, alt, cluster, other)"],
          [{ ...userMachine(2), ip: "192.168.1.20" }, "InvalidField", "ip 192.168.1.20 is outside the user pool 192.168.0.0/24 of mtype user"],
          [{ ...userMachine(2), ip: "192.168.0.255" }, "InvalidField", "ip 192.168.0.255 is the broadcast address of 192.168.0.0/24"],
          [{ ...userMachine(2), ip: "192.168.0.300" }, "InvalidField", "ip '192.168.0.300' is not a dotted IPv4 address"],
          [{ ...userMachine(2), mac: "zz:bb:cc:dd:ee:ff" }, "InvalidField", "mac 'zz:bb:cc:dd:ee:ff' is not a MAC address (six hex pairs, e.g. 11:22:33:44:55:66)"],
          [{ ...userMachine(2), mac: "aa:bb:cc:dd:ee" }, "InvalidField", "mac 'aa:bb:cc:dd:ee' is not a MAC address (six hex pairs, e.g. 11:22:33:44:55:66)"],
          [{ ...userMachine(2), rfs: -1 }, "InvalidField", "rfs must be a non-negative integer, got -1"]
        ] as const
        for (const [input, tag, message] of cases) {
          const error = yield* refused(mdb.addMachine(input))
          expect({ tag: error._tag, message: error.message }).toEqual({ tag, message })
        }
      })
    )

    it.effect("a MAC or IP edit keeps the machine's identity and publishes delete-old + update-new in one revision", () =>
      Effect.gen(function* () {
        yield* resetMdb
        const mdb = yield* Mdb
        const log = yield* ChangeLog
        const sql = yield* SqlClient.SqlClient
        yield* mdb.addMachine(userMachine(1))
        const [before] = yield* sql<{ id: number }>`SELECT id FROM machine`
        const head = yield* log.head("mdb")
        const moved = yield* mdb.updateMachine("pas-r01p01", { mac: "AA:BB:CC:DD:EE:01", ip: "192.168.0.42" })
        expect(moved).toMatchObject({ hostname: "pas-r01p01", mac: "aa:bb:cc:dd:ee:01", ip: "192.168.0.42" })
        const rows = yield* sql<{ id: number }>`SELECT id FROM machine`
        expect(rows).toEqual([{ id: before!.id }])
        const batches = yield* log.readSince("mdb", head, 10)
        expect(batches).toHaveLength(1)
        expect(batches[0]!.entries.map((e) => [e.op, e.key, e.record.id])).toEqual([
          ["delete", "aa:bb:cc:00:00:01", before!.id],
          ["update", "aa:bb:cc:dd:ee:01", before!.id]
        ])
        const snapshot = yield* log.snapshot("mdb")
        expect(snapshot.records.map((r) => r.key)).toEqual(["aa:bb:cc:dd:ee:01"])
        // Same MAC: a plain update; no change at all: no revision.
        yield* mdb.updateMachine("pas-r01p01", { rfs: 3 })
        const [plain] = yield* log.readSince("mdb", head + 1, 10)
        expect(plain?.entries.map((e) => [e.op, e.key])).toEqual([["update", "aa:bb:cc:dd:ee:01"]])
        yield* mdb.updateMachine("pas-r01p01", { rfs: 3 })
        expect(yield* log.head("mdb")).toBe(head + 2)
      })
    )

    it.effect("updates are validated like creations and refused ones change nothing", () =>
      Effect.gen(function* () {
        yield* resetMdb
        const mdb = yield* Mdb
        yield* mdb.addMachine(gw)
        yield* mdb.addMachine(userMachine(1))
        const missing = yield* refused(mdb.updateMachine("nope", { rfs: 1 }))
        expect(missing.message).toBe("no machine named nope")
        const taken = yield* refused(mdb.updateMachine("pas-r01p01", { mac: gw.mac }))
        expect(taken.message).toBe("mac 11:22:33:44:55:66 is already used by machine gw")
        const alias = yield* refused(mdb.updateMachine("pas-r01p01", { aliases: "sso" }))
        expect(alias.message).toBe("alias sso is already used by machine gw")
        const renamed = yield* refused(mdb.updateMachine("pas-r01p01", { hostname: "ntp" }))
        expect(renamed.message).toBe("hostname ntp is already used by machine gw")
        // Changing the type keeps the address only if it fits the new pool.
        const outside = yield* refused(mdb.updateMachine("pas-r01p01", { mtype: "service" }))
        expect(outside.message).toBe("ip 192.168.0.1 is outside the service pool 192.168.1.0/24 of mtype service")
        const moved = yield* mdb.updateMachine("pas-r01p01", { mtype: "service", ip: "auto" })
        expect(moved.ip).toBe("192.168.1.1")
        // A rename keeps aliases and frees the old name.
        yield* mdb.updateMachine("pas-r01p01", { hostname: "web", aliases: "concours" })
        expect((yield* mdb.addMachine({ ...userMachine(1), mac: "aa:bb:cc:00:00:99" })).hostname).toBe("pas-r01p01")
        const deleted = yield* refused(mdb.deleteMachine("pas-r01p77"))
        expect(deleted._tag).toBe("MachineNotFound")
      })
    )

    it.effect("concurrent writers cannot both take a name: the database decides", () =>
      Effect.gen(function* () {
        yield* resetMdb
        const mdb = yield* Mdb
        // 10 machines racing for the same alias: exactly one wins.
        const results = yield* Effect.forEach(
          Array.from({ length: 10 }, (_, i) => i + 1),
          (i) => Effect.either(mdb.addMachine({ ...userMachine(i), aliases: "shared" })),
          { concurrency: "unbounded" }
        )
        expect(results.filter((r) => r._tag === "Right")).toHaveLength(1)
        for (const r of results) if (r._tag === "Left") expect(r.left.message).toMatch(/^alias shared is already used by machine pas-r01p\d\d$/)
        expect(yield* mdb.query({ aliases__contains: "shared" })).toHaveLength(1)
      })
    )

    it.effect("ansible inventory groups machines by mtype and room", () =>
      Effect.gen(function* () {
        yield* resetMdb
        const mdb = yield* Mdb
        yield* mdb.addMachine(gw)
        yield* mdb.addMachine(userMachine(1))
        yield* mdb.addMachine({ hostname: "master.cl", mac: "cc:00:00:00:00:01", mtype: "cluster", room: "cluster" })
        expect(yield* mdb.ansible).toEqual({
          orga: { hosts: [] },
          user: { hosts: ["pas-r01p01"] },
          cluster: { hosts: ["master.cl"] },
          service: { hosts: ["gw"] },
          pasteur: { hosts: ["gw", "pas-r01p01"] },
          alt: { hosts: [] },
          other: { hosts: [] },
          _meta: {
            hostvars: {
              gw: {
                mac: "11:22:33:44:55:66",
                rfs: 0,
                hfs: 0,
                room: "pasteur",
                aliases: ["mdb", "mdbsync", "ns", "netboot", "udb", "udbsync", "presencesync", "ntp", "sso"],
                is_faulty: false,
                is_faulty_details: ""
              },
              "master.cl": { mac: "cc:00:00:00:00:01", rfs: 0, hfs: 0, room: "cluster", aliases: [], is_faulty: false, is_faulty_details: "" },
              "pas-r01p01": { mac: "aa:bb:cc:00:00:01", rfs: 0, hfs: 0, room: "pasteur", aliases: [], is_faulty: false, is_faulty_details: "" }
            }
          }
        })
      })
    )

    it.effect("switches and settings", () =>
      Effect.gen(function* () {
        yield* resetMdb
        const mdb = yield* Mdb
        yield* mdb.addSwitch({ name: "sw-pas-1", chassis: "00:11:22:33:44:AA", room: "pasteur", rfs: 1, hfs: 2 })
        yield* mdb.addSwitch({ name: "sw-alt-1", chassis: "00:11:22:33:44:bb", room: "alt", rfs: 0, hfs: 0 })
        expect(yield* mdb.switches({})).toEqual([
          { name: "sw-alt-1", chassis: "00:11:22:33:44:bb", room: "alt", rfs: 0, hfs: 0 },
          { name: "sw-pas-1", chassis: "00:11:22:33:44:aa", room: "pasteur", rfs: 1, hfs: 2 }
        ])
        expect((yield* mdb.switches({ room: "alt" })).map((s) => s.name)).toEqual(["sw-alt-1"])
        const dup = yield* refused(mdb.addSwitch({ name: "sw-x", chassis: "00:11:22:33:44:aa" }))
        expect(dup.message).toBe("switch chassis 00:11:22:33:44:aa is already registered")
        const badChassis = yield* refused(mdb.addSwitch({ name: "sw-x", chassis: "nope" }))
        expect(badChassis._tag).toBe("InvalidField")
        expect((yield* mdb.deleteSwitch("sw-alt-1")).name).toBe("sw-alt-1")
        expect((yield* refused(mdb.deleteSwitch("sw-alt-1")))._tag).toBe("SwitchNotFound")

        expect(yield* mdb.settings).toEqual([{ key: "allow_self_registration", value: true }])
        expect(yield* mdb.setSetting("allow_self_registration", false)).toEqual({ key: "allow_self_registration", value: false })
        expect((yield* refused(mdb.setSetting("allow_self_registration", "yes"))).message).toBe(
          'setting allow_self_registration takes a boolean, got "yes"'
        )
        expect((yield* refused(mdb.setSetting("colour", "blue")))._tag).toBe("UnknownSetting")
        // Switch and setting changes are not machine changes: nothing was published.
        expect(yield* (yield* ChangeLog).head("mdb")).toBe(0)
      })
    )
  })
})
