import { describe, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { Mdb } from "../../src/actors/mdb/service.js"
import { ipToInt } from "../../src/actors/mdb/validate.js"
import { MdbTest, refused, resetMdb } from "./support.js"

const registration = (n: number) => ({
  hostname: `alt-r02p${String(n).padStart(2, "0")}`,
  mac: `de:ad:be:ef:00:${n.toString(16).padStart(2, "0")}`,
  rfs: 0,
  hfs: 1,
  room: "alt",
  mtype: "user"
})

describe("MDB self-registration", () => {
  layer(MdbTest)((it) => {
    it.effect("50 concurrent registrations get 50 distinct addresses of the user pool", () =>
      Effect.gen(function* () {
        yield* resetMdb
        const mdb = yield* Mdb
        const ips = yield* Effect.forEach(
          Array.from({ length: 50 }, (_, i) => i + 1),
          (n) => mdb.register(registration(n)),
          { concurrency: "unbounded" }
        )
        expect(new Set(ips).size).toBe(50)
        // Lowest-first allocation under contention: exactly .1 to .50.
        expect(ips.map(ipToInt).sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => ipToInt("192.168.0.0") + i + 1))
        const machines = yield* mdb.query({ room: "alt" })
        expect(machines).toHaveLength(50)
        expect(machines.every((m) => m.mtype === "user" && m.hfs === 1)).toBe(true)
      })
    )

    it.effect("refused while allow_self_registration is off (or missing), with nothing changed", () =>
      Effect.gen(function* () {
        yield* resetMdb
        const mdb = yield* Mdb
        yield* mdb.setSetting("allow_self_registration", false)
        const off = yield* refused(mdb.register(registration(1)))
        expect(off).toMatchObject({ _tag: "RegistrationDisabled", message: "self registration is disabled" })
        yield* mdb.setSetting("allow_self_registration", true)
        expect(yield* mdb.register(registration(1))).toBe("192.168.0.1")
      })
    )

    it.effect("a registration that fails validation or hits a duplicate consumes no address", () =>
      Effect.gen(function* () {
        yield* resetMdb
        const mdb = yield* Mdb
        expect(yield* mdb.register(registration(1))).toBe("192.168.0.1")
        const dup = yield* refused(mdb.register({ ...registration(2), hostname: registration(1).hostname }))
        expect(dup).toMatchObject({ _tag: "AlreadyTaken", field: "hostname", holder: "alt-r02p01" })
        const bad = yield* refused(mdb.register({ ...registration(2), room: "garden" }))
        expect(bad._tag).toBe("InvalidField")
        expect(yield* mdb.register(registration(2))).toBe("192.168.0.2")
      })
    )
  })
})
