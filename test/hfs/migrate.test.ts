import { describe, expect, it } from "@effect/vitest"
import { Effect, TestClock } from "effect"
import { createHash } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { imageDigest } from "../../src/actors/hfs/transfer/image-digest.js"
import { allocatedBytes, fsck } from "./support/images.js"
import { PgTest } from "./support/hfs.js"
import { mountNbd, probe } from "./support/mount.js"
import { metricValue, startPair } from "./support/pair.js"

// Migration between two HFS of one process (hfs0 on 127.0.10.1, hfs1 on 127.0.10.2), over
// their real rpc ports and transfer listeners, real images, PostgreSQL and NBD clients.

const uriOf = (g: { host: string; port: number; export: string }) => `nbd://${g.host}:${g.port}/${g.export}`
const exists = (p: string) => Effect.promise(() => fs.access(p).then(() => true, () => false))

describe("HFS migration", () => {
  it.layer(PgTest, { timeout: 120_000 })((it) => {
    it.scoped("a home created and written on hfs0 moves to hfs1 when the user logs on there: file intact, e2fsck clean, old export refused", () =>
      Effect.gen(function* () {
        const { hfs, work, metrics } = yield* startPair({ profile: { live_grant_seconds: 0 } })
        const first = yield* hfs.getHome("alice", "pas-a")
        expect(first).toMatchObject({ host: "127.0.10.1", generation: 1 })
        const payload = Buffer.alloc(5 * 1024 * 1024)
        for (let i = 0; i < payload.length; i++) payload[i] = (i * 7919 + (i >> 12)) & 0xff
        const sha = createHash("sha256").update(payload).digest("hex")
        const mounted = yield* Effect.promise(() => mountNbd(uriOf(first), path.join(work.root, "client-a")))
        yield* Effect.promise(async () => {
          try {
            await fs.writeFile(path.join(mounted.dir, "data.bin"), payload)
          } finally {
            await mounted.unmount()
          }
        })
        const source = path.join(work.exportBase, "hfs0", "alice.nbd")
        const sourceDigest = yield* imageDigest(source)

        const moved = yield* hfs.getHome("alice", "alt-b")
        // created g0, granted g1, handed over g2, committed on hfs1 g3, granted there g4
        expect(moved).toMatchObject({ host: "127.0.10.2", generation: 4 })
        expect(yield* hfs.where("alice")).toMatchObject({ hfs: 1, generation: 4, state: "ready", migrate_to: null })
        const target = path.join(work.exportBase, "hfs1", "alice.nbd")
        expect(yield* imageDigest(target)).toBe(sourceDigest)
        const read = yield* Effect.promise(async () => {
          const m = await mountNbd(uriOf(moved), path.join(work.root, "client-b"))
          try {
            return await fs.readFile(path.join(m.dir, "data.bin"))
          } finally {
            await m.unmount()
          }
        })
        expect(createHash("sha256").update(read).digest("hex")).toBe(sha)
        expect((yield* Effect.promise(() => fsck(target))).code).toBe(0)
        // the old client with its old name: refused by hfs0 (no grant there any more)
        const old = yield* Effect.promise(() => probe(uriOf(first)))
        expect(old.ok).toBe(false)
        expect(yield* Effect.promise(() => metricValue(metrics, "prolo_hfs_nbd_rejected_total", 'hfs="0",reason="no_grant"'))).toBe(1)
        // holes never crossed the wire
        const wire = yield* Effect.promise(() => metricValue(metrics, "prolo_hfs_migration_wire_bytes_total", 'hfs="1"'))
        const allocated = yield* Effect.promise(() => metricValue(metrics, "prolo_hfs_migration_allocated_bytes_total", 'hfs="1"'))
        // (the mount on hfs1 wrote a little since: the image's allocation is near, not equal)
        expect(Math.abs(allocated - (yield* Effect.promise(() => allocatedBytes(target))))).toBeLessThan(1024 * 1024)
        expect(wire / allocated).toBeLessThan(1.05)
        expect(yield* Effect.promise(() => metricValue(metrics, "prolo_hfs_migrations_in_flight", 'hfs="1"'))).toBe(0)
        expect(yield* Effect.promise(() => metricValue(metrics, "hfs_migrate_remote_user_summary_count", 'hfs="0"'))).toBe(1)
        expect(yield* Effect.promise(() => metricValue(metrics, "hfs_migrate_user_summary_count", 'hfs="0"'))).toBe(1)
        // hfs0 retired its copy (told in the background right after the commit)
        for (let i = 0; i < 200 && (yield* exists(source)); i++) yield* Effect.promise(() => new Promise((r) => setTimeout(r, 10)))
        expect(yield* exists(source)).toBe(false)
        expect((yield* Effect.promise(() => fs.readdir(path.join(work.exportBase, "hfs0", ".retired")))).length).toBe(1)
      })
    )

    it.scoped("two HFS moving users to each other at the same moment: no deadlock, all move (3 users each way, 3 rounds back and forth)", () =>
      Effect.gen(function* () {
        const { hfs } = yield* startPair({ profile: { live_grant_seconds: 0 } })
        const east = ["user0", "user1", "user2"]
        const west = ["user3", "user4", "user5"]
        yield* Effect.forEach(east, (u) => hfs.getHome(u, "pas-a"), { concurrency: "unbounded" })
        yield* Effect.forEach(west, (u) => hfs.getHome(u, "alt-b"), { concurrency: "unbounded" })
        for (let round = 0; round < 3; round++) {
          // east users log on at hfs1 while west users log on at hfs0, all at once
          const [to1, to0] = round % 2 === 0 ? [east, west] : [west, east]
          const grants = yield* Effect.all(
            [...to1.map((u) => hfs.getHome(u, "alt-b")), ...to0.map((u) => hfs.getHome(u, "pas-a"))],
            { concurrency: "unbounded" }
          ) // a deadlock would hang here until the test's timeout
          expect(grants.map((g) => g.host)).toEqual([...to1.map(() => "127.0.10.2"), ...to0.map(() => "127.0.10.1")])
          const rows = new Map((yield* hfs.list).map((l) => [l.login, l]))
          for (const u of to1) expect(rows.get(u)).toMatchObject({ hfs: 1, state: "ready" })
          for (const u of to0) expect(rows.get(u)).toMatchObject({ hfs: 0, state: "ready" })
        }
      })
    )

    it.scoped("a copy whose row names another HFS (a lost moved-away notice) is retired by the sweep; retired copies are pruned by age", () =>
      Effect.gen(function* () {
        yield* TestClock.setTime(1_700_000_000_000)
        const { hfs, work } = yield* startPair({ profile: { live_grant_seconds: 0, retention: { count: 1, seconds: 100, sweep_seconds: 60 } } })
        yield* hfs.getHome("alice", "pas-a")
        yield* hfs.getHome("alice", "alt-b")
        const dir0 = path.join(work.exportBase, "hfs0")
        const stale = path.join(dir0, "alice.nbd")
        for (let i = 0; i < 200 && (yield* exists(stale)); i++) yield* Effect.promise(() => new Promise((r) => setTimeout(r, 10)))
        // as if hfs0 had been down when told: its copy is back in the served set
        yield* Effect.promise(() => fs.copyFile(path.join(work.exportBase, "hfs1", "alice.nbd"), stale))
        // each step jumps past a sweep and waits for it (it runs in real time between the jumps)
        const sweepUntil = (done: Effect.Effect<boolean>) =>
          Effect.gen(function* () {
            for (let step = 0; step < 5 && !(yield* done); step++) {
              yield* TestClock.adjust("61 seconds")
              for (let i = 0; i < 100 && !(yield* done); i++) yield* Effect.promise(() => new Promise((r) => setTimeout(r, 10)))
            }
            return yield* done
          })
        expect(yield* sweepUntil(Effect.map(exists(stale), (e) => !e))).toBe(true)
        const retired = () => Effect.promise(() => fs.readdir(path.join(dir0, ".retired")))
        expect((yield* retired()).length).toBe(1) // count 1: the newest copy only
        // a few sweeps later the copy is older than 100 s: pruned
        yield* sweepUntil(Effect.map(retired(), (r) => r.length === 0))
        expect(yield* retired()).toEqual([])
        // hfs1's home was never touched
        expect(yield* hfs.where("alice")).toMatchObject({ hfs: 1, state: "ready" })
      })
    )
  })
})
