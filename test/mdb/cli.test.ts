import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { mdbCommand } from "../../src/actors/mdb/cli.js"
import { table } from "../../src/runtime/cli-table.js"
import { Mdb } from "../../src/actors/mdb/service.js"
import { runCommand, secretConfigDir } from "../support/cli.js"
import { dumpDatabase } from "../support/pg-dump.js"
import { MdbHostTest } from "./support.js"

const SECRET = "cli-test-secret"

const Host = MdbHostTest(SECRET)

const configDir = (secret: string) => secretConfigDir("mdb-server", secret)

/** Runs `prolo mdb <args>` in-process; returns the exit status it set (0 when untouched). */
const run = (config: string, args: ReadonlyArray<string>) => runCommand(mdbCommand, "prolo mdb", config, args)

describe("prolo mdb", () => {
  it("prints aligned tables", () => {
    expect(table(["A", "LONG HEADER", "C"], [["xyz", "1", "tail"], ["", "22", ""]])).toBe(
      ["A    LONG HEADER  C", "xyz  1            tail", "     22"].join("\n")
    )
    // Issue 16 item 12: padded by display width, not UTF-16 length: a combining accent (René
    // written e + U+0301) takes no column, a CJK character two.
    expect(table(["LOGIN", "NAME", "HOST"], [["rene", "Rene\u0301", "h1"], ["wang", "王小明", "h2"], ["bob", "Bob", "h3"]])).toBe(
      ["LOGIN  NAME    HOST", "rene   Rene\u0301    h1", "wang   王小明  h2", "bob    Bob     h3"].join("\n")
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
