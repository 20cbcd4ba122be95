import { Command } from "@effect/cli"
import { NodeContext } from "@effect/platform-node"
import * as HttpServer from "@effect/platform/HttpServer"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Redacted } from "effect"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { callCompatRoutes } from "../../src/actors/mdb/call-compat.js"
import { mdbCommand, table } from "../../src/actors/mdb/cli.js"
import { MdbHandlers } from "../../src/actors/mdb/handlers.js"
import { Mdb } from "../../src/actors/mdb/service.js"
import { MdbRpcs } from "../../src/protocols/mdb.js"
import { httpHostLayer, serverUrl } from "../../src/runtime/http-host.js"
import { Metrics } from "../../src/runtime/metrics.js"
import { rpcRoute } from "../../src/runtime/rpc-route.js"
import { dumpDatabase } from "../support/pg-dump.js"
import { MdbTest } from "./support.js"

const SECRET = "cli-test-secret"

const Host = httpHostLayer(
  Layer.mergeAll(rpcRoute({ service: "mdb", group: MdbRpcs, handlers: MdbHandlers, secret: Redacted.make(SECRET) }), callCompatRoutes),
  { listen: { host: "127.0.0.1", port: 0 } }
).pipe(Layer.provideMerge(MdbTest), Layer.provideMerge(Metrics.layer))

const configDir = (secret: string) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const dir = await fs.mkdtemp(path.join(os.tmpdir(), "prolo-mdb-cli-"))
      await fs.writeFile(path.join(dir, "mdb-server.yml"), `shared_secret: ${secret}\n`)
      return dir
    }),
    (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
  )

/** Runs `prolo mdb <args>` in-process; returns the exit status it set (0 when untouched). */
const run = (config: string, args: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const url = serverUrl((yield* HttpServer.HttpServer).address)
    process.exitCode = 0
    yield* Command.run(mdbCommand, { name: "prolo mdb", version: "test" })(["node", "prolo", "--node", url, "--config", config, ...args]).pipe(
      Effect.provide(NodeContext.layer)
    )
    const code = process.exitCode
    process.exitCode = 0
    return code
  })

describe("prolo mdb", () => {
  it("prints aligned tables", () => {
    expect(table(["A", "LONG HEADER", "C"], [["xyz", "1", "tail"], ["", "22", ""]])).toBe(
      ["A    LONG HEADER  C", "xyz  1            tail", "     22"].join("\n")
    )
  })

  it.live("adds, updates, deletes machines and switches with the node's secret; refusals exit 2 and change nothing", () =>
    Effect.gen(function* () {
      const good = yield* configDir(SECRET)
      const wrong = yield* configDir("not-the-secret")
      const mdb = yield* Mdb
      const gw = ["--hostname", "gw", "--mac", "11:22:33:44:55:66", "--ip", "192.168.1.254", "--rfs", "0", "--hfs", "0"]
      expect(yield* run(good, ["add", ...gw, "--mtype", "service", "--room", "pasteur", "--aliases", "mdb,ns"])).toBe(0)
      expect(yield* mdb.query({ hostname: "gw" })).toMatchObject([{ aliases: "mdb,ns", ip: "192.168.1.254", room: "pasteur" }])

      const before = yield* dumpDatabase
      expect(yield* run(wrong, ["add", "--hostname", "evil", "--mac", "66:66:66:66:66:66"])).toBe(2)
      expect(yield* run(good, ["add", "--hostname", "x", "--mac", "11:22:33:44:55:66"])).toBe(2)
      expect(yield* run(good, ["update", "nope", "--rfs", "1"])).toBe(2)
      expect(yield* run(good, ["list", "bogus"])).toBe(2)
      expect(yield* dumpDatabase).toEqual(before)

      expect(yield* run(good, ["update", "gw", "--mac", "AA:AA:AA:AA:AA:AA", "--faulty", "fan"])).toBe(0)
      expect(yield* mdb.query({ hostname: "gw" })).toMatchObject([{ mac: "aa:aa:aa:aa:aa:aa", is_faulty: true, is_faulty_details: "fan" }])
      expect(yield* run(good, ["switch-add", "--name", "sw1", "--chassis", "00:11:22:33:44:55", "--room", "alt", "--rfs", "1"])).toBe(0)
      expect(yield* mdb.switches({})).toEqual([{ name: "sw1", chassis: "00:11:22:33:44:55", room: "alt", rfs: 1, hfs: 0 }])
      expect(yield* run(good, ["set", "allow_self_registration", "false"])).toBe(0)
      expect(yield* mdb.settings).toEqual([{ key: "allow_self_registration", value: false }])
      // Reads need no secret.
      expect(yield* run(wrong, ["list", "mtype=service"])).toBe(0)
      expect(yield* run(good, ["del", "gw"])).toBe(0)
      expect(yield* mdb.query({})).toEqual([])
    }).pipe(Effect.scoped, Effect.provide(Host))
  )
})
