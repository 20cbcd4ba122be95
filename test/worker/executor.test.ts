import { describe, expect, it } from "@effect/vitest"
import { existsSync, readdirSync, readFileSync } from "node:fs"
import * as path from "node:path"
import { gunzipSync } from "node:zlib"
import { Effect, Exit, Fiber } from "effect"
import { readTgz } from "../../src/actors/worker/archive.js"
import { makeExecutor } from "../../src/actors/worker/executor-live.js"
import { skipUnlessRoot } from "../support/root.js"
import { champion, ensureClusterUser, sample, scratch, smallLimits, testConfig } from "./support.js"

// The executor for real: the repo's C and Python sample champions compiled in bubblewrap jails,
// then a match of the reference game between them (server and two clients, each jailed).

describe.skipIf(skipUnlessRoot("executor: bwrap jails as the cluster user"))("executor", () => {
  it.scopedLive("compiles a C and a Python champion, runs a match between them: scores, logs, dump, replay, stats", () =>
    Effect.gen(function* () {
      ensureClusterUser()
      const dir = yield* scratch
      const ex = yield* makeExecutor(testConfig(dir))
      const c = yield* ex.compile({ taskId: 1, attempt: 1, championId: 11, author: "alice", sources: sample("c") })
      expect(c.status, c.log).toBe("ready")
      expect(c.log).toMatch(/- champion\.c\n[\s\S]*Success!\n$/)
      const cFiles = readTgz(c.compiled!, { maxEntries: 100, maxBytes: 1 << 24 })
      expect(Array.isArray(cFiles) && cFiles.map((e) => e.path).sort()).toEqual(["_lang", "champion.c", "champion.so"])
      const py = yield* ex.compile({ taskId: 2, attempt: 3, championId: 12, author: "bob", sources: sample("python") })
      expect(py.status, py.log).toBe("ready")
      expect([py.taskId, py.attempt, py.championId]).toEqual([2, 3, 12])

      const m = yield* ex.runMatch({
        taskId: 3,
        attempt: 1,
        matchId: 12345,
        map: "turns 20\ncells 5 3 8 1 9 2 7 4\n",
        players: [
          { playerId: 101, championId: 11, compiled: c.compiled! },
          { playerId: 102, championId: 12, compiled: py.compiled! }
        ],
        options: {}
      })
      expect(m.status, `${m.reason} ${m.serverStderr}`).toBe("done")
      expect(m.players.map((p) => [p.playerId, p.championId, p.nbTimeout])).toEqual([[101, 11, 0], [102, 12, 0]])
      // The C sample takes the richest cell and the Python one the second: both score every turn.
      expect(m.players[0]!.score).toBeGreaterThan(0)
      expect(m.players[1]!.score).toBeGreaterThan(0)
      const dump = JSON.parse(gunzipSync(m.dump!).toString()) as { turns: Array<unknown>; final: { scores: Array<number> } }
      expect(dump.turns).toHaveLength(20)
      expect(dump.final.scores).toEqual(m.players.map((p) => p.score))
      expect(gunzipSync(m.replay!).toString()).toMatch(/^reference-game replay v1\n0 4 2\n/)
      expect(gunzipSync(m.stats!).toString()).toContain("turns: 20")
      expect(m.serverStdout).toContain("player: 101")
      expect(m.serverStderr).toContain("client 1 (102) connected")
      console.log(`compile C ${c.durationMs} ms, Python ${py.durationMs} ms; match ${m.durationMs} ms, scores ${m.players.map((p) => p.score).join(":")}`)
    }), 120_000)

  it.scopedLive("the compiler runs under the compile limits: a champion including /dev/zero is stopped, reason memory", () =>
    Effect.gen(function* () {
      ensureClusterUser()
      const dir = yield* scratch
      const ex = yield* makeExecutor(testConfig(dir, { compile: smallLimits({ memory_mib: 256, cpu_seconds: 10, wall_seconds: 20 }) }))
      const r = yield* ex.compile({ taskId: 1, attempt: 1, championId: 1, author: "mallory", sources: champion({ _lang: "c", "champion.c": '#include "/dev/zero"\n' }) })
      expect(r.status).toBe("error")
      expect(r.kill, r.log).toBe("memory")
      expect(r.log).toMatch(/\*\*\* Compilation failed/)
    }), 60_000)

  it.scopedLive("a jail that cannot start is the worker's failure (ExecutorFailure, retried elsewhere), not the champion's", () =>
    Effect.gen(function* () {
      ensureClusterUser()
      const dir = yield* scratch
      const base = testConfig(dir)
      const ex = yield* makeExecutor({ ...base, game: { ...base.game, binds: ["/nonexistent/game"] } })
      const c = yield* ex.compile({ taskId: 1, attempt: 1, championId: 11, author: "alice", sources: sample("c") })
      const exit = yield* ex.runMatch({ taskId: 9, attempt: 4, matchId: 1, map: "", players: [{ playerId: 1, championId: 11, compiled: c.compiled! }], options: {} }).pipe(Effect.exit)
      expect(Exit.isFailure(exit)).toBe(true)
      if (Exit.isFailure(exit)) {
        const e = exit.cause._tag === "Fail" ? exit.cause.error : undefined
        expect(e?._tag).toBe("ExecutorFailure")
        expect([e?.taskId, e?.attempt]).toEqual([9, 4])
        expect(e?.message).toMatch(/did not start: bwrap: Can't find source path \/nonexistent\/game/)
      }
    }), 60_000)

  it.scopedLive("interrupting a running match kills its jails and removes its files", () =>
    Effect.gen(function* () {
      ensureClusterUser()
      const dir = yield* scratch
      const work = path.join(dir, "work")
      const ex = yield* makeExecutor(testConfig(work, { client: smallLimits({ cpu_seconds: 60, wall_seconds: 60 }) }))
      const c = yield* ex.compile({ taskId: 1, attempt: 1, championId: 11, author: "alice", sources: sample("c") })
      const loop = yield* ex.compile({ taskId: 2, attempt: 1, championId: 12, author: "bob", sources: champion({ _lang: "python", "champion.py": "def play_turn(t, c, m, o):\n  while True: pass\n" }) })
      const fiber = yield* ex
        .runMatch({
          taskId: 3,
          attempt: 1,
          matchId: 2,
          map: "",
          players: [
            { playerId: 1, championId: 11, compiled: c.compiled! },
            { playerId: 2, championId: 12, compiled: loop.compiled! }
          ],
          options: {}
        })
        .pipe(Effect.fork)
      // The live processes in this test's jails, from their cgroup (jail-<our pid>-<n>). A
      // zombie is not one: bwrap's own init, orphaned when bwrap exits, waits there for the
      // machine's pid 1 to reap it, as after any normal run.
      const mark = `/prolo-worker/jail-${process.pid}-`
      const jailed = () =>
        readdirSync("/proc").filter((p) => {
          if (!/^\d+$/.test(p)) return false
          try {
            return readFileSync(`/proc/${p}/cgroup`, "utf8").includes(mark) && !/^State:\s+Z/m.test(readFileSync(`/proc/${p}/status`, "utf8"))
          } catch {
            return false
          }
        })
      // Bounded wait until the server and both clients run (the looping client never ends).
      let running: Array<string> = []
      for (let i = 0; i < 400 && running.length < 6; i++) {
        yield* Effect.sleep("25 millis")
        running = jailed()
      }
      // Per jail: bwrap outside, its init and the program inside.
      expect(running.length).toBeGreaterThanOrEqual(6)
      const t0 = performance.now()
      yield* Fiber.interrupt(fiber)
      console.log(`interrupted in ${Math.round(performance.now() - t0)} ms`)
      expect(readdirSync(work)).toEqual([])
      expect(jailed()).toEqual([])
    }), 60_000)

  it.scopedLive("runs matches side by side (a worker's slots): each its own directories, jails and result", () =>
    Effect.gen(function* () {
      ensureClusterUser()
      const dir = yield* scratch
      const ex = yield* makeExecutor(testConfig(dir))
      const [c, py] = yield* Effect.all(
        [
          ex.compile({ taskId: 1, attempt: 1, championId: 1, author: "alice", sources: sample("c") }),
          ex.compile({ taskId: 2, attempt: 1, championId: 2, author: "bob", sources: sample("python") })
        ],
        { concurrency: 2 }
      )
      const match = (matchId: number, turns: number) =>
        ex.runMatch({
          taskId: matchId,
          attempt: 1,
          matchId,
          map: `turns ${turns}\ncells 1 2 3 4 5 6\n`,
          players: [
            { playerId: matchId * 10, championId: 1, compiled: c.compiled! },
            { playerId: matchId * 10 + 1, championId: 2, compiled: py.compiled! }
          ],
          options: {}
        })
      const results = yield* Effect.all([match(1, 5), match(2, 10), match(3, 15)], { concurrency: 3 })
      expect(results.map((r) => [r.matchId, r.status, JSON.parse(gunzipSync(r.dump!).toString()).turns.length])).toEqual([
        [1, "done", 5],
        [2, "done", 10],
        [3, "done", 15]
      ])
      expect(results.map((r) => r.players.map((p) => p.playerId))).toEqual([[10, 11], [20, 21], [30, 31]])
      expect(readdirSync(dir)).toEqual([])
    }), 60_000)
})
