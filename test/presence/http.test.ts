import * as HttpServer from "@effect/platform/HttpServer"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Redacted } from "effect"
import { Directory } from "../../src/actors/presence/directory.js"
import { PresenceHandlers, PresenceListHandlers } from "../../src/actors/presence/handlers.js"
import { presenceHttpRoutes } from "../../src/actors/presence/http-compat.js"
import { LeaseStore } from "../../src/actors/presence/lease-store.js"
import { PresencePublisher } from "../../src/actors/presence/publisher.js"
import { Presence } from "../../src/actors/presence/service.js"
import { PRESENCE_LIST_SERVICE, PRESENCE_SERVICE, PresenceListRpcs, PresenceRpcs } from "../../src/protocols/presence.js"
import { makeRpcClient } from "../../src/runtime/cli-client.js"
import { httpHostLayer, runtimeRoutes, serverUrl } from "../../src/runtime/http-host.js"
import { rpcRoute } from "../../src/runtime/rpc-route.js"
import { endpointMessage, generate, generateOriginal } from "../../src/runtime/timeauth.js"
import { LEASE_MS, machines, runtimeServices, users } from "./support.js"

// The rpc groups and the original form endpoints over real HTTP on 127.0.0.1.

const PUB = Redacted.make("pub-secret")
const SUB = Redacted.make("sub-secret")

const presenceNode = () => Layer.mergeAll(
  runtimeRoutes,
  rpcRoute({ service: PRESENCE_SERVICE, group: PresenceRpcs, handlers: PresenceHandlers, secret: PUB }),
  rpcRoute({ service: PRESENCE_LIST_SERVICE, group: PresenceListRpcs, handlers: PresenceListHandlers, secret: SUB }),
  presenceHttpRoutes({ pub: PUB, sub: SUB })
).pipe(
  Layer.provide(Presence.layer({ leaseMillis: LEASE_MS })),
  Layer.provide(Directory.fromRecords(machines, users)),
  Layer.provide(LeaseStore.memory().layer),
  Layer.provide(PresencePublisher.recording().layer)
)

const node = () => httpHostLayer(presenceNode(), { listen: { host: "127.0.0.1", port: 0 } }).pipe(Layer.provide(runtimeServices))

const baseUrl = Effect.map(HttpServer.HttpServer, (s) => serverUrl(s.address))

const request = (url: string, init?: RequestInit) =>
  Effect.promise(() => fetch(url, init).then(async (r) => ({ status: r.status, statusText: r.statusText, body: await r.text() })))

const post = (base: string, path: string, fields: Record<string, string>) =>
  request(`${base}/presencesync${path}`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(fields).toString()
  })

/** What a token for `path` (`/login`, ...) over `data` signs: `/presencesync<path>\n<data>`. */
const message = (path: string, data: string) => endpointMessage(`/presencesync${path}`, data)

const signedPost = (base: string, path: string, data: string, secret = PUB) =>
  Effect.flatMap(generate(secret, message(path, data)), (hmac) => post(base, path, { data, hmac }))

const getList = (base: string, secret: Redacted.Redacted<string>) =>
  Effect.flatMap(generate(secret, message("/get_list", "{}")), (hmac) =>
    request(`${base}/presencesync/get_list?${new URLSearchParams({ data: "{}", hmac })}`)
  )

describe("presence over HTTP", () => {
    it.live("original form endpoints: status codes, reason phrases and bodies", () =>
      Effect.gen(function* () {
        const base = yield* baseUrl
        const alice = JSON.stringify({ login: "alice", hostname: "pas-r01p01" })
        expect(yield* signedPost(base, "/login", alice)).toMatchObject({ status: 200, body: "" })
        const refused = yield* signedPost(base, "/login", JSON.stringify({ login: "bob", hostname: "pas-r01p01" }))
        expect(refused).toMatchObject({ status: 423, body: "pas-r01p01 is busy" })
        expect(yield* signedPost(base, "/heartbeat", alice)).toMatchObject({ status: 200 })
        expect(yield* signedPost(base, "/heartbeat", JSON.stringify({ login: "alice", hostname: "pas-r01p02" }))).toMatchObject({
          status: 423,
          body: "alice is already logged somewhere else"
        })
        expect(yield* signedPost(base, "/logout", JSON.stringify({ login: "bob", hostname: "pas-r01p01" }))).toMatchObject({
          status: 500,
          body: "Requested logout but not logged in"
        })
        expect(yield* signedPost(base, "/logout", JSON.stringify({ login: "alice", hostname: "pas-r01p03" }))).toMatchObject({
          status: 500,
          body: "Requested logout from the wrong hostname"
        })
        const list = yield* getList(base, SUB)
        expect(list.status).toBe(200)
        expect(JSON.parse(list.body)).toEqual({ alice: "pas-r01p01" })
        expect(yield* signedPost(base, "/remove_expired", "{}")).toMatchObject({ status: 200 })
        expect(yield* signedPost(base, "/logout", alice)).toMatchObject({ status: 200, body: "" })
      }).pipe(Effect.scoped, Effect.provide(node()))
    )

    it.live("bad input and bad tokens: 400 / 403, nothing changes", () =>
      Effect.gen(function* () {
        const base = yield* baseUrl
        const data = JSON.stringify({ login: "carol", hostname: "pas-r01p04" })
        expect(yield* post(base, "/login", { data })).toMatchObject({ status: 400, body: "Missing argument hmac" })
        expect(yield* post(base, "/login", { hmac: yield* generate(PUB, message("/login", data)) })).toMatchObject({
          status: 400,
          body: "Missing argument data"
        })
        // signed with the sub secret, a replayed token over other data, a malformed token
        expect(yield* signedPost(base, "/login", data, SUB)).toMatchObject({ status: 403, body: "Invalid token" })
        expect(yield* post(base, "/login", { data, hmac: yield* generate(PUB, message("/login", "{}")) })).toMatchObject({ status: 403 })
        expect(yield* post(base, "/login", { data, hmac: "nope" })).toMatchObject({ status: 403 })
        expect(yield* signedPost(base, "/login", "not json")).toMatchObject({ status: 400 })
        expect((yield* signedPost(base, "/login", "not json")).body).toContain("data is not JSON")
        expect(yield* signedPost(base, "/login", "[1]")).toMatchObject({ status: 400 })
        expect(yield* signedPost(base, "/login", JSON.stringify({ login: 3, hostname: "x" }))).toMatchObject({
          status: 400,
          body: "data.login must be a string"
        })
        expect(yield* signedPost(base, "/login", JSON.stringify({ login: "car ol", hostname: "pas-r01p04" }))).toMatchObject({
          status: 400
        })
        // get_list wants the sub secret
        expect((yield* getList(base, PUB)).status).toBe(403)
        expect(JSON.parse((yield* getList(base, SUB)).body)).toEqual({})
      }).pipe(Effect.scoped, Effect.provide(node()))
    )

    it.live("a token is bound to its endpoint and spent once: a /login token does not log out, a replay is refused", () =>
      Effect.gen(function* () {
        const base = yield* baseUrl
        const bobAt2 = JSON.stringify({ login: "bob", hostname: "pas-r01p02" })
        // The original's tokens over `data` alone are what made a sniffed /login token a /logout one.
        expect(yield* post(base, "/login", { data: bobAt2, hmac: yield* generateOriginal(PUB, bobAt2) })).toMatchObject({ status: 403 })
        const login = yield* generateOriginal(PUB, message("/login", bobAt2))
        expect(yield* post(base, "/login", { data: bobAt2, hmac: login })).toMatchObject({ status: 200 })
        // The same token on /logout: refused, bobAt2 stays logged in.
        expect(yield* post(base, "/logout", { data: bobAt2, hmac: login })).toEqual({ status: 403, statusText: "Forbidden", body: "Invalid token" })
        // The same token again on /login (a replay within its 120 s): refused.
        expect(yield* post(base, "/login", { data: bobAt2, hmac: login })).toMatchObject({ status: 403, body: "Invalid token" })
        expect(JSON.parse((yield* getList(base, SUB)).body)).toEqual({ bob: "pas-r01p02" })
        // A /logout token of its own logs out; replayed, it is refused (not a second logout).
        const logout = yield* generate(PUB, message("/logout", bobAt2))
        expect(yield* post(base, "/logout", { data: bobAt2, hmac: logout })).toMatchObject({ status: 200 })
        expect(yield* post(base, "/logout", { data: bobAt2, hmac: logout })).toMatchObject({ status: 403, body: "Invalid token" })
        expect(JSON.parse((yield* getList(base, SUB)).body)).toEqual({})
      }).pipe(Effect.scoped, Effect.provide(node()))
    )

    it.live("rpc: typed refusals arrive as their classes; the list group needs the sub secret", () =>
      Effect.gen(function* () {
        const url = yield* baseUrl
        const pub = yield* makeRpcClient(PresenceRpcs, { url, service: PRESENCE_SERVICE, secret: PUB })
        const list = yield* makeRpcClient(PresenceListRpcs, { url, service: PRESENCE_LIST_SERVICE, secret: SUB })
        const wrongList = yield* makeRpcClient(PresenceListRpcs, { url, service: PRESENCE_LIST_SERVICE, secret: PUB })
        const forged = yield* makeRpcClient(PresenceRpcs, { url, service: PRESENCE_SERVICE, secret: SUB })
        yield* pub.RequestLogin({ login: "olga", hostname: "gw" })
        expect(yield* Effect.flip(pub.RequestLogin({ login: "bob", hostname: "orga-pc" }))).toMatchObject({
          _tag: "LoginRefused",
          reason: "user_not_allowed",
          message: "bob is not a kind of user that is allowed to log on orga-pc"
        })
        expect(yield* Effect.flip(pub.Heartbeat({ login: "olga", hostname: "orga-pc" }))).toMatchObject({ _tag: "HeartbeatRefused" })
        expect(yield* Effect.flip(pub.Logout({ login: "olga", hostname: "orga-pc" }))).toMatchObject({
          _tag: "LogoutRefused",
          reason: "wrong_host"
        })
        expect(yield* Effect.flip(pub.RequestLogin({ login: "", hostname: "gw" }))).toMatchObject({ _tag: "InvalidPresenceRequest" })
        expect(yield* Effect.flip(forged.RequestLogin({ login: "rooty", hostname: "pas-r01p02" }))).toMatchObject({
          _tag: "Unauthorized",
          reason: "bad_signature"
        })
        expect(yield* Effect.flip(wrongList.List())).toMatchObject({ _tag: "Unauthorized" })
        expect(yield* list.List()).toEqual({ olga: "gw" })
        yield* pub.Logout({ login: "olga", hostname: "gw" })
        expect(yield* list.List()).toEqual({})
      }).pipe(Effect.scoped, Effect.provide(node()))
    )
  // Issue 17 item 2: the form was read whole, without a limit, before the token was checked.
  it.live("a body over the form limit: 413 before anything is buffered; data nested too deep: 400", () =>
    Effect.gen(function* () {
      const base = yield* baseUrl
      const big = yield* post(base, "/login", { data: "x".repeat(20 * 1024), hmac: "nope" })
      expect(big.status).toBe(413)
      const deep = `${"[".repeat(100)}${"]".repeat(100)}`
      const refused = yield* signedPost(base, "/login", deep)
      expect(refused.status).toBe(400)
      expect(refused.body).toContain("nested deeper than 64")
      expect((yield* request(`${base}/__ping`)).body).toBe("pong")
    }).pipe(Effect.scoped, Effect.provide(node()))
  )
})
