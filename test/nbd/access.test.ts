import { it } from "@effect/vitest"
import { Effect } from "effect"
import { describe, expect } from "vitest"
import type { ExportAccess } from "../../src/nbd/exports.js"
import { NbdExports } from "../../src/nbd/exports.js"
import { makeMemoryBackend } from "../../src/nbd/memory-backend.js"
import { make as makeServer } from "../../src/nbd/server.js"
import { run } from "../hfs/support/images.js"

// A listener's access gate (`NbdServerOptions.access`): decided from the peer address and the
// name the client sent, before the export table; a gated listener lists no names.

const MiB = 1024 * 1024

describe("nbd listener access gate", () => {
  it.scoped("lets through what the gate allows (under the name it gives), refuses the rest with its reason, lists nothing", () =>
    Effect.gen(function* () {
      const exports = yield* NbdExports
      yield* exports.add({ name: "disk", backend: makeMemoryBackend({ size: MiB }), generation: 3 })
      const seen: Array<[string, string]> = []
      const access: ExportAccess = (peer, wireName) => {
        seen.push([peer, wireName])
        return wireName === "disk@3:letmein"
          ? { _tag: "Allow", wireName: "disk@3" }
          : { _tag: "Refuse", reason: `not for ${peer}` }
      }
      const server = yield* makeServer({ host: "127.0.0.1", port: 0, access })
      const url = (name: string) => `nbd://127.0.0.1:${server.address.port}/${name}`
      const ok = yield* Effect.promise(() => run("nbdinfo", ["--size", url("disk@3:letmein")]))
      expect(ok.stdout.trim()).toBe(String(MiB))
      const refused = yield* Effect.promise(() => run("nbdinfo", ["--size", url("disk@3")]))
      expect(refused.code).not.toBe(0)
      expect(refused.stderr).toContain("server has no export named")
      // the plain name would resolve without the gate: the gate is in front of the table
      expect((yield* Effect.promise(() => run("nbdinfo", ["--size", url("disk")]))).code).not.toBe(0)
      const list = yield* Effect.promise(() => run("nbdinfo", ["--list", "--json", url("")]))
      expect(JSON.parse(list.stdout).exports).toEqual([])
      expect(seen.map(([peer]) => peer).every((p) => p === "127.0.0.1")).toBe(true)
    }).pipe(Effect.provide(NbdExports.layer))
  )
})
