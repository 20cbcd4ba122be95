import * as HttpServer from "@effect/platform/HttpServer"
import { expect, layer } from "@effect/vitest"
import { Context, Effect, Exit, Layer, Queue, Scope } from "effect"
import { type ClientRequest, request } from "node:http"
import * as MdbService from "../../src/actors/mdb/service.js"
import { changeLogSourceFor } from "../../src/actors/sync/changelog-source.js"
import { type HubTopic, SyncHub } from "../../src/actors/sync/hub.js"
import { syncRoutes } from "../../src/actors/sync/routes.js"
import { MDB_TOPIC, UDB_TOPIC } from "../../src/actors/sync/topics.js"
import { stableHasher } from "../../src/runtime/shadow-hash.js"
import * as UdbRepo from "../../src/actors/udb/repo.js"
import * as UdbService from "../../src/actors/udb/service.js"
import { SystemAccounts } from "../../src/actors/udb/system-accounts.js"
import { httpHostLayer, serverUrl } from "../../src/runtime/http-host.js"
import { Metrics } from "../../src/runtime/metrics.js"
import { generate } from "../../src/runtime/timeauth.js"
import { subscribeMessage } from "../../src/protocols/sync.js"
import { ChangeLog } from "../../src/store/change-log.js"
import { PgTest } from "../support/pg.js"
import { gw } from "../mdb/fixtures.js"
import { HASH, PUB, SUB } from "./harness.js"
import { testSupervision } from "../support/supervision.js"

// `/sync/<topic>/poll` lines of the durable topics, written by the real MDB and UDB services and
// read back from PostgreSQL (jsonb, which keeps no key order): each record in its original
// model's `to_dict` order, laid out as Python's json.dumps.

const Services = Layer.mergeAll(
  MdbService.layer,
  UdbService.layer.pipe(Layer.provideMerge(UdbRepo.layer), Layer.provide(SystemAccounts.fixed(new Map([["root", 0]]))))
).pipe(Layer.provideMerge(PgTest))

/** A `/poll` response read line by line into a queue; hung up when the scope closes. */
const openPoll = (url: string) =>
  Effect.gen(function* () {
    const lines = yield* Queue.unbounded<string>()
    yield* Effect.acquireRelease(
      Effect.async<ClientRequest, Error>((resume) => {
        let buffer = ""
        const req = request(url, { agent: false }, (res) => {
          res.setEncoding("utf8")
          res.on("data", (chunk: string) => {
            buffer += chunk
            let at: number
            while ((at = buffer.indexOf("\n")) >= 0) {
              Queue.unsafeOffer(lines, buffer.slice(0, at + 1))
              buffer = buffer.slice(at + 1)
            }
          })
          resume(Effect.succeed(req))
        })
        req.on("error", (e) => resume(Effect.fail(e)))
        req.end()
      }),
      (req) => Effect.sync(() => req.destroy())
    )
    return lines
  })

layer(Services, { timeout: "60 seconds", excludeTestServices: true })("sync /poll lines of the durable topics", (it) => {
  it.scoped("mdb and udb records come out in the original's field order", () =>
    Effect.gen(function* () {
      const log = yield* ChangeLog
      yield* (yield* MdbService.Mdb).addMachine(gw)
      yield* (yield* UdbService.Udb).create({
        login: "alice",
        firstname: "Alice",
        lastname: "Liddell",
        group: "root",
        password: "Wond3rland",
        ssh_key: "ssh-ed25519 AAAA alice"
      })

      const topics: ReadonlyArray<HubTopic> = [MDB_TOPIC, UDB_TOPIC].map((definition) => ({
        definition,
        secrets: { publisher: PUB, subscriber: SUB, hashes: HASH },
        source: changeLogSourceFor(log, definition)
      }))
      const scope = yield* Scope.make()
      yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
      const ctx = yield* Layer.buildWithScope(
        httpHostLayer(syncRoutes, { listen: { host: "127.0.0.1", port: 0 }, drainTimeout: "200 millis" }).pipe(
          Layer.provideMerge(SyncHub.layer({ topics })),
          Layer.provide(Layer.merge(Metrics.layer, testSupervision))
        ),
        scope
      )
      const url = serverUrl(Context.get(ctx, HttpServer.HttpServer).address)
      const poll = (topic: string, secret: typeof PUB) =>
        Effect.flatMap(generate(secret, subscribeMessage(topic)), (token) => openPoll(`${url}/sync/${topic}/poll?hmac=${token}`))

      const mdbLines = yield* poll("mdb", SUB)
      expect(yield* Queue.take(mdbLines)).toBe(
        '[{"type": "update", "data": {"hostname": "gw", "aliases": "mdb,mdbsync,ns,netboot,udb,udbsync,presencesync,ntp,sso", ' +
          '"ip": "192.168.1.254", "mac": "11:22:33:44:55:66", "rfs": 0, "hfs": 0, "mtype": "service", "room": "pasteur", ' +
          '"is_faulty": false, "is_faulty_details": "", "id": 1}}]\n'
      )
      // The hash audience: the original order, `password_hash` in the place of `password`.
      const hashOf = (password: string) => stableHasher(PUB)("alice", password)
      const udbLines = yield* poll("udb", HASH)
      expect(yield* Queue.take(udbLines)).toBe(
        '[{"type": "update", "data": {"login": "alice", "firstname": "Alice", "lastname": "Liddell", "uid": 12001, "group": "root", ' +
          `"password_hash": "${hashOf("Wond3rland")}", "shell": "/bin/bash", "ssh_key": "ssh-ed25519 AAAA alice", "id": 1}}]\n`
      )
      // The public audience: the same order, without the password.
      expect(yield* Queue.take(yield* poll("udb", SUB))).toBe(
        '[{"type": "update", "data": {"login": "alice", "firstname": "Alice", "lastname": "Liddell", "uid": 12001, "group": "root", ' +
          '"shell": "/bin/bash", "ssh_key": "ssh-ed25519 AAAA alice", "id": 1}}]\n'
      )
      // Live batches too (read back from the change log).
      yield* (yield* UdbService.Udb).setPassword("alice", "Looking-Glass")
      expect(yield* Queue.take(udbLines)).toBe(
        '[{"type": "update", "data": {"login": "alice", "firstname": "Alice", "lastname": "Liddell", "uid": 12001, "group": "root", ' +
          `"password_hash": "${hashOf("Looking-Glass")}", "shell": "/bin/bash", "ssh_key": "ssh-ed25519 AAAA alice", "id": 1}}]\n`
      )
      yield* (yield* MdbService.Mdb).updateMachine("gw", { is_faulty: true, is_faulty_details: "fan" })
      expect(yield* Queue.take(mdbLines)).toBe(
        '[{"type": "update", "data": {"hostname": "gw", "aliases": "mdb,mdbsync,ns,netboot,udb,udbsync,presencesync,ntp,sso", ' +
          '"ip": "192.168.1.254", "mac": "11:22:33:44:55:66", "rfs": 0, "hfs": 0, "mtype": "service", "room": "pasteur", ' +
          '"is_faulty": true, "is_faulty_details": "fan", "id": 1}}]\n'
      )
    })
  )
})
