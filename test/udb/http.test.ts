import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Redacted, Stream } from "effect"
import { UdbRpcs } from "../../src/protocols/udb.js"
import { callMessage } from "../../src/runtime/call-compat.js"
import { generate, generateOriginal } from "../../src/runtime/timeauth.js"
import { call, rpcClient } from "../support/http.js"
import { UdbHostTest } from "./support.js"

const SECRET = "test-udb-secret"

// The UDB routes on a real HTTP server on 127.0.0.1, over a fresh database per test.
const Host = UdbHostTest(SECRET)

const client = (secret?: string) => rpcClient(UdbRpcs, "udb", secret)

const envelope = (exnType: string, message: string) =>
  `{"type": "exception", "exn_type": "${exnType}", "exn_message": ${JSON.stringify(message)}, "exn_traceback": []}\n`

/** An import of `First<TAB>Last` lines into group user, new users only, no passwords given. */
const namesImport = (file: string, text: string) => ({
  file,
  text,
  format: "names" as const,
  passwords: false,
  group: "user" as const,
  passwordLength: 8,
  update: false,
  ignore: false,
  newPasswords: false
})

describe("UDB over HTTP", () => {
  it.live("/udb/call/query is public and never shows passwords; query_private needs the token", () =>
    Effect.gen(function* () {
      expect(yield* call("/udb/call/query")).toEqual({ status: 200, type: "application/json", body: '{"type": "result", "data": []}\n' })
      const admin = yield* client(SECRET)
      yield* admin.createUser({ login: "jdoe", firstname: "Jöhn", lastname: "Doe", group: "user", password: "s3cret" })
      yield* admin.createUser({ login: "boss", firstname: "Big", lastname: "Boss", group: "root", password: "r00t" })

      const pub = yield* call("/udb/call/query")
      expect(pub.body).not.toContain("password")
      expect(pub.body).toContain('"firstname": "J\\u00f6hn"') // Python's json.dumps escaping
      expect(JSON.parse(pub.body).data.map((u: { login: string }) => u.login)).toEqual(["boss", "jdoe"])
      const filtered = yield* call("/udb/call/query", { method: "POST", body: JSON.stringify({ kwargs: { group: "root" } }) })
      expect(JSON.parse(filtered.body).data.map((u: { login: string }) => u.login)).toEqual(["boss"])

      const priv = (body: unknown) => call("/udb/call/query_private", { method: "POST", body: JSON.stringify(body) })
      expect(yield* call("/udb/call/query_private")).toEqual({
        status: 400,
        type: "application/json",
        body: envelope("MissingToken", "query_private")
      })
      // A token signs the path and the arguments (callMessage).
      const signed = (secret: string, path: string, kwargs: Record<string, unknown>) =>
        generate(Redacted.make(secret), callMessage(path, { args: [], kwargs, hmac: undefined }))
      const wrong = yield* signed("not-the-secret", "/udb/call/query_private", {})
      expect((yield* priv({ kwargs: {}, hmac: wrong })).body).toBe(envelope("BadToken", "query_private"))
      expect((yield* priv({ kwargs: {}, hmac: wrong })).status).toBe(403)
      // A token for another method does not open query_private.
      const other = yield* signed(SECRET, "/udb/call/query", {})
      expect((yield* priv({ kwargs: {}, hmac: other })).status).toBe(403)
      // The original's token (over the method name): refused, it would open any arguments.
      expect((yield* priv({ kwargs: {}, hmac: yield* generateOriginal(Redacted.make(SECRET), "query_private") })).status).toBe(403)
      // A token is bound to its arguments: made for jdoe, it does not read boss (nor everyone).
      const good = yield* signed(SECRET, "/udb/call/query_private", { login: "jdoe" })
      expect((yield* priv({ kwargs: { login: "boss" }, hmac: good })).body).toBe(envelope("BadToken", "query_private"))
      expect((yield* priv({ kwargs: {}, hmac: good })).status).toBe(403)
      const ok = yield* priv({ kwargs: { login: "jdoe" }, hmac: good })
      expect(ok.status).toBe(200)
      expect(JSON.parse(ok.body).data).toEqual([
        { id: 1, login: "jdoe", firstname: "Jöhn", lastname: "Doe", uid: 10001, group: "user", password: "s3cret", shell: "/bin/bash", ssh_key: null }
      ])
      // Spent: the same token again is refused.
      expect((yield* priv({ kwargs: { login: "jdoe" }, hmac: good })).body).toBe(envelope("BadToken", "query_private"))
      expect(yield* call("/udb/call/nope")).toEqual({ status: 404, type: "application/json", body: envelope("MethodError", "nope") })
      const badFilter = yield* call("/udb/call/query", { method: "POST", body: JSON.stringify({ kwargs: { password: "x" } }) })
      expect(badFilter.status).toBe(500)
      expect(JSON.parse(badFilter.body)).toMatchObject({ exn_type: "ValueError" })
    }).pipe(Effect.scoped, Effect.provide(Host))
  )

  it.live("rpc: query is public, everything else needs the secret", () =>
    Effect.gen(function* () {
      const anonymous = yield* client()
      expect(yield* anonymous.query({ filters: {} })).toEqual([])
      const refused = yield* Effect.flip(anonymous.query_private({ filters: {} }))
      expect(refused._tag).toBe("Unauthorized")
      const create = yield* Effect.flip(anonymous.createUser({ login: "x", firstname: "X", lastname: "Y", group: "user" }))
      expect(create._tag).toBe("Unauthorized")
      const wrong = yield* client("wrong")
      expect((yield* Effect.flip(wrong.setPassword({ login: "x", password: "p" })))._tag).toBe("Unauthorized")

      const admin = yield* client(SECRET)
      const created = yield* admin.createUser({ login: "ann", firstname: "Ann", lastname: "Lee", group: "orga" })
      expect(created.uid).toBe(11001)
      const withKey = yield* admin.setSshKey({ login: "ann", ssh_key: "ssh-ed25519 AAAA ann" })
      expect(withKey.ssh_key).toBe("ssh-ed25519 AAAA ann")
      const newPw = yield* admin.setPassword({ login: "ann" })
      expect(newPw.password).not.toBe(created.password)
      const [pub] = yield* anonymous.query({ filters: { login: "ann" } })
      expect(pub && "password" in pub).toBe(false)
      const gone = yield* Effect.flip(admin.deleteUser({ login: "nobody_here" }))
      expect(gone._tag).toBe("UserNotFound")
      const system = yield* Effect.flip(admin.createUser({ login: "http", firstname: "H", lastname: "T", group: "user" }))
      expect(system.message).toBe("Username http is associated with uid 33, which is likely a system-managed user.")
    }).pipe(Effect.scoped, Effect.provide(Host))
  )

  it.live("rpc import streams progress, then the original's lines", () =>
    Effect.gen(function* () {
      const admin = yield* client(SECRET)
      const text = Array.from({ length: 250 }, (_, i) => `Person${String.fromCharCode(97 + (i % 26))}\tNumber${"x".repeat(i % 7)}${i}`).join("\n")
      const events = Chunk.toArray(
        yield* Stream.runCollect(
          admin.importUsers(namesImport("big.txt", text))
        )
      )
      const progress = events.filter((e) => e._tag === "Progress")
      expect(progress.map((p) => p._tag === "Progress" && p.done)).toEqual([50, 100, 150, 200, 250])
      const done = events[events.length - 1]
      expect(done?._tag === "Done" && done.lines.length).toBe(250)
      expect(done?._tag === "Done" && done.lines[0]).toBe("Added user Persona Number0 (login: pnumber)")
      expect((yield* admin.query_private({ filters: {} })).length).toBe(250)

      const failed = yield* Effect.flip(
        Stream.runCollect(
          admin.importUsers(namesImport("bad.txt", "A\tB\nbroken"))
        )
      )
      expect(failed.message).toBe('bad.txt:2: expected "First name<TAB>Last name" (exactly one TAB), got 0 TABs')
      const json = yield* admin.importJson({
        file: "u.json",
        text: JSON.stringify([{ id: 900, username: "jsonuser", first_name: "js", last_name: "on" }]),
        group: "orga",
        passwordLength: 8
      })
      expect(json[json.length - 1]).toBe("All users added successfully.")
    }).pipe(Effect.scoped, Effect.provide(Host))
  )
})
