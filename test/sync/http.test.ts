import * as NodeSocket from "@effect/platform-node/NodeSocket"
import * as HttpServer from "@effect/platform/HttpServer"
import * as Socket from "@effect/platform/Socket"
import { expect, layer } from "@effect/vitest"
import { Context, Effect, Exit, Fiber, Layer, Metric, Redacted, Scope, Stream } from "effect"
import { createHmac } from "node:crypto"
import { request } from "node:http"
import { makeChangeLogSource } from "../../src/actors/sync/changelog-source.js"
import { type FrameInfo, makeSyncClient } from "../../src/actors/sync/client.js"
import { followSocketUrl, websocketConnector } from "../../src/actors/sync/connection.js"
import { type HubTopic, SyncHub } from "../../src/actors/sync/hub.js"
import { followerMetrics } from "../../src/actors/sync/metrics.js"
import { pythonJson } from "../../src/runtime/python-json.js"
import { syncRoutes } from "../../src/actors/sync/routes.js"
import { MDB_TOPIC, UDB_TOPIC } from "../../src/actors/sync/topics.js"
import { outsidePublishesRefused } from "../../src/actors/sync/metrics.js"
import { publishMessage, subscribeMessage, type Update } from "../../src/protocols/sync.js"
import { httpHostLayer, serverUrl } from "../../src/runtime/http-host.js"
import { Metrics } from "../../src/runtime/metrics.js"
import { generate, generateOriginal } from "../../src/runtime/timeauth.js"
import { ChangeLog } from "../../src/store/change-log.js"
import { PgTest } from "../support/pg.js"
import { HASH, PUB, SUB } from "./harness.js"
import { testSupervision } from "../support/supervision.js"

// The hub on a real HTTP port over a real PostgreSQL change log: a follower over the websocket
// rpc, a restart of the server, the original `/poll` and `/update` endpoints, forged tokens.

const serve = (topics: ReadonlyArray<HubTopic>, port: number, bufferSize = 1024) =>
  Effect.gen(function* () {
    const scope = yield* Scope.make()
    const ctx = yield* Layer.buildWithScope(
      httpHostLayer(syncRoutes, { listen: { host: "127.0.0.1", port }, drainTimeout: "200 millis" }).pipe(
        Layer.provideMerge(SyncHub.layer({ topics, options: { progressInterval: "1 second", bufferSize } })),
        Layer.provide(Layer.merge(Metrics.layer, testSupervision))
      ),
      scope
    )
    const address = Context.get(ctx, HttpServer.HttpServer).address
    return { scope, hub: Context.get(ctx, SyncHub), url: serverUrl(address), port: address._tag === "TcpAddress" ? address.port : 0 }
  })

/** Reads a streaming HTTP response line by line (as `curl -N` would). */
const openLines = (url: string) =>
  Effect.async<{ status: number; lines: Array<string>; close: () => void; body: () => string }, Error>((resume) => {
    const lines: Array<string> = []
    let buffer = ""
    let whole = ""
    const req = request(url, { agent: false }, (res) => {
      res.setEncoding("utf8")
      res.on("data", (chunk: string) => {
        whole += chunk
        buffer += chunk
        let at: number
        while ((at = buffer.indexOf("\n")) >= 0) {
          lines.push(buffer.slice(0, at))
          buffer = buffer.slice(at + 1)
        }
      })
      resume(Effect.succeed({ status: res.statusCode ?? 0, lines, close: () => req.destroy(), body: () => whole }))
    })
    req.on("error", (e) => resume(Effect.fail(e)))
    req.end()
  })

const postForm = (url: string, fields: Record<string, string>) =>
  Effect.promise(async () => {
    const res = await fetch(url, { method: "POST", body: new URLSearchParams(fields) })
    return { status: res.status, body: await res.text() }
  })

// Polls an observable fact; the bound is only a last resort (a loaded CI box is slow).
const waitFor = (what: string, cond: () => boolean) =>
  Effect.gen(function* () {
    for (let i = 0; i < 3000; i++) {
      if (cond()) return
      yield* Effect.sleep("10 millis")
    }
    throw new Error(`timed out waiting for ${what}`)
  })

// An mdb-shaped topic that anyone holding the publisher secret may write (the hub serves such
// topics; the real mdb and udb topics have a single writer, tested below).
const { writer: _writer, ...OPEN_MDB } = MDB_TOPIC

const machine = (mac: string, hostname: string): Update => ({ type: "update", data: { mac, hostname, room: "pasteur", "é": "ü" } })

layer(PgTest, { timeout: "60 seconds", excludeTestServices: true })("sync hub over HTTP", (it) => {
  {
    it.scoped("a websocket follower resumes after a server restart; /poll and /update speak the original format", () =>
      Effect.gen(function* () {
        const log = yield* ChangeLog
        const mdb: HubTopic = {
          definition: OPEN_MDB,
          secrets: { publisher: PUB, subscriber: SUB },
          source: makeChangeLogSource(log, { topic: "mdb", keyField: "mac" })
        }
        // A writer appending in its own transaction, before any hub exists.
        yield* log.append("mdb", [{ op: "update", key: "aa", record: machine("aa", "r01p01").data }])
        let server = yield* serve([mdb], 0)

        const client = makeSyncClient({
          connect: websocketConnector(server.url),
          credentials: () => ({ subscribe: SUB, publish: PUB }),
          backoff: { initial: "50 millis", max: "500 millis" }
        })
        const seen: Array<FrameInfo & { keys: Array<string> }> = []
        const follower = yield* Effect.fork(
          client.follow("mdb", (state, _m, info) => Effect.sync(() => seen.push({ ...info, keys: [...state.keys()].sort() })))
        )
        yield* waitFor("snapshot", () => seen.length === 1)
        expect(seen[0]).toMatchObject({ kind: "snapshot", revision: 1, epoch: "pg", keys: ["aa"] })

        expect(yield* client.publish("mdb", [machine("bb", "r01p02")])).toBe(2)
        yield* waitFor("batch 2", () => seen.length === 2)

        // `curl -N /sync/mdb/poll?hmac=TOKEN(sync-subscribe:mdb)`: snapshot line first, then each message.
        const poll = yield* openLines(`${server.url}/sync/mdb/poll?hmac=${yield* generate(SUB, subscribeMessage("mdb"))}`)
        expect(poll.status).toBe(200)
        yield* waitFor("poll snapshot", () => poll.lines.length === 1)
        // Python's json.dumps layout (", " / ": ", non-ASCII escaped); this source has no field
        // order, so keys come in the store's (jsonb) order (poll-order.test.ts: the topics' own).
        const line0 = poll.lines[0]!
        expect(JSON.parse(line0)).toEqual([machine("aa", "r01p01"), machine("bb", "r01p02")])
        expect(pythonJson(JSON.parse(line0))).toBe(line0)
        expect(line0).toContain('"\\u00e9": "\\u00fc"')
        expect(line0.startsWith('[{"type": "update", "data": {')).toBe(true)
        // The original `POST /update` form, in the original token format (`ts:hex`), over the topic
        // and the exact data text; broadcast to /poll.
        const data = '[{"type": "delete", "data": {"mac": "bb"}}]'
        const posted = yield* postForm(`${server.url}/sync/mdb/update`, { data, hmac: yield* generateOriginal(PUB, publishMessage("mdb", data)) })
        expect(posted).toEqual({ status: 200, body: "" })
        yield* waitFor("poll line 2", () => poll.lines.length === 2)
        expect(poll.lines[1]).toBe(data)
        yield* waitFor("batch 3", () => seen.length === 3)
        poll.close()

        // Restart: stop the server, a writer commits while it is down, start on the same port.
        yield* Scope.close(server.scope, Exit.void)
        yield* log.append("mdb", [{ op: "update", key: "cc", record: machine("cc", "r02p01").data }])
        server = yield* serve([mdb], server.port)
        yield* waitFor("resume", () => seen.length === 4)
        expect(seen.slice(3)).toMatchObject([{ kind: "batch", revision: 4, keys: ["aa", "cc"] }])
        expect((yield* Metric.value(followerMetrics("mdb").resyncs)).count).toBe(0)
        // Live again after the restart (the hub woke on NOTIFY).
        yield* log.append("mdb", [{ op: "delete", key: "aa", record: { mac: "aa" } }])
        yield* waitFor("batch 5", () => seen.length === 5)
        expect(seen.map((s) => `${s.kind}${s.revision}`)).toEqual(["snapshot1", "batch2", "batch3", "batch4", "batch5"])
        expect(seen[4]?.keys).toEqual(["cc"])
        yield* Fiber.interrupt(follower)
        yield* Scope.close(server.scope, Exit.void)
      })
    )

    it.scoped("forged and stale tokens are refused on every entry point and change nothing", () =>
      Effect.gen(function* () {
        const log = yield* ChangeLog
        const source = makeChangeLogSource(log, { topic: "mdb2", keyField: "mac" })
        const topic: HubTopic = { definition: { ...OPEN_MDB, name: "mdb2" }, secrets: { publisher: PUB, subscriber: SUB }, source }
        const server = yield* serve([topic], 0)
        const headBefore = yield* source.head
        const data = JSON.stringify([machine("dd", "x")])
        const forged = "1700000000:" + "0".repeat(64)
        // Right secret, stamped 10 minutes ago.
        const ts = String(Math.floor(Date.now() / 1000) - 600)
        const staleToken = `${ts}:${createHmac("sha256", Redacted.value(PUB)).update(publishMessage("mdb2", data) + ts).digest("hex")}`

        // POST /update: forged, stale, signed with the subscriber secret, missing.
        expect(yield* postForm(`${server.url}/sync/mdb2/update`, { data, hmac: forged })).toEqual({ status: 403, body: "Invalid token" })
        expect(yield* postForm(`${server.url}/sync/mdb2/update`, { data, hmac: staleToken })).toEqual({ status: 403, body: "Invalid token" })
        expect((yield* postForm(`${server.url}/sync/mdb2/update`, { data, hmac: yield* generate(SUB, publishMessage("mdb2", data)) })).status).toBe(403)
        // The original's token (over `data` alone) and a token for another topic.
        expect((yield* postForm(`${server.url}/sync/mdb2/update`, { data, hmac: yield* generate(PUB, data) })).status).toBe(403)
        expect((yield* postForm(`${server.url}/sync/mdb2/update`, { data, hmac: yield* generate(PUB, publishMessage("mdb", data)) })).status).toBe(403)
        // A valid token spent once: its replay is refused.
        const once = yield* generate(PUB, publishMessage("mdb2", '[]'))
        expect((yield* postForm(`${server.url}/sync/mdb2/update`, { data: "[]", hmac: once })).status).toBe(400) // an empty message
        expect(yield* postForm(`${server.url}/sync/mdb2/update`, { data: "[]", hmac: once })).toEqual({ status: 403, body: "Invalid token" })
        expect((yield* postForm(`${server.url}/sync/mdb2/update`, { data })).status).toBe(400)
        // A valid token over different data than sent.
        expect((yield* postForm(`${server.url}/sync/mdb2/update`, { data: data.replace("dd", "ee"), hmac: yield* generate(PUB, publishMessage("mdb2", data)) })).status).toBe(403)
        // A malformed message with a valid token: 400 with the reason, nothing stored.
        const bad = '[{"type": "upsert", "data": {"mac": "x"}}]'
        expect(yield* postForm(`${server.url}/sync/mdb2/update`, { data: bad, hmac: yield* generate(PUB, publishMessage("mdb2", bad)) })).toEqual({
          status: 400,
          body: 'invalid update message for mdb2 at [0]: type must be "update" or "delete", got "upsert"'
        })

        // A NUL in a record (jsonb cannot store it): 400 naming where, not a 503 that the
        // publisher retries forever (issue 17 item 7).
        const nul = JSON.stringify([machine("ff", "x"), { type: "update", data: { mac: "ab", hostname: "a\u0000b" } }])
        expect(yield* postForm(`${server.url}/sync/mdb2/update`, { data: nul, hmac: yield* generate(PUB, publishMessage("mdb2", nul)) })).toEqual({
          status: 400,
          body: "invalid update message for mdb2 at [1]: data.hostname contains a NUL character (\\u0000), which cannot be stored"
        })

        // /poll: forged → 403, missing → 400.
        const polled = yield* openLines(`${server.url}/sync/mdb2/poll?hmac=${forged}`)
        yield* waitFor("403 body", () => polled.body() === "Invalid token")
        expect(polled.status).toBe(403)
        expect((yield* openLines(`${server.url}/sync/mdb2/poll`)).status).toBe(400)

        // The rpc: Publish with a forged token, Subscribe with a token for another topic.
        const conn = yield* websocketConnector(server.url)
        const pub = yield* Effect.flip(conn.publish({ topic: "mdb2", data, token: forged }))
        expect(pub).toMatchObject({ _tag: "SyncUnauthorized", action: "publish", reason: "expired" })
        const pubBad = yield* Effect.flip(conn.publish({ topic: "mdb2", data, token: yield* generate(Redacted.make("nope"), data) }))
        expect(pubBad).toMatchObject({ _tag: "SyncUnauthorized", reason: "bad_signature" })
        const sub = yield* Effect.flip(
          Stream.runCollect(conn.subscribe({ topic: "mdb2", token: yield* generate(SUB, "sync-subscribe:mdb") }))
        )
        expect(sub).toMatchObject({ _tag: "SyncUnauthorized", action: "subscribe", reason: "bad_signature" })
        const unknown = yield* Effect.flip(Stream.runCollect(conn.subscribe({ topic: "nope", token: "x" })))
        expect(unknown).toMatchObject({ _tag: "UnknownTopic", known: ["mdb2"] })
        // The follow route with a request that is not a FollowRequest: closed with 1008, no subscriber.
        const socket = yield* Socket.makeWebSocket(followSocketUrl(server.url, "mdb2")).pipe(Effect.provide(NodeSocket.layerWebSocketConstructor))
        const write = yield* socket.writer
        const closed = yield* Effect.flip(socket.runRaw(() => {}, { onOpen: Effect.orDie(write('{"since": 3}')) }))
        expect(closed).toMatchObject({ reason: "Close", code: 1008, closeReason: "malformed follow request" })
        expect((yield* server.hub.topic("mdb2").pipe(Effect.flatMap((h) => h.subscribers))).length).toBe(0)

        expect(yield* source.head).toBe(headBefore)
        expect((yield* source.snapshot).records).toEqual([])
      })
    )

    it.scoped("the mdb and udb topics have one writer: a forged publish with the publisher secret is refused, counted, and changes nothing", () =>
      Effect.gen(function* () {
        const log = yield* ChangeLog
        const mdb: HubTopic = { definition: MDB_TOPIC, secrets: { publisher: PUB, subscriber: SUB }, source: makeChangeLogSource(log, { topic: "mdb", keyField: "mac" }) }
        const udb: HubTopic = {
          definition: UDB_TOPIC,
          secrets: { publisher: PUB, subscriber: SUB, hashes: HASH },
          source: makeChangeLogSource(log, { topic: "udb", keyField: "login" })
        }
        const server = yield* serve([mdb, udb], 0)
        const heads = Effect.all([mdb.source.head, udb.source.head])
        const before = yield* heads
        const counted = Effect.all([Metric.value(outsidePublishesRefused("mdb")), Metric.value(outsidePublishesRefused("udb"))]).pipe(
          Effect.map(([m, u]) => [m.count, u.count])
        )
        const countedBefore = yield* counted
        // Both udb audiences are listening from before the attempts.
        const audiences = yield* Effect.all([SUB, HASH].map((secret) =>
          Effect.flatMap(generate(secret, subscribeMessage("udb")), (token) => openLines(`${server.url}/sync/udb/poll?hmac=${token}`))
        ))
        yield* waitFor("both snapshots", () => audiences.every((a) => a.lines.length === 1))

        // A made-up root with a password and an ssh key, and a made-up machine, each with a valid token.
        const evil = JSON.stringify([{ type: "update", data: { login: "evilroot", firstname: "E", lastname: "Vil", uid: 12999, group: "root", password: "pw", shell: "/bin/bash", ssh_key: "ssh-ed25519 AAAA evil", id: 999 } }])
        const rogue = JSON.stringify([machine("66:66:66:66:66:66", "rogue")])
        const refusedText = (topic: string, writer: string) => `sync topic ${topic} is written only by ${writer}: outside publishes are refused`
        expect(yield* postForm(`${server.url}/sync/udb/update`, { data: evil, hmac: yield* generate(PUB, publishMessage("udb", evil)) })).toEqual({
          status: 403,
          body: refusedText("udb", "the UDB service")
        })
        expect(yield* postForm(`${server.url}/sync/mdb/update`, { data: rogue, hmac: yield* generate(PUB, publishMessage("mdb", rogue)) })).toEqual({
          status: 403,
          body: refusedText("mdb", "the MDB service")
        })
        // The rpc: a typed error.
        const conn = yield* websocketConnector(server.url)
        const viaRpc = yield* Effect.flip(conn.publish({ topic: "udb", data: evil, token: yield* generate(PUB, publishMessage("udb", evil)) }))
        expect(viaRpc).toMatchObject({ _tag: "TopicNotWritable", topic: "udb", writer: "the UDB service" })

        expect(yield* heads).toEqual(before)
        expect(yield* counted).toEqual([countedBefore[0]! + 1, countedBefore[1]! + 2])
        // The next line either audience reads is the writer's own next batch, not the forged one.
        yield* log.append("udb", [{ op: "update", key: "legit", record: { login: "legit", uid: 10042 } }])
        yield* waitFor("the writer's batch", () => audiences.every((a) => a.lines.length === 2))
        for (const a of audiences) {
          expect(a.lines.join("\n")).not.toContain("evilroot")
          expect(JSON.parse(a.lines[1]!)).toEqual([{ type: "update", data: { login: "legit", uid: 10042 } }])
          a.close()
        }
      })
    )

    it.scoped("a subscriber whose websocket stopped reading is detached as lagging; a reading follower misses nothing", () =>
      Effect.gen(function* () {
        const log = yield* ChangeLog
        const source = makeChangeLogSource(log, { topic: "mdb3", keyField: "mac" })
        const topic: HubTopic = { definition: { ...OPEN_MDB, name: "mdb3" }, secrets: { publisher: PUB, subscriber: SUB }, source }
        const server = yield* serve([topic], 0, 8)
        const hub = yield* server.hub.topic("mdb3")
        const client = makeSyncClient({
          connect: websocketConnector(server.url),
          credentials: () => ({ subscribe: SUB, publish: PUB }),
          keyFields: { mdb3: "mac" },
          backoff: { initial: "50 millis", max: "500 millis" }
        })
        const revisions: Array<number> = []
        yield* Effect.fork(client.follow("mdb3", (_s, _m, info) => Effect.sync(() => revisions.push(info.revision))))
        // The stalled one: takes its first chunk, then never pulls again.
        const conn = yield* websocketConnector(server.url)
        const pull = yield* Stream.toPull(conn.subscribe({ topic: "mdb3", token: yield* generate(SUB, "sync-subscribe:mdb3") }))
        yield* pull
        yield* waitFor("two subscribers", () => revisions.length === 1)
        expect((yield* hub.subscribers).length).toBe(2)
        for (let i = 1; i <= 60; i++) yield* client.publish("mdb3", [machine(`m${i % 7}`, `h${i}`)])
        yield* waitFor("all 60 batches", () => revisions.length === 61)
        expect(revisions).toEqual(Array.from({ length: 61 }, (_, i) => i))
        // Its rpc client buffers 16 chunks, the hub 8 frames: far fewer than 60.
        yield* waitFor("the stalled one detached", () => Effect.runSync(hub.subscribers).length === 1)
        const lagged = yield* Effect.flip(Effect.forever(pull))
        expect(lagged).toMatchObject({ _tag: "Some", value: { _tag: "SyncLagging", topic: "mdb3" } })
      })
    )
  }
})
