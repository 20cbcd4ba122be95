import { NodeFileSystem } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { heartbeatPeriodOf, loadPresenceProfile } from "../../src/actors/presence/config.js"
import { ConfigDir, ConfigError } from "../../src/runtime/config.js"

const load = (yaml: string | undefined, dir = "") =>
  Effect.acquireUseRelease(
    Effect.sync(() => {
      const d = dir === "" ? mkdtempSync(path.join(os.tmpdir(), "prolo-presence-config-")) : dir
      if (yaml !== undefined) writeFileSync(path.join(d, "presence.yml"), yaml)
      return d
    }),
    (d) => loadPresenceProfile.pipe(Effect.provide(Layer.merge(ConfigDir.layer(d), NodeFileSystem.layer))),
    (d) => Effect.sync(() => dir === "" && rmSync(d, { recursive: true, force: true }))
  )

describe("presence.yml", () => {
  it.effect("the shipped example: 10 s lease, TCP served on a free loopback port, presenced on HTTP", () =>
    Effect.gen(function* () {
      const profile = yield* load(undefined, "etc/prologin")
      expect(profile).toEqual({ lease_seconds: 10, tcp_listen: { host: "127.0.0.1", port: 0 }, tcp_max_in_flight: 64 })
      expect(profile.tcp_connect).toBeUndefined()
    })
  )

  it.effect("tcp_listen and tcp_connect read HOST:PORT, IPv6 bracketed; both optional", () =>
    Effect.gen(function* () {
      const profile = yield* load("lease_seconds: 30\ntcp_listen: 0.0.0.0:20061\ntcp_connect: '[fd00::1]:20061'\n")
      expect(profile.tcp_listen).toEqual({ host: "0.0.0.0", port: 20061 })
      expect(profile.tcp_connect).toEqual({ host: "fd00::1", port: 20061 })
      expect(heartbeatPeriodOf(profile)).toEqual(heartbeatPeriodOf({ lease_seconds: 30, tcp_max_in_flight: 64 }))
      expect(yield* load("")).toEqual({ lease_seconds: 10, tcp_max_in_flight: 64 })
    })
  )

  it.effect("tcp_max_in_flight: an integer in 1-4096, named when wrong", () =>
    Effect.gen(function* () {
      expect((yield* load("tcp_max_in_flight: 8\n")).tcp_max_in_flight).toBe(8)
      for (const bad of ["0", "4097", "1.5", "lots"]) {
        const e = yield* Effect.flip(load(`tcp_max_in_flight: ${bad}\n`))
        expect(e).toBeInstanceOf(ConfigError)
        expect(e.message).toContain("tcp_max_in_flight")
      }
    })
  )

  it.effect("a bad address names the file, the key and the expected form", () =>
    Effect.gen(function* () {
      for (const bad of ["presencesync", "gw:70000", "gw:", ":20061", "12"]) {
        const e = yield* Effect.flip(load(`tcp_connect: ${JSON.stringify(bad)}\n`))
        expect(e).toBeInstanceOf(ConfigError)
        expect(e.message).toContain("presence.yml")
        expect(e.message).toContain("tcp_connect")
        expect(e.message).toContain("HOST:PORT")
      }
      const typo = yield* Effect.flip(load("tcp_listn: 127.0.0.1:1\n"))
      expect(typo.message).toContain("tcp_listn")
    })
  )
})
