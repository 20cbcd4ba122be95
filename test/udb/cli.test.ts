import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { vi } from "vitest"
import { progressLine, pwdsheetLines, udbCommand } from "../../src/actors/udb/cli.js"
import { runCommand, secretConfigDir } from "../support/cli.js"
import { UdbHostTest } from "./support.js"

const SECRET = "cli-udb-secret"

const Host = UdbHostTest(SECRET)

const workDir = (secret: string) => secretConfigDir("udb-client-auth", secret)

/** Runs `prolo udb <args>` in-process; returns its exit status and what it printed. */
const run = (config: string, args: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const out: Array<string> = []
    const err: Array<string> = []
    const log = vi.spyOn(console, "log").mockImplementation((...a: Array<unknown>) => void out.push(a.join(" ")))
    const error = vi.spyOn(console, "error").mockImplementation((...a: Array<unknown>) => void err.push(a.join(" ")))
    const code = yield* runCommand(udbCommand, "prolo udb", config, args).pipe(
      Effect.ensuring(Effect.sync(() => (log.mockRestore(), error.mockRestore())))
    )
    return { code, out: out.join("\n"), err: err.join("\n") }
  })

describe("prolo udb", () => {
  it("formats password sheets and progress", () => {
    expect(
      pwdsheetLines([
        { firstname: "Zoé", lastname: "Zed", login: "zzed", password: "p2" },
        { firstname: "Jean-Pierre", lastname: "De La Fontaine", login: "jpdelafontai", password: "p1" }
      ])
    ).toBe("Jean-Pierre De La Fontaine\tjpdelafontai\tp1\nZoé Zed\tzzed\tp2")
    expect(progressLine(500, 1000)).toBe(`\rimporting [${"#".repeat(15)}${" ".repeat(15)}] 500/1000`)
  })

  it.live("imports, prints password sheets, usermod, lists; errors exit 2 with one line", () =>
    Effect.gen(function* () {
      const dir = yield* workDir(SECRET)
      const names = path.join(dir, "finalistes.txt")
      yield* Effect.promise(() => fs.writeFile(names, "Jean-Pierre\tDe La Fontaine\nJean-Paul\tDelafontaine\n"))
      const imported = yield* run(dir, ["import", "--file", names])
      expect(imported).toEqual({
        code: 0,
        out: "Added user Jean-Pierre De La Fontaine (login: jpdelafontai)\nAdded user Jean-Paul Delafontaine (login: jpdelafontai1)",
        err: ""
      })
      const again = yield* run(dir, ["import", "--file", names])
      expect(again.code).toBe(2)
      expect(again.err).toBe(
        `prolo udb: ${names}:1: User Jean-Pierre De La Fontaine already in database. Use --update to update it, or --ignore.`
      )

      const roots = path.join(dir, "roots.txt")
      yield* Effect.promise(() => fs.writeFile(roots, "alice:Alice-pw1\n"))
      expect((yield* run(dir, ["import", "--logins", "--passwords", "--type", "root", "--file", roots])).out).toBe(
        "Added user Alice Alice (login: alice)"
      )
      expect((yield* run(dir, ["import", "--passwords", "--file", roots])).err).toBe(
        "prolo udb: --passwords needs --logins (lines login:password)"
      )

      const sheet = yield* run(dir, ["pwdsheet", "--type", "root"])
      expect(sheet.out).toBe("Alice Alice\talice\tAlice-pw1")
      const users = (yield* run(dir, ["pwdsheet"])).out.split("\n")
      expect(users.map((l) => l.split("\t").slice(0, 2).join("\t"))).toEqual([
        "Jean-Paul Delafontaine\tjpdelafontai1",
        "Jean-Pierre De La Fontaine\tjpdelafontai"
      ].sort((a, b) => (a.split("\t")[1]! < b.split("\t")[1]! ? -1 : 1)))

      const key = path.join(dir, "id.pub")
      yield* Effect.promise(() => fs.writeFile(key, "ssh-ed25519 AAAAC3 alice@laptop\n\n"))
      const mod = yield* run(dir, ["usermod", "alice", "--ssh-pubkey-file", key, "--password", "n3w-pass"])
      expect(mod.out).toBe("Set public ssh key of alice to ssh-ed25519 AAAAC3 alice@laptop\nChanged password of alice to n3w-pass")
      expect((yield* run(dir, ["usermod", "nobody_here", "--password", "x"])).err).toBe("prolo udb: no user nobody_here")

      const list = yield* run(dir, ["list", "group=root"])
      expect(list.out).toBe(["UID    LOGIN  GROUP  FIRSTNAME  LASTNAME  SHELL      SSH KEY", "12001  alice  root   Alice      Alice     /bin/bash  yes"].join("\n"))
      expect((yield* run(dir, ["list", "password=x"])).err).toContain("prolo udb: 'password' is not a valid query argument")

      const wrong = yield* workDir("not-the-secret")
      const refused = yield* run(wrong, ["pwdsheet"])
      expect(refused.code).toBe(2)
      expect(refused.err).toContain(`is shared_secret in ${wrong}/udb-client-auth.yml the node's?`)

      const json = path.join(dir, "users.json")
      yield* Effect.promise(() => fs.writeFile(json, JSON.stringify([{ id: 77, username: "jsonu", first_name: "js", last_name: "on" }])))
      expect((yield* run(dir, ["json-import", json, "--type", "orga"])).out).toBe(
        "Adding orga       77 jsonu                On                   Js\nAll users added successfully."
      )
    }).pipe(Effect.scoped, Effect.provide(Host))
  )

  it.live("a 1000-line import shows progress on a terminal only", () =>
    Effect.gen(function* () {
      const dir = yield* workDir(SECRET)
      const file = path.join(dir, "big.txt")
      const letters = "abcdefghijklmnopqrstuvwxyz"
      // 999 people (the whole contestant uid pool) and a trailing blank line: 1000 lines.
      const lines = Array.from({ length: 999 }, (_, i) => `First${letters[i % 26]}\tLast${letters[Math.floor(i / 26) % 26]}${letters[i % 7]}`)
      yield* Effect.promise(() => fs.writeFile(file, `${lines.join("\n")}\n\n`))
      const written: Array<string> = []
      const write = vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => (written.push(String(chunk)), true))
      const tty = Object.getOwnPropertyDescriptor(process.stderr, "isTTY")
      Object.defineProperty(process.stderr, "isTTY", { value: true, configurable: true })
      const result = yield* run(dir, ["import", "--file", file]).pipe(
        Effect.ensuring(
          Effect.sync(() => {
            write.mockRestore()
            if (tty === undefined) delete (process.stderr as { isTTY?: boolean }).isTTY
            else Object.defineProperty(process.stderr, "isTTY", tty)
          })
        )
      )
      expect(result.err).toBe("")
      expect(result.code).toBe(0)
      expect(result.out.split("\n")).toHaveLength(999)
      const progress = written.filter((w) => w.startsWith("\rimporting"))
      expect(progress.length).toBeGreaterThanOrEqual(10)
      expect(progress[progress.length - 1]).toBe(progressLine(999, 999))

      // Not a terminal: no progress at all.
      const quiet: Array<string> = []
      const write2 = vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => (quiet.push(String(chunk)), true))
      const file2 = path.join(dir, "small.txt")
      yield* Effect.promise(() => fs.writeFile(file2, "Quiet\tPerson\n"))
      const small = yield* run(dir, ["import", "--type", "orga", "--file", file2]).pipe(Effect.ensuring(Effect.sync(() => write2.mockRestore())))
      expect(small.out).toBe("Added user Quiet Person (login: qperson)")
      expect(quiet.filter((w) => w.includes("importing"))).toEqual([])
    }).pipe(Effect.scoped, Effect.provide(Host))
  )

  // Issue 16 item 10: a Latin-1 file was stored as `Ren\uFFFD`; a name given twice silently became
  // bmartin and bmartin1.
  it.live("refuses a file that is not UTF-8 with its line, imports nothing; says when a name comes twice", () =>
    Effect.gen(function* () {
      const dir = yield* workDir(SECRET)
      const latin1 = path.join(dir, "latin1.txt")
      yield* Effect.promise(() => fs.writeFile(latin1, Buffer.from("Anne\tMarie\nRen\xe9\tMartin\n", "latin1")))
      const refused = yield* run(dir, ["import", "--file", latin1])
      expect(refused).toEqual({
        code: 2,
        out: "",
        err: `prolo udb: ${latin1}:2: not UTF-8 (byte 0xe9 at column 4); convert the file first, e.g. iconv -f latin1 -t utf-8`
      })
      expect((yield* run(dir, ["pwdsheet"])).out).toBe("")

      const twice = path.join(dir, "twice.txt")
      yield* Effect.promise(() => fs.writeFile(twice, "Bernard\tMartin\nRené\tMartin\nbernard\tMARTIN\n"))
      expect((yield* run(dir, ["import", "--file", twice])).out).toBe(
        [
          "Added user Bernard Martin (login: bmartin)",
          "Added user René Martin (login: rmartin)",
          "Added user Bernard Martin (login: bmartin1) -- same name as line 1 (login: bmartin): two people, or a line given twice?"
        ].join("\n")
      )
    }).pipe(Effect.scoped, Effect.provide(Host))
  )
})
