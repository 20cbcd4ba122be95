import { request } from "node:http"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Metric, Schema, TestClock } from "effect"
import { NodeFileSystem } from "@effect/platform-node"
import { loadSsoProfile, SsoProfile } from "../../src/actors/sso/config.js"
import { ConfigDir } from "../../src/runtime/config.js"
import { ssoWhois } from "../../src/actors/sso/layer.js"
import { ssoStaleness } from "../../src/actors/sso/metrics.js"
import { listenWhois, whoisHandler } from "../../src/actors/sso/server.js"
import { makeWhois } from "../../src/actors/sso/whois.js"
import { supervisorGroup } from "../../src/runtime/supervisor.js"
import { testSupervision } from "../support/supervision.js"
import { gwTopics, settle } from "../support/gw-topics.js"

// The SSO whois: IP → machine (mdb) → login (presence) → X-SSO-User, the original's status
// texts, overrides, and `stale` rather than a possibly wrong user once a topic went quiet (TestClock).
// Served on 127.0.16.x by the real node:http listener, only to the allowed peers.

interface Reply {
  readonly code: number
  readonly user: string | undefined
  readonly status: string | undefined
}

const ask = (port: number, headers: Record<string, string>, from = "127.0.16.1", path = "/") =>
  Effect.async<Reply, Error>((resume) => {
    const req = request({ host: "127.0.16.1", port, path, headers, localAddress: from, agent: false }, (res) => {
      res.resume()
      res.on("end", () =>
        resume(Effect.succeed({ code: res.statusCode ?? 0, user: res.headers["x-sso-user"] as string | undefined, status: res.headers["x-sso-status"] as string | undefined }))
      )
    })
    req.on("error", (e) => resume(Effect.fail(e)))
    req.end()
  })

const records = (list: ReadonlyArray<Record<string, unknown>>, key: string) => new Map(list.map((r) => [String(r[key]), r as never]))

describe("whois table", () => {
  const fresh = { topic: "mdb", lastFrameAt: () => 1000 }
  const table = (overrides: Record<string, string> = {}) => {
    const w = makeWhois({ overrides, staleAfterMs: 30_000, sources: [fresh], startedAt: 0 })
    w.setMachines(records([{ mac: "a", hostname: "pas-r01p01", ip: "192.168.0.1" }, { mac: "b", hostname: "pas-r01p02", ip: "192.168.0.2" }, { mac: "c", hostname: "orga-1", ip: "192.168.250.1" }], "mac"))
    w.setPresence(records([{ login: "alice", hostname: "pas-r01p01" }, { login: "ghost", hostname: "not-in-mdb" }], "login"))
    return w
  }

  it("known machine → its login, with the original's status text; unknown → no user", () => {
    const w = table()
    expect(w.answer("192.168.0.1", 2000)).toEqual({ result: "user", user: "alice", status: "working: machine 192.168.0.1 has login alice" })
    expect(w.answer("192.168.0.2", 2000)).toEqual({ result: "unknown", status: "unknown: machine 192.168.0.2 has no login" })
    expect(w.answer("10.9.9.9", 2000)).toEqual({ result: "unknown", status: "unknown: machine 10.9.9.9 has no login" })
    expect(w.answer("not an ip", 2000)).toEqual({ result: "unknown", status: 'unknown: "not an ip" is not an IP address' })
    expect(w.size()).toBe(1)
  })

  it("overrides (hostname → login) win over presence; a logout or a machine leaving MDB clears its IP", () => {
    const w = table({ "pas-r01p01": "olga", "orga-1": "root" })
    expect(w.answer("192.168.0.1", 2000).user).toBe("olga")
    expect(w.answer("192.168.250.1", 2000).user).toBe("root")
    const plain = table()
    plain.setPresence(new Map())
    expect(plain.answer("192.168.0.1", 2000).result).toBe("unknown")
    const moved = table()
    moved.setMachines(records([{ mac: "b", hostname: "pas-r01p02", ip: "192.168.0.2" }], "mac"))
    expect(moved.answer("192.168.0.1", 2000).result).toBe("unknown")
  })

  it("stale before a topic was ever heard, and past the threshold; never a user then", () => {
    let at: number | undefined
    const w = makeWhois({ overrides: {}, staleAfterMs: 30_000, sources: [{ topic: "presence", lastFrameAt: () => at }], startedAt: 0 })
    w.setMachines(records([{ mac: "a", hostname: "h", ip: "192.168.0.1" }], "mac"))
    w.setPresence(records([{ login: "alice", hostname: "h" }], "login"))
    expect(w.answer("192.168.0.1", 5000)).toEqual({ result: "stale", status: "stale: nothing received yet from the presence topic" })
    expect(w.staleness(5000)).toBe(5)
    at = 10_000
    expect(w.answer("192.168.0.1", 40_000).user).toBe("alice")
    expect(w.answer("192.168.0.1", 40_001)).toEqual({ result: "stale", status: "stale: nothing from the presence topic for 30 s" })
    expect(w.staleness(40_001)).toBeCloseTo(30.001)
  })
})

describe("whois over HTTP", () => {
  const served = (allow: ReadonlyArray<string>) =>
    Effect.gen(function* () {
      const w = makeWhois({ overrides: {}, staleAfterMs: 30_000, sources: [], startedAt: 0 })
      w.setMachines(records([{ mac: "a", hostname: "h", ip: "192.168.0.1" }], "mac"))
      w.setPresence(records([{ login: "alice", hostname: "h" }], "login"))
      const counted: Array<string> = []
      const address = yield* listenWhois({ host: "127.0.16.1", port: 0 }, whoisHandler({ whois: w, now: () => 0, allow, count: (r) => counted.push(r) }))
      return { port: address.port, counted }
    })

  it.scoped("answers 200 with X-SSO-User; missing header → 400; another path → 404; never a body", () =>
    Effect.gen(function* () {
      const { port, counted } = yield* served(["127.0.16.1"])
      expect(yield* ask(port, { "X-Real-IP": "192.168.0.1" })).toEqual({ code: 200, user: "alice", status: "working: machine 192.168.0.1 has login alice" })
      expect(yield* ask(port, { "X-Real-IP": "192.168.0.9" })).toEqual({ code: 200, user: undefined, status: "unknown: machine 192.168.0.9 has no login" })
      expect(yield* ask(port, {})).toEqual({ code: 400, user: undefined, status: "missing header: X-Real-IP (is sso/handler included in the vhost?)" })
      expect((yield* ask(port, { "X-Real-IP": "192.168.0.1" }, "127.0.16.1", "/other")).code).toBe(404)
      expect(counted).toEqual(["user", "unknown", "bad_request"])
    })
  )

  it.scoped("a peer outside the allow list gets 403 and no answer: not an open oracle", () =>
    Effect.gen(function* () {
      const { port, counted } = yield* served(["127.0.16.1"])
      expect(yield* ask(port, { "X-Real-IP": "192.168.0.1" }, "127.0.16.2")).toEqual({
        code: 403,
        user: undefined,
        status: "refused: 127.0.16.2 is not an allowed client of this service"
      })
      expect(counted).toEqual(["refused"])
    })
  )

  it.scoped("a port already taken fails with SsoListenError naming the address", () =>
    Effect.gen(function* () {
      const { port } = yield* served(["127.0.16.1"])
      const error = yield* Effect.flip(listenWhois({ host: "127.0.16.1", port }, () => undefined))
      expect(error._tag).toBe("SsoListenError")
      expect(error.address).toBe(`127.0.16.1:${port}`)
    })
  )
})

describe("sso subsystem following the topics (TestClock)", () => {
  it.scoped("logins and logouts reach the answers; a silent hub turns answers stale and the gauge up; back on resync", () =>
    Effect.gen(function* () {
      const t = yield* gwTopics
      const profile = Schema.decodeUnknownSync(SsoProfile)({ listen: "127.0.16.1:0", allow: ["127.0.16.1"], stale_after_seconds: 30 })
      const group = yield* Layer.build(supervisorGroup("sso").pipe(Layer.provideMerge(testSupervision)))
      const { address } = yield* ssoWhois(profile).pipe(Effect.provide(group), Effect.provide(t.clientLayer), Effect.provide(t.metrics))
      yield* t.publish("mdb", [t.machine("pas-r01p01", "192.168.0.1")])
      yield* t.publish("presence", [t.login("alice", "pas-r01p01")])
      yield* settle
      expect((yield* ask(address.port, { "X-Real-IP": "192.168.0.1" })).user).toBe("alice")
      yield* t.publish("presence", [t.logout("alice"), t.login("bob", "pas-r01p01")])
      yield* settle
      expect((yield* ask(address.port, { "X-Real-IP": "192.168.0.1" })).user).toBe("bob")

      // progress frames keep it fresh while the hub is up
      yield* TestClock.adjust("40 seconds")
      yield* settle
      expect((yield* ask(address.port, { "X-Real-IP": "192.168.0.1" })).user).toBe("bob")

      yield* t.hub.stop
      yield* TestClock.adjust("31 seconds")
      yield* settle
      const stale = yield* ask(address.port, { "X-Real-IP": "192.168.0.1" })
      expect(stale.user).toBeUndefined()
      expect(stale.status).toMatch(/^stale: nothing from the (mdb|presence) topic for 3\d s$/)
      expect(yield* Metric.value(ssoStaleness)).toMatchObject({ value: expect.any(Number) })
      expect((yield* Metric.value(ssoStaleness)).value).toBeGreaterThan(30)

      yield* t.hub.start()
      yield* TestClock.adjust("11 seconds") // the followers' reconnect backoff
      yield* settle
      expect((yield* ask(address.port, { "X-Real-IP": "192.168.0.1" })).user).toBe("bob")
    })
  )
})

describe("sso.yml", () => {
  it("refuses a bad listen address, a misspelt key, an empty override and a zero threshold; defaults otherwise", () => {
    const decode = Schema.decodeUnknownEither(SsoProfile)
    expect(decode({ listen: "localhost" })._tag).toBe("Left")
    expect(decode({ stale_after: 10 })._tag).toBe("Left")
    expect(decode({ overrides: { "pas-r01p01": "" } })._tag).toBe("Left")
    expect(decode({ stale_after_seconds: 0 })._tag).toBe("Left")
    expect(decode({})).toMatchObject({
      _tag: "Right",
      right: { listen: { host: "127.0.0.1", port: 20131 }, allow: ["127.0.0.1", "::1"], overrides: {}, stale_after_seconds: 30 }
    })
  })
})

describe("etc/prologin/sso.yml", () => {
  it.effect("the shipped example loads: loopback, port 0 (the dev loop), local peers only", () =>
    Effect.gen(function* () {
      const profile = yield* loadSsoProfile
      expect(profile.listen).toEqual({ host: "127.0.0.1", port: 0 })
      expect(profile.allow).toEqual(["127.0.0.1", "::1"])
    }).pipe(Effect.provide(Layer.merge(ConfigDir.layer("etc/prologin"), NodeFileSystem.layer)))
  )
})
