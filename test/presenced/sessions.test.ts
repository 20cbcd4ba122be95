import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { machineName } from "../../src/actors/presenced/hostname.js"
import { type CommandRunner, pamSessionUsers, parseLoginctlJson, parsePasswd, parseWhoQ, systemSessions } from "../../src/actors/presenced/sessions.js"
import { encodePamSession } from "../../src/protocols/pam-session.js"

const loginctlJson = JSON.stringify([
  { session: "1", uid: 0, user: "root", seat: null, tty: "tty1" },
  { session: "3", uid: 10004, user: "alice", seat: "seat0", tty: "tty2" },
  { session: "5", uid: 10004, user: "alice", seat: null, tty: "pts/0" },
  { session: "6", uid: 11002, user: "olga", seat: null, tty: "pts/1" },
  { session: "7", uid: 20000, user: "outside", seat: null, tty: "pts/2" },
  { session: "8", uid: 9999, user: "below", seat: null, tty: "pts/3" }
])

const passwd = [
  "root:x:0:0:root:/root:/bin/bash",
  "alice:x:10004:10000:Alice:/home/alice:/bin/bash",
  "olga:x:11002:10000:Olga:/home/olga:/bin/bash",
  "broken line",
  "presenced:x:990:990::/:/usr/bin/nologin"
].join("\n")

const runner =
  (answers: Record<string, string | { error: string }>): CommandRunner =>
  (command) => {
    const answer = answers[command]
    if (answer === undefined) return Effect.fail(`${command}: not found`)
    return typeof answer === "string" ? Effect.succeed(answer) : Effect.fail(answer.error)
  }

describe("presenced sessions", () => {
  it("machineName drops the last dot-component only", () => {
    expect(machineName("pas-r01p01.prolo")).toBe("pas-r01p01")
    expect(machineName("a.b.c")).toBe("a.b")
    expect(machineName("gw")).toBe("gw")
    expect(machineName("gw\n")).toBe("gw")
  })

  it("parses loginctl JSON and refuses what is not its shape", () => {
    expect(Either.getOrThrow(parseLoginctlJson(loginctlJson)).length).toBe(6)
    expect(Either.isLeft(parseLoginctlJson("SESSION UID USER"))).toBe(true)
    expect(Either.isLeft(parseLoginctlJson('{"a":1}'))).toBe(true)
    expect(Either.isLeft(parseLoginctlJson('[{"user":"x"}]'))).toBe(true)
  })

  it("parses who -q (first line only) and passwd", () => {
    expect(parseWhoQ("alice root alice\n# users=3\n")).toEqual(["alice", "root", "alice"])
    expect(parseWhoQ("")).toEqual([])
    expect(parsePasswd(passwd).get("alice")).toBe(10004)
    expect(parsePasswd(passwd).has("broken line")).toBe(false)
  })

  it.effect("loginctl: every Prologin user (uid 10000-19999), once each, sorted", () =>
    Effect.gen(function* () {
      const source = systemSessions({ run: runner({ loginctl: loginctlJson, who: "root\n" }) })
      expect(yield* source.users).toEqual(["alice", "olga"])
    })
  )

  it.effect("falls back to who + passwd when loginctl fails; both failing is a clear error", () =>
    Effect.gen(function* () {
      const dir = mkdtempSync(path.join(os.tmpdir(), "presenced-"))
      try {
        const file = path.join(dir, "passwd")
        writeFileSync(file, passwd)
        const who = systemSessions({ run: runner({ loginctl: { error: "loginctl: not found" }, who: "alice root olga alice\n# users=4\n" }), passwdFile: file })
        expect(yield* who.users).toEqual(["alice", "olga"])
        const garbled = systemSessions({ run: runner({ loginctl: "garbage", who: "alice\n" }), passwdFile: file })
        expect(yield* garbled.users).toEqual(["alice"])
        const none = systemSessions({ run: runner({}), passwdFile: file })
        const e = yield* Effect.flip(none.users)
        expect(e.message).toContain("cannot list sessions: loginctl: not found; fallback: who: not found")
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    })
  )
})

describe("presenced: users prolo-pam holds a home for", () => {
  const session = (login: string, uid: number) =>
    encodePamSession({ login, hostname: "pas-r01p01", uid, gid: 10000, grant: null, attachment: null, mountpoint: null })

  it.effect("every well-formed session file of a contest user counts, beside loginctl's sessions", () =>
    Effect.gen(function* () {
      const dir = mkdtempSync(path.join(os.tmpdir(), "presenced-pam-"))
      try {
        writeFileSync(path.join(dir, "carol"), session("carol", 10007))
        writeFileSync(path.join(dir, "mallory"), session("alice", 10001)) // file name and login disagree
        writeFileSync(path.join(dir, "root"), session("root", 0)) // not a contest uid
        writeFileSync(path.join(dir, "broken"), "{not json")
        expect(yield* pamSessionUsers(dir)).toEqual(["carol"])
        expect(yield* pamSessionUsers(path.join(dir, "missing"))).toEqual([])
        const source = systemSessions({ run: runner({ loginctl: loginctlJson, who: "" }), pamStateDir: dir })
        expect(yield* source.users).toEqual(["alice", "carol", "olga"])
      } finally {
        rmSync(dir, { recursive: true, force: true })
      }
    })
  )
})
