import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { SqlClient } from "@effect/sql"
import { AlreadyTaken, MdbRpcs, MdbUnavailable } from "../../src/protocols/mdb.js"
import { call, rpcClient } from "../support/http.js"
import { dumpDatabase } from "../support/pg-dump.js"
import { gw, MdbHostTest, resetMdb } from "./support.js"

const SECRET = "test-mdb-secret"

// The MDB routes on a real HTTP server on 127.0.0.1, over a fresh database per test.
const Host = MdbHostTest(SECRET)

const post = (path: string, body: string) => call(path, { method: "POST", body })

const client = (secret?: string) => rpcClient(MdbRpcs, "mdb", secret)

describe("MDB over HTTP", () => {
  it.live("GET /call/query answers the original envelope, exactly application/json", () =>
    Effect.gen(function* () {
      const empty = yield* call("/call/query")
      expect(empty).toEqual({ status: 200, type: "application/json", body: '{"type": "result", "data": []}\n' })

      const admin = yield* client(SECRET)
      yield* admin.addMachine(gw)
      yield* admin.addMachine({ hostname: "rhfs01", mac: "00:00:00:00:01:01", mtype: "service", aliases: "rfs1" })
      const all = yield* call("/call/query")
      expect(all.status).toBe(200)
      expect(all.body).toBe(
        '{"type": "result", "data": [{"hostname": "gw", "aliases": "mdb,mdbsync,ns,netboot,udb,udbsync,presencesync,ntp,sso", ' +
          '"ip": "192.168.1.254", "mac": "11:22:33:44:55:66", "rfs": 0, "hfs": 0, "mtype": "service", "room": "pasteur", ' +
          '"is_faulty": false, "is_faulty_details": ""}, {"hostname": "rhfs01", "aliases": "rfs1", "ip": "192.168.1.1", ' +
          '"mac": "00:00:00:00:01:01", "rfs": 0, "hfs": 0, "mtype": "service", "room": "other", "is_faulty": false, ' +
          '"is_faulty_details": ""}]}\n'
      )
      const filtered = yield* post("/call/query", JSON.stringify({ args: [], kwargs: { aliases__contains: "rfs1" } }))
      expect(JSON.parse(filtered.body).data.map((m: { hostname: string }) => m.hostname)).toEqual(["rhfs01"])
      // The original ignores the query string and reads only POST bodies.
      const ignored = yield* call("/call/query?mac=nope")
      expect(JSON.parse(ignored.body).data).toHaveLength(2)

      const inventory = JSON.parse((yield* call("/call/ansible")).body)
      expect(inventory.type).toBe("result")
      expect(inventory.data.service.hosts).toEqual(["gw", "rhfs01"])
      const switches = yield* call("/call/switches", { method: "PUT" })
      expect(switches.body).toBe('{"type": "result", "data": []}\n')
    }).pipe(Effect.scoped, Effect.provide(Host))
  )

  it.live("errors use the original exception envelope and status", () =>
    Effect.gen(function* () {
      const envelope = (exnType: string, message: string) =>
        `{"type": "exception", "exn_type": "${exnType}", "exn_message": ${JSON.stringify(message)}, "exn_traceback": []}\n`
      expect(yield* call("/call/nope")).toEqual({ status: 404, type: "application/json", body: envelope("MethodError", "nope") })
      expect(yield* post("/call/query", "{not json")).toMatchObject({ status: 500, type: "application/json" })
      expect(JSON.parse((yield* post("/call/query", "")).body).exn_type).toBe("JSONDecodeError")
      expect(yield* post("/call/query", JSON.stringify({ kwargs: { owner: "x" } }))).toEqual({
        status: 500,
        type: "application/json",
        body: envelope(
          "ValueError",
          "'owner' is not a valid query argument (fields: hostname, aliases, ip, mac, rfs, hfs, mtype, room, is_faulty, is_faulty_details)"
        )
      })
      expect(JSON.parse((yield* post("/call/query", JSON.stringify({ args: [1] }))).body)).toMatchObject({
        exn_type: "TypeError",
        exn_message: "query() takes 0 positional arguments but 1 were given"
      })

      // register: public as the original; positional or keyword arguments; gated by the setting.
      const reg = (body: unknown) => Effect.map(post("/call/register", JSON.stringify(body)), (r) => JSON.parse(r.body))
      expect(yield* reg({ args: ["pas-r01p01", "AA:BB:CC:00:00:01", 0, 1, "pasteur", "user"] })).toEqual({
        type: "result",
        data: "192.168.0.1"
      })
      expect(yield* reg({ kwargs: { hostname: "pas-r01p02", mac: "aa:bb:cc:00:00:02", rfs: "0", hfs: "1", room: "pasteur", mtype: "user" } })).toEqual({
        type: "result",
        data: "192.168.0.2"
      })
      expect(yield* reg({ kwargs: { hostname: "pas_r01p03", mac: "aa:bb:cc:00:00:03", rfs: 0, hfs: 0, room: "pasteur", mtype: "user" } })).toMatchObject({
        type: "exception",
        exn_type: "ValidationError",
        exn_message: "hostname 'pas_r01p03': '_' is not allowed in DNS names (use '-')"
      })
      expect(yield* reg({ kwargs: { hostname: "pas-r01p03" } })).toMatchObject({
        exn_type: "TypeError",
        exn_message: "register() missing required arguments: 'mac', 'rfs', 'hfs', 'room', 'mtype'"
      })
      const admin = yield* client(SECRET)
      yield* admin.setSetting({ key: "allow_self_registration", value: false })
      expect(yield* reg({ args: ["pas-r01p03", "aa:bb:cc:00:00:03", 0, 0, "pasteur", "user"] })).toMatchObject({
        exn_type: "RuntimeError",
        exn_message: "self registration is disabled"
      })
    }).pipe(Effect.scoped, Effect.provide(Host))
  )

  // Issue 17 item 6: a database failure was a protocol Defect (SqlError) on /rpc/mdb.
  it.live("a database failure answers the typed MdbUnavailable, reads and writes alike", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const admin = yield* client(SECRET)
      yield* sql`ALTER TABLE switch RENAME TO switch_gone`
      const read = yield* Effect.flip(admin.switches({ filters: {} }))
      expect(read).toBeInstanceOf(MdbUnavailable)
      expect(read.message).toMatch(/^machine database unavailable: .+; retry$/)
      const write = yield* Effect.flip(admin.addSwitch({ name: "sw1", chassis: "00:11:22:33:44:55" }))
      expect(write).toBeInstanceOf(MdbUnavailable)
      yield* sql`ALTER TABLE switch_gone RENAME TO switch`
      expect(yield* admin.switches({ filters: {} })).toEqual([])
    }).pipe(Effect.scoped, Effect.provide(Host))
  )

  it.live("rpc writes need the mdb secret; reads are public; typed errors arrive as their class", () =>
    Effect.gen(function* () {
      const anonymous = yield* client()
      const intruder = yield* client("wrong-secret")
      const admin = yield* client(SECRET)
      yield* admin.addMachine(gw)
      const before = yield* dumpDatabase
      const denied = yield* Effect.flip(anonymous.addMachine({ hostname: "evil", mac: "66:66:66:66:66:66" }))
      expect(denied).toMatchObject({ _tag: "Unauthorized", service: "mdb", rpc: "addMachine", reason: "missing" })
      const forged = yield* Effect.flip(intruder.deleteMachine({ hostname: "gw" }))
      expect(forged).toMatchObject({ _tag: "Unauthorized", reason: "bad_signature" })
      const flipped = yield* Effect.flip(intruder.setSetting({ key: "allow_self_registration", value: false }))
      expect(flipped._tag).toBe("Unauthorized")
      expect(yield* dumpDatabase).toEqual(before)

      expect((yield* anonymous.query({ filters: { hostname: "gw" } })).map((m) => m.ip)).toEqual(["192.168.1.254"])
      const dup = yield* Effect.flip(admin.addMachine({ hostname: "other", mac: gw.mac }))
      expect(dup).toBeInstanceOf(AlreadyTaken)
      expect(dup.message).toBe("mac 11:22:33:44:55:66 is already used by machine gw")
      const badFilter = yield* Effect.flip(anonymous.query({ filters: { nope: 1 } }))
      expect(badFilter._tag).toBe("InvalidFilter")
      expect(yield* admin.deleteMachine({ hostname: "gw" })).toMatchObject({ hostname: "gw" })
    }).pipe(Effect.scoped, Effect.provide(Host))
  )

  it.live("register, off in the configuration: a clear refusal on /call and on the rpc, nothing registered", () =>
    Effect.gen(function* () {
      yield* resetMdb
      const registration = { hostname: "alt-r02p01", mac: "de:ad:be:ef:00:01", rfs: 0, hfs: 1, room: "alt", mtype: "user" }
      const viaCall = yield* post("/call/register", JSON.stringify({ kwargs: registration }))
      expect(viaCall.status).toBe(500)
      expect(JSON.parse(viaCall.body)).toMatchObject({
        exn_type: "RuntimeError",
        exn_message: "self registration is disabled on this node (mdb-registration.yml: enabled is false)"
      })
      const viaRpc = yield* Effect.flip((yield* client()).register(registration))
      expect(viaRpc).toMatchObject({ _tag: "RegistrationDisabled" })
      expect(JSON.parse((yield* call("/call/query")).body).data).toEqual([])
    }).pipe(Effect.scoped, Effect.provide(MdbHostTest(SECRET, { enabled: false, perSourcePerMinute: 6, perMinute: 60 })))
  )

  it.live("register is rate-limited per caller address: 429 with the reason, nothing registered past the limit", () =>
    Effect.gen(function* () {
      yield* resetMdb
      const registration = (n: number) => ({
        kwargs: { hostname: `alt-r02p0${n}`, mac: `de:ad:be:ef:00:0${n}`, rfs: 0, hfs: 1, room: "alt", mtype: "user" }
      })
      expect((yield* post("/call/register", JSON.stringify(registration(1)))).status).toBe(200)
      expect((yield* post("/call/register", JSON.stringify(registration(2)))).status).toBe(200)
      const third = yield* post("/call/register", JSON.stringify(registration(3)))
      expect(third.status).toBe(429)
      expect(JSON.parse(third.body)).toMatchObject({
        exn_type: "RuntimeError",
        exn_message: expect.stringMatching(/^too many self registrations from (::ffff:)?127\.0\.0\.1 \(at most 2 a minute\): retry in \d+ s$/)
      })
      const hosts = JSON.parse((yield* call("/call/query")).body).data.map((m: { hostname: string }) => m.hostname)
      expect(hosts).toEqual(["alt-r02p01", "alt-r02p02"])
    }).pipe(Effect.scoped, Effect.provide(MdbHostTest(SECRET, { enabled: true, perSourcePerMinute: 2, perMinute: 100 })))
  )
})
