import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Fiber, TestClock } from "effect"
import type { HomeGrant } from "../../src/protocols/hfs.js"
import { Cmd } from "../../src/nbd/protocol.js"
import { openSession, readSimpleReply, request } from "../nbd/harness.js"
import { mulberry32 } from "../support/random.js"
import { PgTest } from "./support/hfs.js"
import { startPair } from "./support/pair.js"

// Race suite: the same user asked on hfs0 (machine race-a, 127.0.10.11) and on hfs1 (race-b,
// 127.0.10.12) at the same moment, round after round (the home moves or stays depending on
// which request gets there first). Each round: exactly one getHome succeeds; then both sides
// try to write with the newest grant they ever got, and exactly one write gets through (the
// winner's), on top of the previous winner's data (the home moved intact). Between rounds the
// users log out: the clock moves past live_grant_seconds. The order is seeded: both requests
// at once, the second one while the home is mid-transfer, or the second after the first.
// PROLO_HFS_RACE_ROUNDS (default 100), PROLO_HFS_RACE_SEED replays a run.

const ROUNDS = Number(process.env["PROLO_HFS_RACE_ROUNDS"] ?? 100)
const MARK_AT = 512 // the unused first KiB of ext4: markers never touch the file system
const side = { a: { hostname: "race-a", ip: "127.0.10.11" }, b: { hostname: "race-b", ip: "127.0.10.12" } } as const

const markOf = (round: number, who: string) => Buffer.from(`r${String(round).padStart(6, "0")}-${who}`.padEnd(16, "."))

/** Attaches `grant` from `ip`, reads the marker, writes `mark`; undefined when the attach is refused. */
const writeWith = (grant: HomeGrant, ip: string, mark: Buffer) =>
  Effect.promise(async () => {
    const session = await openSession(grant.port, grant.export, { host: grant.host, localAddress: ip }).catch(() => undefined)
    if (session === undefined) return undefined
    try {
      session.client.write(request(Cmd.READ, 1, MARK_AT, 16))
      const before = await readSimpleReply(session.client, 16)
      session.client.write(request(Cmd.WRITE, 2, MARK_AT, 16, 0, mark))
      const wrote = await readSimpleReply(session.client)
      return before.errno === 0 && wrote.errno === 0 ? before.data.toString() : undefined
    } catch {
      return undefined
    } finally {
      session.client.close()
    }
  })

describe("HFS migration race", () => {
  it.layer(PgTest, { timeout: 300_000 })((it) => {
    it.scoped(`the same user on two HFS at once, ${ROUNDS} rounds: one grant per round, never two writers`, () =>
      Effect.gen(function* () {
        const seed = Number(process.env["PROLO_HFS_RACE_SEED"] ?? Math.floor(Math.random() * 2 ** 31))
        console.log(`hfs migration race: seed ${seed}, ${ROUNDS} rounds (replay: PROLO_HFS_RACE_SEED=${seed})`)
        const random = mulberry32(seed)
        // before the HFS start: TestClock wakes every sleeper on its way to a new time
        yield* TestClock.setTime(1_700_000_000_000)
        const { hfs } = yield* startPair({ profile: { live_grant_seconds: 1, quota: { user: "32M", orga: "32M" } } })
        const latest: { a?: HomeGrant; b?: HomeGrant } = {}
        let previous = (yield* writeWith((latest.a = yield* hfs.getHome("alice", side.a.hostname)), side.a.ip, markOf(0, "a")))
        expect(previous).toBeDefined()
        previous = markOf(0, "a").toString()
        const counts = { a: 0, b: 0, moves: 0 }
        const modes = [0, 0, 0]
        let home = 0
        for (let round = 1; round <= ROUNDS; round++) {
          yield* TestClock.adjust("1001 millis") // everybody logged out
          // Who asks first: both at once; the HFS without the home first and the other once
          // the row says migrating (mid-transfer); or the HFS without the home alone first.
          const mode = Math.floor(random() * 3)
          const ask = (who: "a" | "b") => Effect.either(hfs.getHome("alice", side[who].hostname))
          const away = home === 0 ? "b" : "a"
          const here = away === "a" ? "b" : "a"
          let asked: Record<"a" | "b", Either.Either<HomeGrant, { readonly _tag: string; readonly message: string }>>
          if (mode === 0) {
            const delay = (n: number) => Effect.forEach(Array.from({ length: n }), () => Effect.yieldNow(), { discard: true })
            const [ra, rb] = yield* Effect.all(
              [Effect.zipRight(delay(Math.floor(random() * 4)), ask("a")), Effect.zipRight(delay(Math.floor(random() * 4)), ask("b"))],
              { concurrency: "unbounded" }
            )
            asked = { a: ra, b: rb }
          } else {
            const first = yield* Effect.fork(ask(away))
            if (mode === 1) {
              for (let i = 0; i < 2000; i++) {
                const row = yield* hfs.where("alice")
                if (row.state === "migrating" || (yield* first.poll)._tag === "Some") break
                yield* Effect.promise(() => new Promise((r) => setTimeout(r, 1)))
              }
            } else {
              yield* first.await
            }
            const second = yield* ask(here)
            const r1 = yield* Fiber.join(first)
            asked = away === "a" ? { a: r1, b: second } : { a: second, b: r1 }
          }
          const ra = asked.a
          const rb = asked.b
          modes[mode] = (modes[mode] ?? 0) + 1
          const ok = [ra, rb].filter(Either.isRight)
          expect(ok.length, `round ${round} (seed ${seed}): ${JSON.stringify([ra, rb].map((r) => (Either.isLeft(r) ? r.left._tag : "grant")))}`).toBe(1)
          for (const r of [ra, rb]) if (Either.isLeft(r)) expect(["HomeInUse", "HfsUnavailable", "HomeElsewhere"]).toContain(r.left._tag)
          const winner = Either.isRight(ra) ? "a" : "b"
          if (Either.isRight(ra)) latest.a = ra.right
          if (Either.isRight(rb)) latest.b = rb.right
          counts[winner]++
          const row = yield* hfs.where("alice")
          expect(row, `round ${round}`).toMatchObject({ hfs: winner === "a" ? 0 : 1, state: "ready" })
          if (row.hfs !== home) counts.moves++
          home = row.hfs
          // both sides write with the newest grant they have: only the winner's gets through,
          // and it reads the previous winner's marker (nothing lost on a move)
          const mark = markOf(round, winner)
          const results = yield* Effect.all(
            (["a", "b"] as const).map((who) => {
              const g = latest[who]
              return g === undefined ? Effect.succeed(undefined) : writeWith(g, side[who].ip, markOf(round, who))
            }),
            { concurrency: "unbounded" }
          )
          const writers = results.filter((r) => r !== undefined)
          expect(writers, `round ${round} (seed ${seed})`).toEqual([previous])
          expect(results[winner === "a" ? 0 : 1]).toBe(previous)
          previous = mark.toString()
        }
        console.log(`hfs migration race: ${ROUNDS} rounds, hfs0 won ${counts.a}, hfs1 won ${counts.b}, ${counts.moves} moves, 0 double writers (modes at once/mid-transfer/after: ${modes.join("/")})`)
        expect(counts.a + counts.b).toBe(ROUNDS)
      })
    )
  })
})
