import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Redacted, Schedule } from "effect"
import { HeartbeatSender, runHeartbeats } from "../../src/actors/presenced/heartbeat.js"
import { SessionSource } from "../../src/actors/presenced/sessions.js"
import { Metrics } from "../../src/runtime/metrics.js"
import { makeRpcTcpClient } from "../../src/runtime/rpc-tcp.js"
import { MDB_SERVICE, MdbRpcs } from "../../src/protocols/mdb.js"
import { PRESENCE_LIST_SERVICE, PRESENCE_SERVICE, PresenceListRpcs, PresenceRpcs } from "../../src/protocols/presence.js"
import { UDB_SERVICE, UdbRpcs } from "../../src/protocols/udb.js"
import { makeRpcClient } from "../../src/runtime/cli-client.js"
import { endpointMessage, generate } from "../../src/runtime/timeauth.js"
import { DEV_SECRETS, hostOf, macOf, startGateway, writeConfig } from "../presence/support/spawn-node.js"
import { createTestDatabase } from "../support/pg.js"

// `prolo-node --layer gw` on a real PostgreSQL: machines and users registered through MDB and
// UDB (presence learns them from the mdb/udb topics), 50 logins, kill -9, start again.

const SECRETS = DEV_SECRETS

const clients = (url: string) =>
  Effect.all({
    pub: makeRpcClient(PresenceRpcs, { url, service: PRESENCE_SERVICE, secret: Redacted.make(SECRETS.presence) }),
    list: makeRpcClient(PresenceListRpcs, { url, service: PRESENCE_LIST_SERVICE, secret: Redacted.make(SECRETS.presenceSub) })
  })

const seed = (url: string, count: number) =>
  Effect.gen(function* () {
    const mdb = yield* makeRpcClient(MdbRpcs, { url, service: MDB_SERVICE, secret: Redacted.make(SECRETS.mdb) })
    const udb = yield* makeRpcClient(UdbRpcs, { url, service: UDB_SERVICE, secret: Redacted.make(SECRETS.udb) })
    yield* Effect.forEach(
      Array.from({ length: count }, (_, i) => i),
      (i) =>
        Effect.all([
          mdb.addMachine({ hostname: hostOf(i), mac: macOf(i), mtype: "user", room: "pasteur" }),
          udb.createUser({ login: `user${i}`, firstname: "User", lastname: `Number${i}`, group: "user" })
        ]),
      { concurrency: 4, discard: true }
    )
  })

const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString()

describe("presence survives kill -9", () => {
  it.live(
    "all 50 logins listed after a restart, a new login accepted at once, a listed user refused elsewhere",
    () =>
      Effect.gen(function* () {
        const url = yield* createTestDatabase
        // 60 s leases: the restart must not depend on heartbeats arriving
        const dir = yield* writeConfig(url, 60)
        const first = yield* startGateway(dir)
        yield* seed(first.url, 60)
        const a = yield* clients(first.url)
        // presence hears of the new machines and users through the sync topics
        yield* a.pub.RequestLogin({ login: "user59", hostname: hostOf(59) }).pipe(
          Effect.retry(Schedule.spaced("100 millis").pipe(Schedule.upTo("60 seconds")))
        )
        yield* a.pub.Logout({ login: "user59", hostname: hostOf(59) })
        yield* Effect.forEach(Array.from({ length: 50 }, (_, i) => i), (i) => a.pub.RequestLogin({ login: `user${i}`, hostname: hostOf(i) }), {
          concurrency: 8
        })
        expect(Object.keys(yield* a.list.List()).length).toBe(50)
        yield* first.kill9

        const second = yield* startGateway(dir)
        const b = yield* clients(second.url)
        const listed = yield* b.list.List()
        expect(listed).toEqual(Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`user${i}`, hostOf(i)])))
        yield* b.pub.RequestLogin({ login: "user55", hostname: hostOf(55) })
        yield* b.pub.RequestLogin({ login: "user7", hostname: hostOf(7) })
        const refused = yield* Effect.flip(b.pub.RequestLogin({ login: "user3", hostname: hostOf(56) }))
        expect(refused).toMatchObject({ _tag: "LoginRefused", message: "user3 is already logged somewhere else" })
        const busy = yield* Effect.flip(b.pub.RequestLogin({ login: "user57", hostname: hostOf(4) }))
        expect(busy).toMatchObject({ _tag: "LoginRefused", message: `${hostOf(4)} is busy` })

        // the original form endpoints, as a shell would drive them
        const data = JSON.stringify({ login: "user58", hostname: hostOf(3) })
        const post = (path: string, body: string) =>
          Effect.promise(() =>
            fetch(`${second.url}/presencesync${path}`, {
              method: "POST",
              headers: { "content-type": "application/x-www-form-urlencoded" },
              body
            }).then(async (r) => ({ status: r.status, body: await r.text() }))
          )
        // Tokens sign `<path>\n<data>` and are spent once.
        const sign = (path: string, body: string, secret: string = SECRETS.presence) =>
          generate(Redacted.make(secret), endpointMessage(`/presencesync${path}`, body))
        const token = yield* sign("/login", data)
        expect(yield* post("/login", form({ data, hmac: token }))).toEqual({ status: 423, body: `${hostOf(3)} is busy` })
        expect(yield* post("/login", form({ data, hmac: `${(yield* sign("/login", data)).split(":")[0]}:${"0".repeat(64)}` }))).toEqual({
          status: 403,
          body: "Invalid token"
        })
        const logout = JSON.stringify({ login: "user3", hostname: hostOf(3) })
        expect(yield* post("/logout", form({ data: logout, hmac: yield* sign("/logout", logout) }))).toEqual({
          status: 200,
          body: ""
        })
        expect((yield* post("/login", form({ data, hmac: token }))).status).toBe(403) // spent
        expect((yield* post("/login", form({ data, hmac: yield* sign("/login", data) }))).status).toBe(200)
        const listData = "{}"
        const listToken = yield* sign("/get_list", listData, SECRETS.presenceSub)
        const list = yield* Effect.promise(() =>
          fetch(`${second.url}/presencesync/get_list?${form({ data: listData, hmac: listToken })}`).then((r) => r.json() as Promise<Record<string, string>>)
        )
        expect(list["user58"]).toBe(hostOf(3))
        expect(list["user3"]).toBeUndefined()
        expect(Object.keys(list).length).toBe(51)
      }).pipe(Effect.scoped),
    120_000
  )

})

describe("presence over TCP+msgpack (tcp_listen / tcp_connect)", () => {
  it.live(
    "presenced's heartbeats establish a lease, decisions and refusals arrive typed, a wrong secret is refused",
    () =>
      Effect.gen(function* () {
        const url = yield* createTestDatabase
        // a 5 s lease: presenced heartbeats every second
        const dir = yield* writeConfig(url, 5, "tcp_listen: 127.0.0.1:0\n")
        const node = yield* startGateway(dir)
        const port = node.tcpPort
        if (port === undefined) return yield* Effect.dieMessage("the gateway did not log its presence tcp port")
        yield* seed(node.url, 3)
        const secret = Redacted.make(SECRETS.presence)
        const pub = yield* makeRpcTcpClient(PresenceRpcs, { host: "127.0.0.1", port, secret })
        const list = yield* makeRpcTcpClient(PresenceListRpcs, { host: "127.0.0.1", port, secret: Redacted.make(SECRETS.presenceSub) })

        // presenced on hostOf(0), user0 logged in there; the first heartbeats may be refused
        // until presence has heard of the machine and the user on the sync topics
        const presenced = yield* Effect.forkScoped(
          runHeartbeats({ period: "1 second", hostname: hostOf(0), retryInitial: "100 millis" }).pipe(
            Effect.provide(
              Layer.mergeAll(
                Layer.succeed(SessionSource, { users: Effect.succeed(["user0"]) }),
                HeartbeatSender.to({ tcp: { host: "127.0.0.1", port }, url: "", secret }),
                Metrics.layer
              )
            )
          )
        )
        const listed = yield* list.List().pipe(
          Effect.filterOrFail((l) => l["user0"] === hostOf(0)),
          Effect.retry({ schedule: Schedule.spaced("100 millis"), times: 150 })
        )
        expect(listed).toEqual({ user0: hostOf(0) })

        // the heartbeat's lease decides a login like any other, over the same transport
        yield* pub.RequestLogin({ login: "user0", hostname: hostOf(0) })
        const busy = yield* Effect.flip(pub.RequestLogin({ login: "user1", hostname: hostOf(0) }))
        expect(busy).toMatchObject({ _tag: "LoginRefused", reason: "busy", message: `${hostOf(0)} is busy` })
        const elsewhere = yield* Effect.flip(pub.RequestLogin({ login: "user0", hostname: hostOf(1) }))
        expect(elsewhere).toMatchObject({ _tag: "LoginRefused", reason: "already_logged" })
        const invalid = yield* Effect.flip(pub.Logout({ login: "", hostname: hostOf(1) }))
        expect(invalid).toMatchObject({ _tag: "InvalidPresenceRequest", field: "login" })
        yield* pub.RequestLogin({ login: "user1", hostname: hostOf(1) })
        expect(yield* list.List()).toEqual({ user0: hostOf(0), user1: hostOf(1) })

        const forged = yield* makeRpcTcpClient(PresenceRpcs, { host: "127.0.0.1", port, secret: Redacted.make("not-the-secret") })
        const refused = yield* Effect.flip(forged.Logout({ login: "user1", hostname: hostOf(1) }))
        expect(refused).toMatchObject({ _tag: "Unauthorized", reason: "bad_signature" })
        expect(yield* list.List()).toEqual({ user0: hostOf(0), user1: hostOf(1) })

        // the lease lives on heartbeats alone: stop presenced and it expires
        yield* Fiber.interrupt(presenced)
        yield* list.List().pipe(
          Effect.filterOrFail((l) => l["user0"] === undefined),
          Effect.retry({ schedule: Schedule.spaced("250 millis"), times: 60 })
        )
      }).pipe(Effect.scoped),
    120_000
  )
})
