import { SqlClient } from "@effect/sql"
import { describe, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { importJson, importUsers } from "../../src/actors/udb/import.js"
import type { ImportOptions } from "../../src/actors/udb/import-plan.js"
import { Udb } from "../../src/actors/udb/service.js"
import { ChangeLog } from "../../src/store/change-log.js"
import { resetUdb, UdbTest } from "./support.js"

const names: ImportOptions["format"] = { kind: "names" }
const opts = (over: Partial<ImportOptions & { passwordLength: number }> = {}) => ({
  format: names,
  group: "user" as const,
  update: false,
  ignore: false,
  newPasswords: false,
  passwordLength: 8,
  ...over
})

const logins = Effect.flatMap(Udb, (udb) => udb.queryPrivate({})).pipe(
  Effect.map((us) => us.map((u) => u.login).sort())
)

describe("prolo udb import on PostgreSQL", () => {
  layer(UdbTest)((it) => {
    it.effect("generates logins as the original, de-duplicating within the file", () =>
      Effect.gen(function* () {
        yield* resetUdb
        const out = yield* importUsers(
          "finalistes.txt",
          "Jean-Pierre\tDe La Fontaine\n\nJean-Paul\tDelafontaine\n  \nMarie Anne\t  dupont  \nR\tOot\n",
          opts()
        )
        expect(out).toEqual([
          "Added user Jean-Pierre De La Fontaine (login: jpdelafontai)",
          "Added user Jean-Paul Delafontaine (login: jpdelafontai1)",
          "Added user Marie Anne Dupont (login: madupont)",
          "Added user R Oot (login: root1)"
        ])
        const users = yield* Effect.flatMap(Udb, (udb) => udb.queryPrivate({}))
        expect(users.map((u) => [u.login, u.uid, u.group])).toEqual([
          ["jpdelafontai", 10001, "user"],
          ["jpdelafontai1", 10002, "user"],
          ["madupont", 10003, "user"],
          ["root1", 10004, "user"]
        ])
        for (const u of users) expect(u.password).toMatch(/^[A-Za-z0-9]{8}$/)
      })
    )

    it.effect("avoids logins of other people already in the database and of system accounts", () =>
      Effect.gen(function* () {
        yield* resetUdb
        yield* importUsers("a.txt", "Jean\tDoe\n", opts())
        // Another J. Doe: jdoe is someone else's; Hugo Ttp would be `http`, a system account.
        const out = yield* importUsers("b.txt", "Julie\tDoe\nHugo\tTtp\n", opts())
        expect(out).toEqual(["Added user Julie Doe (login: jdoe1)", "Added user Hugo Ttp (login: http1)"])
      })
    )

    it.effect("refuses an existing person without --update/--ignore, importing nothing", () =>
      Effect.gen(function* () {
        yield* resetUdb
        yield* importUsers("a.txt", "Jean\tDoe\n", opts())
        const e = yield* Effect.flip(importUsers("b.txt", "Ann\tNew\nJean\tDoe\n", opts()))
        expect(e.message).toBe("b.txt:2: User Jean Doe already in database. Use --update to update it, or --ignore.")
        expect(yield* logins).toEqual(["jdoe"])
      })
    )

    it.effect("--update keeps existing passwords unless --new-passwords; --ignore skips", () =>
      Effect.gen(function* () {
        yield* resetUdb
        const udb = yield* Udb
        yield* importUsers("a.txt", "Jean\tDoe\n", opts())
        const [before] = yield* udb.queryPrivate({ login: "jdoe" })
        const updated = yield* importUsers("a.txt", "jean\tDOE\nAnn\tNew\n", opts({ update: true, group: "orga" }))
        expect(updated).toEqual(["Updated user Jean Doe (login: jdoe)", "Added user Ann New (login: anew)"])
        const [after] = yield* udb.queryPrivate({ login: "jdoe" })
        expect(after).toMatchObject({ password: before!.password, uid: before!.uid, group: "orga" })
        yield* importUsers("a.txt", "Jean\tDoe\n", opts({ update: true, newPasswords: true, passwordLength: 12 }))
        const [renewed] = yield* udb.queryPrivate({ login: "jdoe" })
        expect(renewed!.password).toHaveLength(12)
        const ignored = yield* importUsers("a.txt", "Jean\tDoe\nBob\tBee\n", opts({ ignore: true }))
        expect(ignored).toEqual(["(Ignored user Jean Doe (login: jdoe))", "Added user Bob Bee (login: bbee)"])
        expect((yield* udb.queryPrivate({ login: "jdoe" }))[0]!.password).toBe(renewed!.password)
      })
    )

    it.effect("--logins --passwords for organisers and roots", () =>
      Effect.gen(function* () {
        yield* resetUdb
        const out = yield* importUsers(
          "roots.txt",
          "alice:S3cret:with:colons\nBob:pw2\n",
          opts({ format: { kind: "logins", passwords: true }, group: "root" })
        )
        expect(out).toEqual(["Added user Alice Alice (login: alice)", "Added user Bob Bob (login: bob)"])
        const users = yield* Effect.flatMap(Udb, (udb) => udb.queryPrivate({}))
        expect(users.map((u) => [u.login, u.password, u.uid, u.group])).toEqual([
          ["alice", "S3cret:with:colons", 12001, "root"],
          ["bob", "pw2", 12002, "root"]
        ])
        const orgas = yield* importUsers("orgas.txt", "carol\n", opts({ format: { kind: "logins", passwords: false }, group: "orga", passwordLength: 10 }))
        expect(orgas).toEqual(["Added user Carol Carol (login: carol)"])
        const [carol] = yield* Effect.flatMap(Udb, (udb) => udb.queryPrivate({ login: "carol" }))
        expect(carol!.password).toHaveLength(10)
      })
    )

    it.effect.each([
      ["a.txt", "Jean\tDoe\nno tab here\n", names, "a.txt:2: expected \"First name<TAB>Last name\" (exactly one TAB), got 0 TABs"],
      ["a.txt", "Jean\tDoe\tX\n", names, "a.txt:1: expected \"First name<TAB>Last name\" (exactly one TAB), got 2 TABs"],
      ["a.txt", "\n\nJean\t   \n", names, "a.txt:3: empty first or last name"],
      ["a.txt", "李\t王\n", names, "a.txt:1: cannot make a login from \"李 王\" (no latin letters)"],
      ["a.txt", "Jean\tDo:e\n", names, "a.txt:1: jdoe: lastname contains ':', a tab or a line break"],
      ["l.txt", "good\nBad Login\n", { kind: "logins", passwords: false }, "l.txt:2: invalid login \"Bad Login\": expected 1 to 31 characters a-z, 0-9, _ (not starting with a digit)"],
      ["l.txt", "good\nroot\n", { kind: "logins", passwords: false }, "l.txt:2: the login \"root\" is reserved"],
      ["l.txt", "good\nhttp\n", { kind: "logins", passwords: false }, "l.txt:2: Username http is associated with uid 33, which is likely a system-managed user."],
      ["l.txt", "good\nGood\n", { kind: "logins", passwords: false }, "l.txt:2: login good already given on line 1"],
      ["l.txt", "good:pw\nnopassword\n", { kind: "logins", passwords: true }, "l.txt:2: expected \"login:password\""]
    ] as const)("refuses malformed input %s %j, importing nothing", ([file, text, format, message]) =>
      Effect.gen(function* () {
        yield* resetUdb
        const e = yield* Effect.flip(importUsers(file, text, opts({ format })))
        expect(e._tag).toBe("ImportFileError")
        expect(e.message).toBe(message)
        expect(yield* logins).toEqual([])
      })
    )

    it.effect("a failure in the middle of the transaction rolls the whole file back", () =>
      Effect.gen(function* () {
        yield* resetUdb
        const sql = yield* SqlClient.SqlClient
        yield* sql`UPDATE udb_uid_pool SET max_uid = base + 2 WHERE user_group = 'user'`
        const log = yield* ChangeLog
        const head = yield* log.head("udb")
        const e = yield* Effect.flip(importUsers("a.txt", "A\tOne\nB\tTwo\nC\tThree\n", opts()))
        expect(e._tag).toBe("UidPoolExhausted")
        expect(yield* logins).toEqual([])
        expect(yield* log.head("udb")).toBe(head)
        yield* sql`UPDATE udb_uid_pool SET max_uid = base + 999 WHERE user_group = 'user'`
        // The pool counter was rolled back too.
        yield* importUsers("a.txt", "A\tOne\n", opts())
        const [one] = yield* Effect.flatMap(Udb, (udb) => udb.queryPrivate({}))
        expect(one!.uid).toBe(10001)
      })
    )

    it.effect("publishes a whole import as one change-log revision", () =>
      Effect.gen(function* () {
        yield* resetUdb
        const log = yield* ChangeLog
        const head = yield* log.head("udb")
        const ticks: Array<[number, number]> = []
        yield* importUsers("a.txt", "A\tOne\nB\tTwo\nC\tThree\n", opts(), (done, total) => Effect.sync(() => void ticks.push([done, total])))
        const batches = yield* log.readSince("udb", head, 10)
        expect(batches.map((b) => b.entries.map((e) => e.key))).toEqual([["aone", "btwo", "cthree"]])
        expect(ticks).toEqual([[3, 3]])
      })
    )

    it.effect("refuses --pwdlen out of range and --update with --ignore", () =>
      Effect.gen(function* () {
        expect((yield* Effect.flip(importUsers("a.txt", "A\tB\n", opts({ passwordLength: 1 })))).message).toBe(
          "--pwdlen must be an integer from 2 to 64, got 1"
        )
        expect((yield* Effect.flip(importUsers("a.txt", "A\tB\n", opts({ update: true, ignore: true })))).message).toBe(
          "--update and --ignore exclude each other"
        )
      })
    )

    it.effect("json-import keeps ids, title-cases names, refuses taken ids or logins", () =>
      Effect.gen(function* () {
        yield* resetUdb
        const text = JSON.stringify([
          { id: 40, username: "jdoe", first_name: "john", last_name: "DOE", password: "pw" },
          { id: 41, username: "asmith", first_name: "ann", last_name: "smith" }
        ])
        const out = yield* importJson("users.json", text, { group: "user", passwordLength: 8 })
        expect(out).toEqual([
          "Adding user       40 jdoe                 Doe                  John",
          "Adding user       41 asmith               Smith                Ann",
          "All users added successfully."
        ])
        const users = yield* Effect.flatMap(Udb, (udb) => udb.queryPrivate({}))
        expect(users.map((u) => [u.id, u.login, u.password.length])).toEqual([
          [41, "asmith", 8],
          [40, "jdoe", 2]
        ])
        // The id sequence moved past the imported ids.
        const created = yield* Effect.flatMap(Udb, (udb) => udb.create({ login: "later", firstname: "L", lastname: "L", group: "user" }))
        expect(created.id).toBeGreaterThan(41)
        const again = yield* Effect.flip(importJson("users.json", JSON.stringify([{ id: 40, username: "other", first_name: "a", last_name: "b" }]), { group: "user", passwordLength: 8 }))
        expect(again.message).toBe("users.json: [0]: id 40 already in use")
        const bad = yield* Effect.flip(importJson("users.json", JSON.stringify([{ id: 50, username: "Bad Login", first_name: "a", last_name: "b" }]), { group: "user", passwordLength: 8 }))
        expect(bad.message.startsWith("users.json: [0]: expected {id, username, first_name, last_name, password?}")).toBe(true)
        expect((yield* Effect.flip(importJson("users.json", "{", { group: "user", passwordLength: 8 }))).message.startsWith("users.json: not JSON")).toBe(true)
      })
    )
  })
})
