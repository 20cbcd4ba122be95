import { SqlClient } from "@effect/sql"
import { describe, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { Udb } from "../../src/actors/udb/service.js"
import type { NewUser } from "../../src/protocols/udb.js"
import { ChangeLog } from "../../src/store/change-log.js"
import { resetUdb, UdbTest } from "./support.js"

const newUser = (login: string, group: NewUser["group"] = "user", over: Partial<NewUser> = {}): NewUser => ({
  login,
  firstname: "First",
  lastname: login,
  group,
  ...over
})

describe("UDB service on PostgreSQL", () => {
  layer(UdbTest)((it) => {
    it.effect("allocates the first uid of each group's pool on a fresh database", () =>
      Effect.gen(function* () {
        yield* resetUdb
        const udb = yield* Udb
        const u = yield* udb.create(newUser("contestant"))
        const o = yield* udb.create(newUser("organizer", "orga"))
        const r = yield* udb.create(newUser("admin", "root"))
        expect([u.uid, o.uid, r.uid]).toEqual([10001, 11001, 12001])
        expect(u.password).toMatch(/^[a-zA-Z0-9]{8}$/)
        expect(u.shell).toBe("/bin/bash")
      })
    )

    it.effect("concurrent creates never share a uid", () =>
      Effect.gen(function* () {
        yield* resetUdb
        const udb = yield* Udb
        const users = yield* Effect.forEach(
          Array.from({ length: 30 }, (_, i) => i),
          (i) => udb.create(newUser(`c${i}`, i % 3 === 0 ? "orga" : "user")),
          { concurrency: "unbounded" }
        )
        const uids = users.map((u) => u.uid)
        expect(new Set(uids).size).toBe(30)
        expect(uids.filter((uid) => uid < 11000).sort()).toEqual(Array.from({ length: 20 }, (_, i) => 10001 + i))
        expect(uids.filter((uid) => uid >= 11000).sort()).toEqual(Array.from({ length: 10 }, (_, i) => 11001 + i))
      })
    )

    it.effect("a used-up pool is a clear error and never spills into the next range", () =>
      Effect.gen(function* () {
        yield* resetUdb
        const sql = yield* SqlClient.SqlClient
        const udb = yield* Udb
        // 997 contestants already allocated: two uids left, 10998 and 10999.
        yield* sql`UPDATE udb_uid_pool SET last = 997 WHERE user_group = 'user'`
        expect((yield* udb.create(newUser("a998"))).uid).toBe(10998)
        expect((yield* udb.create(newUser("a999"))).uid).toBe(10999)
        const error = yield* Effect.flip(udb.create(newUser("a1000")))
        expect(error._tag).toBe("UidPoolExhausted")
        expect(error.message).toBe(
          "no uid left for group user: its pool 10001-10999 is used up (uids of deleted users are not reused)"
        )
        expect(yield* udb.query({ login: "a1000" })).toEqual([])
        // orga still starts at 11001.
        expect((yield* udb.create(newUser("o1", "orga"))).uid).toBe(11001)
      })
    )

    it.effect("a deleted user's uid is not handed out again", () =>
      Effect.gen(function* () {
        yield* resetUdb
        const udb = yield* Udb
        yield* udb.create(newUser("first"))
        yield* udb.remove("first")
        expect((yield* udb.create(newUser("second"))).uid).toBe(10002)
      })
    )

    it.effect("refuses logins of system accounts, duplicates, bad logins and bad fields, changing nothing", () =>
      Effect.gen(function* () {
        yield* resetUdb
        const udb = yield* Udb
        const system = yield* Effect.flip(udb.create(newUser("http")))
        expect(system.message).toBe("Username http is associated with uid 33, which is likely a system-managed user.")
        yield* udb.create(newUser("jdoe"))
        expect((yield* Effect.flip(udb.create(newUser("jdoe"))))._tag).toBe("UserExists")
        const shell = yield* Effect.flip(udb.create(newUser("x1", "user", { shell: "bash" })))
        expect(shell.message).toBe('x1: shell must be an absolute path without spaces or \':\', got "bash"')
        const name = yield* Effect.flip(udb.create(newUser("x2", "user", { firstname: "a:b" })))
        expect(name._tag).toBe("InvalidUser")
        expect((yield* udb.queryPrivate({})).map((u) => u.login)).toEqual(["jdoe"])
        // The uid pool did not move for the refused ones.
        expect((yield* udb.create(newUser("next"))).uid).toBe(10002)
      })
    )

    it.effect("query hides passwords, query_private shows them; filters as the original", () =>
      Effect.gen(function* () {
        yield* resetUdb
        const udb = yield* Udb
        yield* udb.create(newUser("alice", "user", { password: "pa", ssh_key: "ssh-ed25519 AAAA alice" }))
        yield* udb.create(newUser("bob", "orga", { password: "pb", shell: "/bin/zsh" }))
        yield* udb.create(newUser("carol", "root", { password: "pc" }))
        const pub = yield* udb.query({})
        expect(pub.map((u) => u.login)).toEqual(["bob", "carol", "alice"]) // group, then login
        for (const u of pub) expect(Object.keys(u)).not.toContain("password")
        const priv = yield* udb.queryPrivate({ login: "alice" })
        expect(priv).toEqual([
          { id: priv[0]!.id, login: "alice", firstname: "First", lastname: "alice", uid: 10001, group: "user", password: "pa", shell: "/bin/bash", ssh_key: "ssh-ed25519 AAAA alice" }
        ])
        const logins = (f: Record<string, unknown>) => Effect.map(udb.query(f), (us) => us.map((u) => u.login))
        expect(yield* logins({ uid__gte: 11000 })).toEqual(["bob", "carol"])
        expect(yield* logins({ uid__gte: "11000" })).toEqual(["bob", "carol"]) // prolorpc sends strings
        expect(yield* logins({ group: "root" })).toEqual(["carol"])
        expect(yield* logins({ group__in: ["root", "user"] })).toEqual(["carol", "alice"])
        expect(yield* logins({ group__in: "orga,root" })).toEqual(["bob", "carol"])
        expect(yield* logins({ shell: "/bin/zsh" })).toEqual(["bob"])
        expect(yield* logins({ ssh_key__contains: "AAAA" })).toEqual(["alice"])
        expect(yield* logins({ ssh_key__isnull: true })).toEqual(["bob", "carol"])
        expect(yield* logins({ ssh_key: null })).toEqual(["bob", "carol"]) // Django's exact=None
        expect(yield* logins({ login__regex: "^(a|c)" })).toEqual(["carol", "alice"])
        expect(yield* logins({ login__istartswith: "B" })).toEqual(["bob"])
        expect(yield* logins({ login__endswith: "ol" })).toEqual(["carol"])
        expect(yield* logins({ id: priv[0]!.id })).toEqual(["alice"])
        expect(yield* logins({ group__in: [] })).toEqual([])
      })
    )

    it.effect("rejects bad filters with the offending key", () =>
      Effect.gen(function* () {
        const udb = yield* Udb
        const cases: ReadonlyArray<[Record<string, unknown>, string]> = [
          [{ password: "x" }, "'password' is not a valid query argument (fields: login, uid, group, shell, ssh_key, id)"],
          [{ login__like: "x" }, "'login__like': lookup 'like' is not supported on text field 'login' (use exact, iexact, contains, icontains, in, startswith, istartswith, endswith, iendswith, regex, iregex, gt, gte, lt, lte, isnull)"],
          [{ uid: "abc" }, "'uid' must be an integer, got \"abc\""],
          [{ uid__contains: "1" }, "'uid__contains': lookup 'contains' is not supported on int field 'uid' (use exact, in, gt, gte, lt, lte, isnull)"],
          [{ login__in: 3 }, "'login__in' needs a list of values (or a comma-separated string), got 3"],
          [{ login__regex: "(" }, "'login__regex': invalid regular expression \"(\""],
          [{ ssh_key__isnull: "maybe" }, "'ssh_key__isnull' must be true or false, got \"maybe\""]
        ]
        for (const [filters, message] of cases) {
          const e = yield* Effect.flip(udb.query(filters))
          expect(e).toMatchObject({ _tag: "InvalidFilter", key: Object.keys(filters)[0], message })
        }
      })
    )

    it.effect("every change appends to the udb change log in its transaction", () =>
      Effect.gen(function* () {
        yield* resetUdb
        const udb = yield* Udb
        const log = yield* ChangeLog
        const before = yield* log.head("udb")
        yield* udb.create(newUser("dave", "user", { password: "one" }))
        yield* udb.setPassword("dave", "two")
        yield* udb.setSshKey("dave", "  ssh-rsa AAAA dave \n")
        yield* udb.remove("dave")
        yield* Effect.flip(udb.create(newUser("http"))) // refused: no revision
        const batches = yield* log.readSince("udb", before, 100)
        expect(batches.map((b) => b.entries.map((e) => [e.op, e.key, e.record["password"], e.record["ssh_key"]]))).toEqual([
          [["update", "dave", "one", null]],
          [["update", "dave", "two", null]],
          [["update", "dave", "two", "ssh-rsa AAAA dave"]],
          [["delete", "dave", "two", "ssh-rsa AAAA dave"]]
        ])
        const snapshot = yield* log.snapshot("udb")
        expect(snapshot.records.find((r) => r.key === "dave")).toBeUndefined()
      })
    )

    it.effect("update keeps uid and login, validates, and fails clearly on unknown logins", () =>
      Effect.gen(function* () {
        yield* resetUdb
        const udb = yield* Udb
        const created = yield* udb.create(newUser("eve"))
        const moved = yield* udb.update("eve", { group: "orga", firstname: "Eva" })
        expect(moved).toMatchObject({ uid: created.uid, login: "eve", group: "orga", firstname: "Eva" })
        expect((yield* Effect.flip(udb.update("nobody_here", { firstname: "X" }))).message).toBe("no user nobody_here")
        const bad = yield* Effect.flip(udb.update("eve", { password: "" }))
        expect(bad.message).toBe("eve: password is empty")
      })
    )
  })
})
