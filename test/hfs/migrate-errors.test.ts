import { SqlClient } from "@effect/sql"
import { Headers } from "@effect/platform"
import { RpcMiddleware, RpcTest } from "@effect/rpc"
import { describe, expect, it } from "@effect/vitest"
import { Clock, Effect, Layer, Redacted, Schedule, TestClock, TestServices } from "effect"
import { createHmac, randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { hfsHandlers } from "../../src/actors/hfs/handlers.js"
import { Hfs } from "../../src/actors/hfs/service.js"
import { imageDigest } from "../../src/actors/hfs/transfer/image-digest.js"
import { Cmd } from "../../src/nbd/protocol.js"
import { HfsRpcs, type HomeGrant } from "../../src/protocols/hfs.js"
import { Metrics } from "../../src/runtime/metrics.js"
import { AUTH_HEADER, signedMessage, TimeAuth, timeAuthServer } from "../../src/runtime/rpc-auth.js"
import { makeRpcTcpClient } from "../../src/runtime/rpc-tcp.js"
import { openSession, readSimpleReply, request } from "../nbd/harness.js"
import { corruptingRelay } from "./transfer/support.js"
import { run } from "./support/images.js"
import { hfsSecret, PgTest } from "./support/hfs.js"
import { probe } from "./support/mount.js"
import { metricValue, startPair } from "./support/pair.js"

// Migration refused or failed: each a clear error, and the home stays where it was, served.

const uriOf = (g: HomeGrant) => `nbd://${g.host}:${g.port}/${g.export}`
const exists = (p: string) => Effect.promise(() => fs.access(p).then(() => true, () => false))
const noLiveGrant = { live_grant_seconds: 0 }

/** Writes `bytes` random bytes at `offset` of the home through its grant (from 127.0.0.1). */
const fill = (grant: HomeGrant, offset: number, bytes: number) =>
  Effect.promise(async () => {
    const s = await openSession(grant.port, grant.export, { host: grant.host })
    try {
      for (let done = 0, cookie = 1; done < bytes; done += 1 << 20, cookie++) {
        s.client.write(request(Cmd.WRITE, cookie, offset + done, 1 << 20, 0, randomBytes(1 << 20)))
        expect((await readSimpleReply(s.client)).errno).toBe(0)
      }
    } finally {
      s.client.close()
    }
  })

describe("HFS migration: bad input and failures", () => {
  it.layer(PgTest, { timeout: 120_000 })((it) => {
    it.scoped("live_grant_seconds: granted and not attached yet → HomeInUse; attached, then detached (logout) → moves at once", () =>
      Effect.gen(function* () {
        const { hfs } = yield* startPair({ profile: { live_grant_seconds: 3600 } })
        const grant = yield* hfs.getHome("alice", "pas-a")
        // PAM's account stage answered, the mount comes next: the home is not moved under it
        const early = yield* Effect.flip(hfs.getHome("alice", "alt-b"))
        expect(early._tag).toBe("HomeInUse")
        // the machine attaches (the session), writes, and logs out (detaches)
        yield* fill(grant, 0, 1 << 20)
        // (the server sees the disconnect a moment later: retried for at most 2 s, far below the hour)
        const moved = yield* hfs.getHome("alice", "alt-b").pipe(
          Effect.retry({ while: (e) => e._tag === "HomeInUse", schedule: Schedule.spaced("50 millis"), times: 40 }),
          TestServices.provideLive
        )
        expect(moved.generation).toBeGreaterThan(grant.generation)
        expect(yield* hfs.where("alice")).toMatchObject({ hfs: 1, state: "ready" })
      })
    )

    it.scoped("unknown HFS, machine of another HFS, source HFS down: a clear error each, the home stays put and served", () =>
      Effect.gen(function* () {
        const { hfs, work } = yield* startPair({ profile: noLiveGrant })
        const grant = yield* hfs.getHome("alice", "pas-a")
        const before = yield* hfs.where("alice")
        const cases = [
          [hfs.migrate("alice", 7), "InvalidHfsRequest", /hfs7 does not run on this node \(it runs hfs0, hfs1\)/],
          [hfs.migrate("alice", 2), "InvalidHfsRequest", /hfs2 does not run on this node/],
          [hfs.migrate("../alice", 1), "InvalidHfsRequest", /invalid login/],
          [hfs.migrate("nobody", 1), "UnknownUser", /No such user: nobody/],
          [hfs.getHome("alice", "far-c"), "WrongHfs", /far-c belongs to hfs2/],
          [hfs.getHome("alice", "pas-a", 1), "WrongHfs", /pas-a belongs to hfs0, not hfs1/],
          [hfs.handOver("alice", 0, 0), "InvalidHfsRequest", /cannot hand the home of alice over to itself/]
        ] as const
        for (const [effect, tag, text] of cases) {
          const e = yield* Effect.flip(effect as Effect.Effect<unknown, { readonly _tag: string; readonly message: string }>)
          expect(e._tag).toBe(tag)
          expect(e.message).toMatch(text)
        }
        expect(yield* hfs.where("alice")).toEqual(before)
        expect((yield* Effect.promise(() => probe(uriOf(grant)))).ok).toBe(true)

        // a home on hfs2, whose process is down (nothing listens on 127.0.10.3)
        const sql = yield* SqlClient.SqlClient
        yield* sql`INSERT INTO hfs_location (contest, login, hfs, generation) VALUES (false, 'bob', 2, 5)`
        for (const effect of [hfs.getHome("bob", "alt-b"), hfs.migrate("bob", 1)]) {
          const e = yield* Effect.flip(effect as Effect.Effect<unknown, { readonly _tag: string; readonly message: string }>)
          expect(e._tag).toBe("HfsUnavailable")
          expect(e.message).toMatch(/hfs2 cannot be reached/)
        }
        expect(yield* hfs.where("bob")).toMatchObject({ hfs: 2, generation: 5, state: "ready" })
        expect(yield* exists(path.join(work.exportBase, "hfs1", "bob.nbd"))).toBe(false)
      })
    )

    it.scoped("a corrupted chunk on the wire: refused by its checksum, counted, the source stays the home; the next login resumes and moves it", () =>
      Effect.gen(function* () {
        let relayPort: number | undefined
        const { hfs, a, work, metrics } = yield* startPair({
          profile: noLiveGrant,
          transferRoute: (to) => (relayPort === undefined ? to : { host: to.host, port: relayPort })
        })
        const grant = yield* hfs.getHome("alice", "pas-a")
        yield* fill(grant, 64 << 20, 8 << 20)
        const source = path.join(work.exportBase, "hfs0", "alice.nbd")
        const digest = yield* imageDigest(source)
        // 1 byte flipped 2 KiB into the first window's payload (START is 33 bytes)
        relayPort = (yield* corruptingRelay(a.transferPort, 33 + 2048, "127.0.10.1")).port
        const e = yield* Effect.flip(hfs.getHome("alice", "alt-b"))
        expect(e._tag).toBe("HfsUnavailable")
        expect(e.message).toMatch(/ChecksumMismatch.*the home stays on hfs0/)
        expect(yield* Effect.promise(() => metricValue(metrics, "prolo_hfs_transfer_checksum_failures_total", 'hfs="1"'))).toBe(1)
        expect(yield* Effect.promise(() => metricValue(metrics, "prolo_hfs_migrations_failed_total", 'reason="ChecksumMismatch"'))).toBe(1)
        // still hfs0's (handed over, not committed: the next attempt resumes), image unchanged, nothing in place on hfs1
        expect(yield* hfs.where("alice")).toMatchObject({ hfs: 0, state: "migrating", migrate_to: 1 })
        expect(yield* imageDigest(source)).toBe(digest)
        expect(yield* exists(path.join(work.exportBase, "hfs1", "alice.nbd"))).toBe(false)
        // a clean link: the next login moves it
        relayPort = undefined
        const moved = yield* hfs.getHome("alice", "alt-b")
        expect(moved.host).toBe("127.0.10.2")
        expect(yield* imageDigest(path.join(work.exportBase, "hfs1", "alice.nbd"))).toBe(digest)
      })
    )

    it.scoped("a stale hand-over is taken back by a login on the source HFS: the destination's copy can no longer commit", () =>
      Effect.gen(function* () {
        let relayPort: number | undefined
        const { hfs, a, work } = yield* startPair({
          profile: noLiveGrant,
          transferRoute: (to) => (relayPort === undefined ? to : { host: to.host, port: relayPort })
        })
        yield* hfs.getHome("alice", "pas-a")
        relayPort = (yield* corruptingRelay(a.transferPort, 33 + 2048, "127.0.10.1")).port
        yield* Effect.flip(hfs.getHome("alice", "alt-b"))
        const stale = yield* hfs.where("alice")
        expect(stale).toMatchObject({ hfs: 0, state: "migrating", migrate_to: 1 })
        const back = yield* hfs.getHome("alice", "pas-a")
        expect(back.generation).toBe(stale.generation + 1)
        expect(yield* hfs.where("alice")).toMatchObject({ hfs: 0, state: "ready", generation: stale.generation + 1 })
        expect((yield* Effect.promise(() => probe(uriOf(back)))).ok).toBe(true)
        expect(yield* exists(path.join(work.exportBase, "hfs1", "alice.nbd"))).toBe(false)
      })
    )

    it.scoped("the HFS-to-HFS call with a forged or expired token: Unauthorized, nothing fenced or changed", () =>
      Effect.gen(function* () {
        // before the HFS start: TestClock wakes every sleeper on its way to a new time
        yield* TestClock.setTime(1_700_000_000_000)
        const { hfs, a } = yield* startPair({ profile: noLiveGrant })
        const grant = yield* hfs.getHome("alice", "pas-a")
        const before = yield* hfs.where("alice")
        const rpcPort = (yield* hfs.status).find((s) => s.hfs === 0)!.rpcPort!
        // over hfs0's real rpc port, signed with another secret
        const forged = yield* Effect.flip(
          Effect.flatMap(makeRpcTcpClient(HfsRpcs, { host: a.host, port: rpcPort, secret: Redacted.make("not-the-hfs-secret") }), (c) =>
            c.handOver({ login: "alice", to: 1 })
          )
        )
        expect(forged._tag).toBe("Unauthorized")
        // an expired token (121 s old), and a token made for another login
        const secret = Redacted.value(hfsSecret)
        const tokenAt = (seconds: number, message: string) => `${seconds}:${createHmac("sha256", secret).update(message + seconds).digest("hex")}`
        const metrics = yield* Metrics
        for (const [token, reason] of [
          [(m: string, now: number) => tokenAt(now - 121, m), "expired"],
          [(m: string, now: number) => tokenAt(now, m.replace("alice", "bob")), "bad_signature"]
        ] as const) {
          const client = yield* RpcTest.makeClient(HfsRpcs).pipe(
            Effect.provide(
              Layer.mergeAll(
                hfsHandlers(0),
                timeAuthServer("hfs", hfsSecret),
                RpcMiddleware.layerClient(TimeAuth, ({ rpc, request }) =>
                  Effect.gen(function* () {
                    const message = yield* Effect.orDie(signedMessage(rpc, request.payload))
                    const now = Math.floor((yield* Clock.currentTimeMillis) / 1000)
                    return { ...request, headers: Headers.set(request.headers, AUTH_HEADER, token(message, now)) }
                  })
                )
              ).pipe(Layer.provide(Layer.succeed(Hfs, hfs)), Layer.provide(Layer.succeed(Metrics, metrics)))
            )
          )
          const e = yield* Effect.flip(client.handOver({ login: "alice", to: 1 }))
          expect([e._tag, e._tag === "Unauthorized" ? e.reason : e.message]).toEqual(["Unauthorized", reason])
        }
        expect(yield* hfs.where("alice")).toEqual(before)
        expect((yield* Effect.promise(() => probe(uriOf(grant)))).ok).toBe(true)
      }).pipe(Effect.provide(Metrics.layer))
    )

    it.scoped("disk full on the destination (a small file system under hfs1): OutOfSpace, the home stays on hfs0, nothing in place", () =>
      Effect.gen(function* () {
        const { hfs, work } = yield* startPair({
          profile: noLiveGrant,
          before: (w) =>
            Effect.acquireRelease(
              Effect.promise(async () => {
                const dir = path.join(w.exportBase, "hfs1")
                const file = path.join(w.root, "small.ext4")
                await fs.mkdir(dir, { recursive: true })
                await fs.writeFile(file, "")
                await fs.truncate(file, 16 << 20)
                expect((await run("mke2fs", ["-q", "-t", "ext4", "-m", "0", file])).code).toBe(0)
                expect((await run("mount", ["-o", "loop", file, dir])).code).toBe(0)
                return dir
              }),
              // lazy: never blocks the teardown, the loop device goes once nothing uses it
              (dir) => Effect.promise(() => run("umount", ["-l", dir]))
            )
        })
        const grant = yield* hfs.getHome("alice", "pas-a")
        yield* fill(grant, 32 << 20, 24 << 20)
        const before = yield* hfs.where("alice")
        const e = yield* Effect.flip(hfs.getHome("alice", "alt-b"))
        expect(e._tag).toBe("OutOfSpace")
        expect(e.message).toMatch(/the home stays on hfs0/)
        expect(yield* hfs.where("alice")).toMatchObject({ hfs: 0, generation: before.generation + 1, state: "migrating", migrate_to: 1 })
        expect(yield* exists(path.join(work.exportBase, "hfs1", "alice.nbd"))).toBe(false)
        // the user back on hfs0 gets the home, intact
        const back = yield* hfs.getHome("alice", "pas-a")
        expect((yield* Effect.promise(() => probe(uriOf(back)))).ok).toBe(true)
      })
    )
  })
})
