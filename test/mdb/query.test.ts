import { describe, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { Mdb } from "../../src/actors/mdb/service.js"
import { gw, MdbTest, resetMdb, userMachine } from "./support.js"

const hostnames = (machines: ReadonlyArray<{ hostname: string }>) => machines.map((m) => m.hostname)

describe("MDB query filters", () => {
  layer(MdbTest)((it) => {
    it.effect("the original's lookups over the whitelisted fields", () =>
      Effect.gen(function* () {
        yield* resetMdb
        const mdb = yield* Mdb
        yield* mdb.addMachine(gw)
        yield* mdb.addMachine({ hostname: "rhfs01", mac: "00:00:00:00:01:01", mtype: "service", aliases: "rfs1,hfs0,hfs1", rfs: 1 })
        yield* mdb.addMachine({ hostname: "rhfs10", mac: "00:00:00:00:01:10", mtype: "service", aliases: "rfs10,hfs10", rfs: 10 })
        yield* mdb.addMachine({ ...userMachine(1), rfs: 1, hfs: 1 })
        yield* mdb.addMachine({ ...userMachine(2), mtype: "orga", room: "alt", rfs: 10 })

        expect(hostnames(yield* mdb.query({}))).toEqual(["gw", "pas-r01p01", "pas-r01p02", "rhfs01", "rhfs10"])
        // Whole aliases: rfs1 does not match rfs10 (the original's substring match did).
        expect(hostnames(yield* mdb.query({ aliases__contains: "rfs1" }))).toEqual(["rhfs01"])
        expect(hostnames(yield* mdb.query({ aliases__icontains: "RFS10" }))).toEqual(["rhfs10"])
        expect(hostnames(yield* mdb.query({ aliases__contains: "rfs" }))).toEqual([])
        expect(hostnames(yield* mdb.query({ aliases: "rfs1,hfs0,hfs1" }))).toEqual(["rhfs01"])
        expect(hostnames(yield* mdb.query({ mac: "aa:bb:cc:00:00:01" }))).toEqual(["pas-r01p01"])
        expect(hostnames(yield* mdb.query({ ip: "192.168.1.254" }))).toEqual(["gw"])
        expect(hostnames(yield* mdb.query({ ip__startswith: "192.168.0." }))).toEqual(["pas-r01p01", "pas-r01p02"])
        expect(hostnames(yield* mdb.query({ mtype__in: ["orga", "user"] }))).toEqual(["pas-r01p01", "pas-r01p02"])
        expect(hostnames(yield* mdb.query({ mtype__in: [] }))).toEqual([])
        expect(hostnames(yield* mdb.query({ hostname__iexact: "GW" }))).toEqual(["gw"])
        expect(hostnames(yield* mdb.query({ hostname__contains: "r01" }))).toEqual(["pas-r01p01", "pas-r01p02"])
        expect(hostnames(yield* mdb.query({ hostname__endswith: "10" }))).toEqual(["rhfs10"])
        expect(hostnames(yield* mdb.query({ hostname__regex: "^rhfs0[0-9]$" }))).toEqual(["rhfs01"])
        expect(hostnames(yield* mdb.query({ hostname__iregex: "^PAS-" }))).toEqual(["pas-r01p01", "pas-r01p02"])
        // prolorpc sends every value as a string: integer fields accept digit strings.
        expect(hostnames(yield* mdb.query({ rfs: "10" }))).toEqual(["pas-r01p02", "rhfs10"])
        expect(hostnames(yield* mdb.query({ rfs__gte: 1, room: "pasteur" }))).toEqual(["pas-r01p01"])
        expect(hostnames(yield* mdb.query({ room: "alt", mtype: "orga" }))).toEqual(["pas-r01p02"])
        expect(hostnames(yield* mdb.query({ is_faulty: "false", mtype: "service" }))).toEqual(["gw", "rhfs01", "rhfs10"])
      })
    )

    it.effect("unknown fields, lookups and ill-typed values are clear typed errors", () =>
      Effect.gen(function* () {
        const mdb = yield* Mdb
        const cases = [
          [{ owner: "x" }, "owner", "'owner' is not a valid query argument (fields: hostname, aliases, ip, mac, rfs, hfs, mtype, room, is_faulty, is_faulty_details)"],
          [{ hostname__near: "x" }, "hostname__near", "'hostname__near': lookup 'near' is not supported on text field 'hostname' (use exact, iexact, contains, icontains, in, startswith, istartswith, endswith, iendswith, regex, iregex, gt, gte, lt, lte, isnull)"],
          [{ rfs__contains: 1 }, "rfs__contains", "'rfs__contains': lookup 'contains' is not supported on int field 'rfs' (use exact, in, gt, gte, lt, lte, isnull)"],
          [{ rfs: "one" }, "rfs", "'rfs' must be an integer, got \"one\""],
          [{ mtype__in: 3 }, "mtype__in", "'mtype__in' needs a list of values (or a comma-separated string), got 3"],
          [{ mtype__in: ["user", {}] }, "mtype__in", "'mtype__in': every value must be a string, got {}"],
          [{ hostname__regex: "(" }, "hostname__regex", "'hostname__regex': invalid regular expression \"(\""],
          [{ hostname: {} }, "hostname", "'hostname' must be a string, got {}"],
          [{ is_faulty: "maybe" }, "is_faulty", "'is_faulty' must be true or false, got \"maybe\""]
        ] as const
        for (const [filters, key, message] of cases) {
          const error = yield* Effect.flip(mdb.query(filters))
          expect(error).toMatchObject({ _tag: "InvalidFilter", key, message })
        }
        expect(yield* Effect.flip(mdb.switches({ hostname: "gw" }))).toMatchObject({
          _tag: "InvalidFilter",
          key: "hostname"
        })
      })
    )
  })
})
