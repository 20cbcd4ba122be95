import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Option, Queue, Redacted, Stream } from "effect"
import { execFileSync } from "node:child_process"
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { udbFollower } from "../../src/actors/passwd/follower.js"
import { authorizedKeysFile } from "../../src/actors/passwd/root-ssh.js"
import { verifyCrypt } from "../../src/runtime/shadow-hash.js"
import { makeChangeLogSource } from "../../src/actors/sync/changelog-source.js"
import { followUdb } from "../../src/actors/passwd/layer.js"
import { type FollowHandler, makeSyncClient } from "../../src/actors/sync/client.js"
import { inProcessConnector } from "../../src/actors/sync/connection.js"
import { SyncHub } from "../../src/actors/sync/hub.js"
import { UDB_TOPIC } from "../../src/actors/sync/topics.js"
import { Udb } from "../../src/actors/udb/service.js"
import { subscribeMessage } from "../../src/protocols/sync.js"
import { ChangeLog } from "../../src/store/change-log.js"
import { ActorTree } from "../../src/runtime/actor-tree.js"
import { Metrics } from "../../src/runtime/metrics.js"
import { supervisorGroup } from "../../src/runtime/supervisor.js"
import { generate } from "../../src/runtime/timeauth.js"
import { UdbTest } from "../udb/support.js"
import { baseFiles } from "./fixtures.js"
import { testSupervision } from "../support/supervision.js"

const PUB = Redacted.make("udbsync-pub-secret")
const SUB = Redacted.make("udbsync-sub-secret")
const HASH = Redacted.make("udbsync-shadow-secret")

// The gateway's udb topic over the PostgreSQL change log, with the UDB writing into it.
const HubTest = Layer.unwrapEffect(
  Effect.map(ChangeLog, (log) =>
    SyncHub.layer({
      topics: [
        {
          definition: UDB_TOPIC,
          secrets: { publisher: PUB, subscriber: SUB, hashes: HASH },
          source: makeChangeLogSource(log, { topic: "udb", keyField: "login" })
        }
      ]
    })
  )
).pipe(Layer.provideMerge(UdbTest), Layer.provideMerge(Layer.merge(Metrics.layer, testSupervision)))

const tempRoot = () =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const root = mkdtempSync(path.join(tmpdir(), "prolo-follow-"))
      mkdirSync(path.join(root, "etc"))
      writeFileSync(path.join(root, "etc/passwd"), baseFiles.passwd)
      writeFileSync(path.join(root, "etc/shadow"), baseFiles.shadow, { mode: 0o640 })
      writeFileSync(path.join(root, "etc/group"), baseFiles.group)
      writeFileSync(path.join(root, "etc/gshadow"), baseFiles.gshadow!, { mode: 0o640 })
      return root
    }),
    (root) => Effect.sync(() => rmSync(root, { recursive: true, force: true }))
  )

const read = (root: string, file: string) => readFileSync(path.join(root, file), "utf8")

describe("udb topic subscribers", () => {
  it.live("no subscriber sees a clear password: the public gets no password material, the hash audience SHA-512-crypt hashes", () =>
    Effect.gen(function* () {
      const hub = yield* SyncHub
      const udb = yield* Udb
      yield* udb.create({ login: "early", firstname: "E", lastname: "Arly", group: "user", password: "early-pw" })
      // Each subscriber's frames go to a queue; the writes start only once both hold their snapshot,
      // so the snapshot revision (and which passwords it contains) is fixed.
      const frames = (secret: Redacted.Redacted<string>) =>
        Effect.gen(function* () {
          const token = yield* generate(secret, subscribeMessage("udb"))
          const queue = yield* Queue.unbounded<unknown>()
          yield* Effect.forkScoped(
            Stream.runForEach(hub.subscribeSigned("udb", Option.none(), token, subscribeMessage("udb")), (frame) => Queue.offer(queue, frame))
          )
          const snapshot = yield* Queue.take(queue)
          return { snapshot, queue }
        })
      const publicFrames = yield* frames(SUB)
      const publisherFrames = yield* frames(PUB)
      const hashFrames = yield* frames(HASH)
      // snapshot, then a create, a password change, an update and a delete.
      yield* udb.create({ login: "alice", firstname: "A", lastname: "Lice", group: "root", password: "alice-pw", ssh_key: "ssh-ed25519 AAAA alice" })
      yield* udb.setPassword("alice", "alice-pw-2")
      yield* udb.update("early", { group: "orga" })
      yield* udb.remove("alice")
      // Frames up to and including the delete (revision = the log head); progress frames may interleave.
      const head = yield* (yield* ChangeLog).head("udb")
      const upToHead = (s: { snapshot: unknown; queue: Queue.Queue<unknown> }) =>
        Effect.map(
          Effect.iterate([s.snapshot], {
            while: (acc) => (acc[acc.length - 1] as { revision: number }).revision < head || (acc[acc.length - 1] as { _tag: string })._tag !== "Batch",
            body: (acc) => Effect.map(Queue.take(s.queue), (frame) => [...acc, frame])
          }),
          (all) => JSON.stringify(all)
        )
      const pub = yield* upToHead(publicFrames)
      // The publisher secret reads no more than the public (it is not a reading secret).
      const publisher = yield* upToHead(publisherFrames)
      const hashed = yield* upToHead(hashFrames)
      for (const text of [pub, publisher]) {
        expect(text).not.toContain("password")
        expect(text).not.toContain("-pw")
        expect(text).toContain("ssh-ed25519 AAAA alice") // the rest of the record is there
      }
      // Snapshot (early) and live batches (alice twice): hashes only, each of its password.
      expect(hashed).not.toContain("-pw")
      expect(hashed).not.toContain('"password"')
      const hashesOf = (login: string) =>
        [...hashed.matchAll(new RegExp(`"login":"${login}"[^}]*"password_hash":"([^"]+)"`, "g"))].map((m) => m[1]!)
      const early = hashesOf("early")
      expect(early.length).toBeGreaterThanOrEqual(2) // snapshot and the group change
      for (const h of early) expect(verifyCrypt("early-pw", h)).toBe(true)
      // The group change kept the password: the same hash (shadow stays unchanged).
      expect(new Set(early).size).toBe(1)
      // Created, password changed, deleted (the delete carries the last record).
      const alice = hashesOf("alice")
      expect(alice).toHaveLength(3)
      expect(verifyCrypt("alice-pw", alice[0]!)).toBe(true)
      for (const h of alice.slice(1)) expect(verifyCrypt("alice-pw-2", h)).toBe(true)
    }).pipe(Effect.scoped, Effect.provide(HubTest))
  )

  it.live("passwd sync and root keys follow the UDB through the hub", () =>
    Effect.gen(function* () {
      const udb = yield* Udb
      const root = yield* tempRoot()
      const applied = yield* Queue.unbounded<number>()
      const follower = udbFollower({ roots: [root], sshRoots: [root] })
      const client = makeSyncClient({ connect: Effect.provide(inProcessConnector, Layer.succeed(SyncHub, yield* SyncHub)), credentials: () => ({ subscribe: HASH }) })
      yield* Effect.forkScoped(
        client.follow("udb", (state, metadata, info) => Effect.zipRight(follower(state, metadata, info), Queue.offer(applied, info.revision)))
      )
      const log = yield* ChangeLog
      const reach = (revision: number) =>
        Effect.iterate(0, { while: (r) => r < revision, body: () => Queue.take(applied) })
      yield* reach(yield* log.head("udb"))

      yield* udb.create({ login: "jdoe", firstname: "John", lastname: "Doe", group: "user", password: "pw-john" })
      yield* udb.create({ login: "rita", firstname: "Rita", lastname: "Root", group: "root", password: "pw-rita", ssh_key: "ssh-ed25519 AAAA rita" })
      yield* reach(yield* log.head("udb"))
      const passwd = read(root, "etc/passwd")
      expect(passwd).toContain("jdoe:x:10001:10000:John Doe:/home/jdoe:/bin/bash\n")
      expect(passwd).toContain("rita:x:12001:10:Rita Root:/home/rita:/bin/bash\n")
      expect(passwd).not.toContain("gone:") // the stale managed account left
      const hashOf = (login: string) => read(root, "etc/shadow").split("\n").find((l) => l.startsWith(`${login}:`))!.split(":")[1]!
      expect(verifyCrypt("pw-john", hashOf("jdoe"))).toBe(true)
      expect(read(root, "etc/group")).toContain("wheel:x:10:rita\n")
      expect(statSync(path.join(root, "etc/shadow")).mode & 0o777).toBe(0o640) // kept the file's mode
      expect(read(root, "root/.ssh/authorized_keys")).toBe("ssh-ed25519 AAAA rita\n")
      expect(statSync(authorizedKeysFile(root)).mode & 0o777).toBe(0o600)
      expect(statSync(path.dirname(authorizedKeysFile(root))).mode & 0o777).toBe(0o700)
      execFileSync("pwck", ["-R", root, "-r", "-q"], { stdio: "pipe" })
      execFileSync("grpck", ["-R", root, "-r"], { stdio: "pipe" })

      // A change that does not touch jdoe keeps jdoe's hash; a password change renews it.
      const johnHash = hashOf("jdoe")
      const mtime = statSync(path.join(root, "etc/passwd")).mtimeMs
      yield* udb.setPassword("rita", "pw-rita-2")
      yield* reach(yield* log.head("udb"))
      expect(hashOf("jdoe")).toBe(johnHash)
      expect(verifyCrypt("pw-rita-2", hashOf("rita"))).toBe(true)
      expect(statSync(path.join(root, "etc/passwd")).mtimeMs).toBe(mtime) // passwd unchanged: not rewritten

      // An unparsable local line stops regeneration and leaves every file as it was.
      const broken = `${read(root, "etc/passwd")}broken line\n`
      writeFileSync(path.join(root, "etc/passwd"), broken)
      const shadowBefore = read(root, "etc/shadow")
      yield* udb.create({ login: "late", firstname: "L", lastname: "Ate", group: "user", password: "pw" })
      yield* reach(yield* log.head("udb"))
      expect(read(root, "etc/passwd")).toBe(broken)
      expect(read(root, "etc/shadow")).toBe(shadowBefore)

      yield* udb.remove("rita")
      writeFileSync(path.join(root, "etc/passwd"), broken.replace("broken line\n", ""))
      yield* udb.update("jdoe", { firstname: "Johnny" })
      yield* reach(yield* log.head("udb"))
      expect(read(root, "etc/passwd")).toContain("jdoe:x:10001:10000:Johnny Doe:")
      expect(read(root, "etc/passwd")).toContain("late:x:10002:")
      expect(read(root, "etc/passwd")).not.toContain("rita")
      expect(read(root, "root/.ssh/authorized_keys")).toBe("")
    }).pipe(Effect.scoped, Effect.provide(HubTest))
  )

  it.live("a passwd handler that dies restarts only its follower (restarts=1) and passwd sync goes on", () =>
    Effect.gen(function* () {
      const udb = yield* Udb
      const root = yield* tempRoot()
      const applied = yield* Queue.unbounded<number>()
      const follower = udbFollower({ roots: [root], sshRoots: [] })
      const client = makeSyncClient({ connect: Effect.provide(inProcessConnector, Layer.succeed(SyncHub, yield* SyncHub)), credentials: () => ({ subscribe: HASH }) })
      const log = yield* ChangeLog
      const reach = (revision: number) => Effect.iterate(0, { while: (r) => r < revision, body: () => Queue.take(applied) })
      // The injected defect: the first delivery of the revision that creates "boom" dies before writing.
      let died = false
      const handler: FollowHandler = (state, metadata, info) =>
        Effect.gen(function* () {
          if (!died && state.has("boom")) {
            died = true
            return yield* Effect.dieMessage("injected passwd handler defect")
          }
          yield* follower(state, metadata, info)
          yield* Queue.offer(applied, info.revision)
        })
      const group = yield* Layer.build(supervisorGroup("udbsync-passwd"))
      yield* followUdb(client, handler).pipe(Effect.provide(group))
      yield* reach(yield* log.head("udb"))

      yield* udb.create({ login: "boom", firstname: "Bo", lastname: "Om", group: "user", password: "pw-boom" })
      yield* reach(yield* log.head("udb"))
      expect(died).toBe(true)
      expect(read(root, "etc/passwd")).toContain("boom:x:") // the restarted follower wrote the state it died on
      yield* udb.create({ login: "after", firstname: "Af", lastname: "Ter", group: "user", password: "pw-after" })
      yield* reach(yield* log.head("udb"))
      expect(read(root, "etc/passwd")).toContain("after:x:") // and goes on following

      const tree = yield* (yield* ActorTree).snapshot
      const at = (p: string) => tree.find((i) => i.path === p)
      expect(at("/root/udbsync-passwd")).toMatchObject({ kind: "supervisor" })
      expect(at("/root/udbsync-passwd/follow-udb")).toMatchObject({ kind: "loop", restarts: 1 })
      expect(at("/root/udb")).toMatchObject({ kind: "loop", restarts: 0, children: 1 }) // the topic's fan-out did not restart
    }).pipe(Effect.scoped, Effect.provide(HubTest))
  )
})
