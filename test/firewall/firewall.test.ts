import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Metric, Schema, TestClock } from "effect"
import { allowedHosts } from "../../src/actors/firewall/allowed.js"
import { NodeFileSystem } from "@effect/platform-node"
import { effectiveGroups, FirewallProfile, loadFirewallProfile } from "../../src/actors/firewall/config.js"
import { ConfigDir } from "../../src/runtime/config.js"
import { makeFirewall } from "../../src/actors/firewall/firewall.js"
import { swapScript, SwapFailed, swapAllowed } from "../../src/actors/firewall/ipset.js"
import { swapFailures, swaps } from "../../src/actors/firewall/metrics.js"
import type { SyncRecord } from "../../src/protocols/sync.js"

// The allowed set as the original computed it (minus its crash on an unknown login), the
// debounced rebuild on TestClock, a failed swap leaving the last set and being retried, and
// the profile's validation.

const map = (list: ReadonlyArray<SyncRecord>, key: string) => new Map(list.map((r) => [String(r[key]), r]))
const machines = map(
  [
    { mac: "1", hostname: "pas-r01p01", ip: "192.168.0.1", mtype: "user" },
    { mac: "2", hostname: "pas-r01p02", ip: "192.168.0.2", mtype: "user" },
    { mac: "3", hostname: "orga-1", ip: "192.168.250.1", mtype: "orga" },
    { mac: "4", hostname: "orga-2", ip: "192.168.250.2", mtype: "orga" },
    { mac: "5", hostname: "v6", ip: "fe80::1", mtype: "user" }
  ],
  "mac"
)
const users = map([{ login: "alice", group: "user" }, { login: "olga", group: "orga" }, { login: "rooty", group: "root" }], "login")
const presence = map(
  [
    { login: "alice", hostname: "pas-r01p01" },
    { login: "olga", hostname: "pas-r01p02" },
    { login: "ghost", hostname: "pas-r01p02" },
    { login: "rooty", hostname: "nowhere" }
  ],
  "login"
)

describe("allowed hosts", () => {
  it("logged users of allowed groups plus every orga machine; unknown logins and hosts left out and reported", () => {
    const all = allowedHosts({ machines, users, presence, groups: new Set(["root", "orga", "user"]) })
    expect(all).toEqual({
      ips: ["192.168.0.1", "192.168.0.2", "192.168.250.1", "192.168.250.2"],
      unknownLogins: ["ghost"],
      unknownHosts: ["nowhere"]
    })
  })

  it("contest mode removes contestants, never orga machines", () => {
    const groups = effectiveGroups({ allowed_groups: ["root", "orga", "user"], contest_enabled: true })
    expect([...groups]).toEqual(["root", "orga"])
    expect(allowedHosts({ machines, users, presence, groups }).ips).toEqual(["192.168.0.2", "192.168.250.1", "192.168.250.2"])
  })
})

describe("the debounced rebuild (TestClock)", () => {
  it.scoped("nothing before all three topics were heard; a burst is one swap of the last state; a failed swap keeps the last set and retries", () =>
    Effect.gen(function* () {
      const applied: Array<ReadonlyArray<string>> = []
      let failNext = false
      const fw = yield* makeFirewall({
        apply: (ips) =>
          Effect.suspend(() => {
            if (failNext) {
              failNext = false
              return Effect.fail(new SwapFailed({ command: "ipset restore", code: 1, output: "boom" }))
            }
            applied.push(ips)
            return Effect.succeed("swapped" as const)
          }),
        groups: new Set(["root", "orga", "user"]),
        window: "200 millis",
        retry: "2 seconds"
      })
      yield* Effect.forkScoped(fw.run)
      yield* fw.setMachines(machines)
      yield* fw.setUsers(users)
      yield* TestClock.adjust("1 second")
      expect(applied).toEqual([])
      expect(fw.expected()).toBeUndefined()

      // a burst: 100 presence states in a row, one swap with the last
      for (let i = 0; i < 100; i++) yield* fw.setPresence(i % 2 === 0 ? presence : new Map())
      yield* TestClock.adjust("200 millis")
      // the last of the burst was "nobody logged": only the orga machines
      expect(applied).toEqual([["192.168.250.1", "192.168.250.2"]])

      const failuresBefore = (yield* Metric.value(swapFailures)).count
      failNext = true
      yield* fw.setPresence(presence)
      yield* TestClock.adjust("200 millis")
      expect(applied).toHaveLength(1)
      expect(fw.applied()).toEqual(["192.168.250.1", "192.168.250.2"])
      expect((yield* Metric.value(swapFailures)).count).toBe(failuresBefore + 1)
      yield* TestClock.adjust("2 seconds")
      yield* TestClock.adjust("200 millis")
      expect(applied).toHaveLength(2)
      expect(fw.applied()).toEqual(["192.168.0.1", "192.168.0.2", "192.168.250.1", "192.168.250.2"])
    })
  )

  it.scoped("a contest flip rebuilds without any topic change; computed-only rebuilds are not counted as swaps", () =>
    Effect.gen(function* () {
      const swapsBefore = (yield* Metric.value(swaps)).count
      const applied: Array<ReadonlyArray<string>> = []
      const fw = yield* makeFirewall({
        apply: (ips) => Effect.sync(() => (applied.push(ips), "computed" as const)),
        groups: new Set(["root", "orga", "user"]),
        window: "10 millis",
        retry: "1 second"
      })
      const loop = yield* Effect.forkScoped(fw.run)
      yield* fw.setMachines(machines)
      yield* fw.setUsers(users)
      yield* fw.setPresence(presence)
      yield* TestClock.adjust("10 millis")
      yield* fw.setGroups(new Set(["root", "orga"]))
      yield* TestClock.adjust("10 millis")
      expect(applied.map((s) => s.includes("192.168.0.1"))).toEqual([true, false])
      expect((yield* Metric.value(swaps)).count).toBe(swapsBefore)
      yield* Fiber.interrupt(loop)
    })
  )
})

describe("ipset batch and profile", () => {
  it("one restore batch: create both (-exist), flush and fill the temporary set, then swap", () => {
    const config = { ipset: ["ipset"], set: "allowed", tmpSet: "tmp", setType: ["hash:ip"] }
    expect(swapScript(config, ["10.0.0.1", "10.0.0.2"])).toBe(
      "create tmp hash:ip\ncreate allowed hash:ip\nflush tmp\nadd tmp 10.0.0.1\nadd tmp 10.0.0.2\nswap tmp allowed\n"
    )
  })

  it.effect("a failing ipset is a SwapFailed naming the command, its exit code and output", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(swapAllowed({ ipset: ["sh", "-c", "echo nope >&2; exit 3", "ipset"], set: "a", tmpSet: "b", setType: ["hash:ip"] }, []))
      expect(error).toBeInstanceOf(SwapFailed)
      expect(error.code).toBe(3)
      expect(error.output).toBe("nope")
    })
  )

  it("an unknown group, a misspelt key or a zero debounce is refused by the profile", () => {
    const decode = Schema.decodeUnknownEither(FirewallProfile)
    expect(decode({ allowed_groups: ["orga", "staff"] })._tag).toBe("Left")
    expect(decode({ contest_enable: true })._tag).toBe("Left")
    expect(decode({ debounce_ms: 0 })._tag).toBe("Left")
    expect(decode({})).toMatchObject({ _tag: "Right", right: { allowed_groups: ["root", "orga", "user"], contest_enabled: false, set: "allowed-internet-access" } })
  })
})

describe("etc/prologin/firewall.yml", () => {
  it.effect("the shipped example loads and applies nothing (no ipset command): the dev loop leaves the host's firewall alone", () =>
    Effect.gen(function* () {
      const profile = yield* loadFirewallProfile
      expect(profile.ipset).toBeUndefined()
      expect(profile.rules).toBeUndefined()
      expect([...effectiveGroups(profile)]).toEqual(["root", "orga", "user"])
    }).pipe(Effect.provide(Layer.merge(ConfigDir.layer("etc/prologin"), NodeFileSystem.layer)))
  )
})
