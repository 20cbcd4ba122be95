import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { Headers } from "@effect/platform"
import { RpcMiddleware, RpcTest } from "@effect/rpc"
import { Clock, Context, Effect, Either, Layer, Redacted, TestClock } from "effect"
import { hfsHandlers } from "../../src/actors/hfs/handlers.js"
import { HfsRpcs } from "../../src/protocols/hfs.js"
import { AUTH_HEADER, signedMessage, TimeAuth, timeAuthServer } from "../../src/runtime/rpc-auth.js"
import { createHash, createHmac } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { Hfs } from "../../src/actors/hfs/service.js"
import { Metrics } from "../../src/runtime/metrics.js"
import { fsck } from "./support/images.js"
import { hfsLayer, hfsWork, PgTest } from "./support/hfs.js"
import { mountNbd, probe } from "./support/mount.js"
import { Cmd } from "../../src/nbd/protocol.js"
import { openSession, readSimpleReply, request } from "../nbd/harness.js"

// HFS 0 in process on 127.0.0.1 with a real database, real images and real NBD clients
// (nbdinfo, nbdfuse + loop mount as root).

const uriOf = (g: { host: string; port: number; export: string }) => `nbd://${g.host}:${g.port}/${g.export}`

const start = (profile?: Record<string, unknown>) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`TRUNCATE hfs_location`
    const work = yield* hfsWork
    const ctx = yield* Layer.build(hfsLayer({ exportBase: work.exportBase, skeleton: work.skeleton, ...(profile === undefined ? {} : { profile }) }))
    const hfs = Context.get(ctx, Hfs)
    yield* hfs.instance(0)
    return { hfs, work, metrics: Context.get(ctx, Metrics), imageDir: path.join(work.exportBase, "hfs0") }
  })

const metricValue = async (metrics: Metrics["Type"], name: string, labels: string) => {
  const { body } = await Effect.runPromise(metrics.render)
  const line = body.split("\n").find((l) => l.startsWith(`${name}{`) && l.includes(labels))
  return line === undefined ? 0 : Number(line.split(" ").pop())
}

describe("HFS getHome", () => {
  it.layer(PgTest, { timeout: 120_000 })((it) => {
    it.scoped("a new home is created, mounted by the granted machine, written, re-served intact; e2fsck clean", () =>
      Effect.gen(function* () {
        const { hfs, work, imageDir } = yield* start()
        const grant = yield* hfs.getHome("alice", "pasteur-r01p01")
        expect(grant).toMatchObject({ host: "127.0.0.1", generation: 1 })
        expect(grant.export).toMatch(/^alice@1:[0-9a-f]{32}$/)
        expect((yield* hfs.where("alice"))).toMatchObject({ hfs: 0, generation: 1, state: "ready" })

        const payload = Buffer.alloc(3 * 1024 * 1024)
        for (let i = 0; i < payload.length; i++) payload[i] = (i * 7919) & 0xff
        const sha = createHash("sha256").update(payload).digest("hex")
        const mounted = yield* Effect.promise(() => mountNbd(uriOf(grant), path.join(work.root, "client")))
        yield* Effect.promise(async () => {
          try {
            expect(await fs.readFile(path.join(mounted.dir, ".bashrc"), "utf8")).toBe("# default\n")
            expect((await fs.stat(mounted.dir)).uid).toBe(10001)
            await fs.writeFile(path.join(mounted.dir, "data.bin"), payload)
          } finally {
            await mounted.unmount()
          }
        })
        // served again to the same machine (PAM's session stage after its account stage): same grant
        const again = yield* hfs.getHome("alice", "pasteur-r01p01")
        expect(again).toEqual(grant)
        const remount = yield* Effect.promise(() => mountNbd(uriOf(again), path.join(work.root, "client2")))
        const read = yield* Effect.promise(async () => {
          try {
            return await fs.readFile(path.join(remount.dir, "data.bin"))
          } finally {
            await remount.unmount()
          }
        })
        expect(createHash("sha256").update(read).digest("hex")).toBe(sha)
        expect((yield* Effect.promise(() => fsck(path.join(imageDir, "alice.nbd")))).code).toBe(0)
      })
    )

    it.scoped("only the granted machine attaches; a new grant moves the home and fences the old name", () =>
      Effect.gen(function* () {
        const { hfs, metrics } = yield* start()
        // granted to 127.0.0.2: nbdinfo (from 127.0.0.1) is refused and counted
        const other = yield* hfs.getHome("bob", "pasteur-r01p02")
        const refused = yield* Effect.promise(() => probe(uriOf(other)))
        expect(refused.ok).toBe(false)
        expect(yield* Effect.promise(() => metricValue(metrics, "prolo_hfs_nbd_rejected_total", 'reason="wrong_machine"'))).toBe(1)
        // the user moves to 127.0.0.1: new generation, new secret
        const here = yield* hfs.getHome("bob", "pasteur-r01p01")
        expect(here.generation).toBe(2)
        expect(here.export).not.toBe(other.export)
        expect((yield* Effect.promise(() => probe(uriOf(here)))).ok).toBe(true)
        // the previous name (generation 1) and a guessed secret are refused
        expect((yield* Effect.promise(() => probe(uriOf({ ...here, export: other.export })))).ok).toBe(false)
        expect((yield* Effect.promise(() => probe(uriOf({ ...here, export: here.export.replace(/:.*/, `:${"0".repeat(32)}`) })))).ok).toBe(false)
        expect((yield* Effect.promise(() => probe(uriOf({ ...here, export: "bob" })))).ok).toBe(false)
        expect(yield* Effect.promise(() => metricValue(metrics, "prolo_hfs_nbd_rejected_total", 'reason="bad_secret"'))).toBe(1)
        expect((yield* hfs.status)[0]!.served).toEqual([
          { login: "bob", hostname: "pasteur-r01p01", ip: "127.0.0.1", generation: 2, connections: 0 }
        ])
      })
    )

    it.scoped("the granted machine attaches from its own address; a grant to another machine cuts it (the fence)", () =>
      Effect.gen(function* () {
        const { hfs } = yield* start()
        const first = yield* hfs.getHome("alice", "pasteur-r01p02") // 127.0.0.2
        const session = yield* Effect.promise(() => openSession(first.port, first.export, { localAddress: "127.0.0.2" }))
        session.client.write(request(Cmd.WRITE, 1, 0, 4, 0, Buffer.from("gen1")))
        expect((yield* Effect.promise(() => readSimpleReply(session.client))).errno).toBe(0)
        // the same machine asking again (PAM's session stage after its account stage): the same
        // grant, and the attached client is not cut
        expect(yield* hfs.getHome("alice", "pasteur-r01p02")).toEqual(first)
        session.client.write(request(Cmd.READ, 2, 0, 4))
        const reread = yield* Effect.promise(() => readSimpleReply(session.client, 4))
        expect(reread.errno).toBe(0)
        expect(reread.data.toString()).toBe("gen1")
        expect(session.client.isClosed()).toBe(false)
        // from 127.0.0.1 with the very same name: refused
        expect((yield* Effect.promise(() => probe(uriOf(first)))).ok).toBe(false)
        // the user moves to 127.0.0.1: the old connection is cut before getHome answers
        const second = yield* hfs.getHome("alice", "pasteur-r01p01")
        expect(second.generation).toBe(2)
        yield* Effect.promise(() => session.client.closed)
        // and the old machine cannot come back with its old name
        const again = yield* Effect.promise(() =>
          openSession(first.port, first.export, { localAddress: "127.0.0.2" }).then(
            () => "attached",
            (e: Error) => e.message
          )
        )
        expect(again).toMatch(/refused/)
        expect((yield* Effect.promise(() => probe(uriOf(second)))).ok).toBe(true)
      })
    )

    it.scoped("bad input: each a clear error, no row and no image", () =>
      Effect.gen(function* () {
        const { hfs, imageDir } = yield* start()
        const cases: Array<[string, string, string, RegExp]> = [
          ["nobody", "pasteur-r01p01", "UnknownUser", /No such user: nobody/],
          ["alice", "ghost", "UnknownMachine", /No such machine: ghost/],
          ["alice", "alt-r01p01", "WrongHfs", /alt-r01p01 belongs to hfs1/],
          ["../alice", "pasteur-r01p01", "InvalidHfsRequest", /invalid login/],
          ["a/b", "pasteur-r01p01", "InvalidHfsRequest", /invalid login/],
          ["..", "pasteur-r01p01", "InvalidHfsRequest", /invalid login/],
          ["alice", "../../etc", "InvalidHfsRequest", /invalid hostname/],
          ["alice", "rhfs10", "WrongHfs", /rhfs10 belongs to hfs10/]
        ]
        for (const [login, hostname, tag, text] of cases) {
          const e = yield* Effect.flip(hfs.getHome(login, hostname))
          expect(e._tag, `${login} on ${hostname}`).toBe(tag)
          expect(e.message).toMatch(text)
        }
        expect(yield* hfs.list).toEqual([])
        expect(yield* Effect.promise(() => fs.readdir(imageDir).catch(() => []))).toEqual([])
        expect(yield* Effect.flip(hfs.where("../x"))).toMatchObject({ _tag: "InvalidHfsRequest" })
        expect(yield* Effect.flip(hfs.where("alice"))).toMatchObject({ _tag: "HomeNotFound" })
      })
    )

    it.scoped("getHome with an expired or forged token: Unauthorized, nothing created", () =>
      Effect.gen(function* () {
        // Set before the HFS starts: TestClock wakes every sleeper at each of its deadlines on the
        // way, and the NBD server's idle-trim loop would wake 10^11 times to reach 2023.
        yield* TestClock.setTime(1_700_000_000_000)
        const { hfs, metrics, imageDir } = yield* start()
        const secret = "s3cret"
        const tokenAt = (seconds: number, key: string, message: string) =>
          `${seconds}:${createHmac("sha256", key).update(message + seconds).digest("hex")}`
        const clientWith = (token: (message: string, now: number) => string) =>
          RpcTest.makeClient(HfsRpcs).pipe(
            Effect.provide(
              Layer.mergeAll(
                hfsHandlers(0),
                timeAuthServer("hfs", Redacted.make(secret)),
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
        const cases: Array<[string, (m: string, now: number) => string, string]> = [
          ["expired", (m, now) => tokenAt(now - 121, secret, m), "expired"],
          ["forged", (m, now) => tokenAt(now, "guess", m), "bad_signature"],
          ["another user's token", (m, now) => tokenAt(now, secret, m.replace("alice", "bob")), "bad_signature"]
        ]
        for (const [name, token, reason] of cases) {
          const client = yield* clientWith(token)
          const e = yield* Effect.flip(client.getHome({ login: "alice", hostname: "pasteur-r01p01" }))
          expect([name, e._tag, e._tag === "Unauthorized" ? e.reason : ""]).toEqual([name, "Unauthorized", reason])
        }
        expect(yield* hfs.list).toEqual([])
        expect(yield* Effect.promise(() => fs.readdir(imageDir).catch(() => []))).toEqual([])
        // the same path with a good token works
        const good = yield* clientWith((m, now) => tokenAt(now, secret, m))
        expect((yield* good.getHome({ login: "alice", hostname: "pasteur-r01p01" })).generation).toBe(1)
      })
    )

    it.scoped("a restarted HFS re-grants at a new generation: clients of the old process's grant stay out", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        yield* sql`TRUNCATE hfs_location`
        const work = yield* hfsWork
        const layer = hfsLayer({ exportBase: work.exportBase, skeleton: work.skeleton })
        const before = yield* Effect.scoped(
          Effect.gen(function* () {
            const hfs = Context.get(yield* Layer.build(layer), Hfs)
            yield* hfs.instance(0)
            return yield* hfs.getHome("alice", "pasteur-r01p01")
          })
        )
        const hfs = Context.get(yield* Layer.build(layer), Hfs)
        yield* hfs.instance(0)
        const after = yield* hfs.getHome("alice", "pasteur-r01p01")
        expect(after.generation).toBe(before.generation + 1)
        expect((yield* Effect.promise(() => probe(uriOf({ ...after, export: before.export })))).ok).toBe(false)
        expect((yield* Effect.promise(() => probe(uriOf(after)))).ok).toBe(true)
      })
    )

    it.scoped("an image left by an interrupted creation (no row) is replaced by a fresh home", () =>
      Effect.gen(function* () {
        const { hfs, imageDir } = yield* start()
        yield* Effect.promise(async () => {
          await fs.mkdir(imageDir, { recursive: true })
          await fs.writeFile(path.join(imageDir, "alice.nbd"), "half-written")
        })
        yield* hfs.getHome("alice", "pasteur-r01p01")
        expect((yield* Effect.promise(() => fsck(path.join(imageDir, "alice.nbd")))).code).toBe(0)
      })
    )

    it.scoped("two HFS asked for the same new user at once: one home, one grant; the loser keeps no image (10 rounds)", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        yield* sql`TRUNCATE hfs_location`
        const work = yield* hfsWork
        const ctx = yield* Layer.build(
          hfsLayer({ exportBase: work.exportBase, skeleton: work.skeleton, ids: [0, 1], profile: { bind: { "0": "127.0.0.1", "1": "127.0.0.1" } } })
        )
        const hfs = Context.get(ctx, Hfs)
        yield* hfs.instance(0)
        yield* hfs.instance(1)
        for (let round = 0; round < 10; round++) {
          const login = `user${round}`
          const [a, b] = yield* Effect.all(
            [Effect.either(hfs.getHome(login, "pasteur-r01p01")), Effect.either(hfs.getHome(login, "alt-r01p01"))],
            { concurrency: "unbounded" }
          )
          const winners = [a, b].filter(Either.isRight)
          expect(winners, `round ${round}`).toHaveLength(1)
          const loser = [a, b].find(Either.isLeft)!
          // created elsewhere meanwhile; or found there and its move refused (a live grant, or
          // this layer has no rpc ports for the hand-over)
          expect(["HomeElsewhere", "HomeInUse", "HfsUnavailable"], `round ${round}`).toContain(loser.left._tag)
          const row = yield* hfs.where(login)
          expect(row.generation).toBe(1)
          const images = yield* Effect.promise(async () => {
            const found: Array<number> = []
            for (const id of [0, 1]) {
              const ok = await fs.access(path.join(work.exportBase, `hfs${id}`, `${login}.nbd`)).then(() => true, () => false)
              if (ok) found.push(id)
            }
            return found
          })
          expect(images, `round ${round}`).toEqual([row.hfs])
        }
      })
    )

    it.scoped("each HFS binds its NBD listener on the address of its exact alias hfs<id> in MDB (hfs1 is not hfs10)", () =>
      Effect.gen(function* () {
        const work = yield* hfsWork
        const ctx = yield* Layer.build(hfsLayer({ exportBase: work.exportBase, skeleton: work.skeleton, ids: [1, 10], profile: { bind: {} } }))
        const hfs = Context.get(ctx, Hfs)
        const one = yield* hfs.instance(1)
        const ten = yield* hfs.instance(10)
        expect([one.host, ten.host]).toEqual(["127.0.0.5", "127.0.0.6"])
        // the listener really is there: a client reaching it gets the gate's refusal, not a connection error
        const refused = yield* Effect.promise(() => probe(`nbd://127.0.0.5:${one.nbdPort}/nobody@1:${"0".repeat(32)}`))
        expect(refused.ok).toBe(false)
        expect(refused.stderr).not.toMatch(/connection refused/i)
        expect((yield* hfs.status).map((s) => [s.hfs, s.host])).toEqual([
          [1, "127.0.0.5"],
          [10, "127.0.0.6"]
        ])
      })
    )

    it.scoped("disk full: OutOfSpace, no row, no image", () =>
      Effect.gen(function* () {
        const { hfs, imageDir } = yield* start({ free_reserve: "1T" })
        const e = yield* Effect.flip(hfs.getHome("alice", "pasteur-r01p01"))
        expect(e).toMatchObject({ _tag: "OutOfSpace", hfs: 0 })
        expect(yield* hfs.list).toEqual([])
        expect(yield* Effect.promise(() => fs.readdir(imageDir).catch(() => []))).toEqual([])
      })
    )

    it.scoped("the same user asked twice at once from the same machine: one creation, one grant", () =>
      Effect.gen(function* () {
        const { hfs } = yield* start()
        const [a, b] = yield* Effect.all([hfs.getHome("alice", "pasteur-r01p01"), hfs.getHome("alice", "pasteur-r01p01")], {
          concurrency: "unbounded"
        })
        expect(a).toEqual(b)
        expect((yield* hfs.where("alice")).generation).toBe(1)
        // and from two machines at once: each answer is a grant in turn; the last one holds
        const both = yield* Effect.all(
          [hfs.getHome("bob", "pasteur-r01p01"), hfs.getHome("bob", "pasteur-r01p02")].map(Effect.either),
          { concurrency: "unbounded" }
        )
        expect(both.every(Either.isRight)).toBe(true)
        expect((yield* hfs.where("bob")).generation).toBe(2)
      })
    )
  })
})
