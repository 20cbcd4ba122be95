import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
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
        // hfs0 retired its copy (told in the background right after the commit)
        for (let i = 0; i < 200 && (yield* exists(source)); i++) yield* Effect.promise(() => new Promise((r) => setTimeout(r, 10)))
        expect(yield* exists(source)).toBe(false)
        expect((yield* Effect.promise(() => fs.readdir(path.join(work.exportBase, "hfs0", ".retired")))).length).toBe(1)
      })
    )

    it.scoped("two HFS moving users to each other at the same moment: no deadlock, both move", () =>
      Effect.gen(function* () {
        const { hfs } = yield* startPair({ profile: { live_grant_seconds: 0 } })
        yield* hfs.getHome("alice", "pas-a")
        yield* hfs.getHome("bob", "alt-b")
        const [alice, bob] = yield* Effect.all([hfs.getHome("alice", "alt-b"), hfs.getHome("bob", "pas-a")], { concurrency: "unbounded" })
        expect([alice.host, bob.host]).toEqual(["127.0.10.2", "127.0.10.1"])
        expect((yield* hfs.list).map((l) => [l.login, l.hfs, l.state])).toEqual([
          ["alice", 1, "ready"],
          ["bob", 0, "ready"]
        ])
      })
    )
  })
})
