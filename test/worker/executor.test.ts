import { describe, expect, it } from "@effect/vitest"
import { gunzipSync } from "node:zlib"
import { Effect } from "effect"
import { readTgz } from "../../src/actors/worker/archive.js"
import { makeExecutor } from "../../src/actors/worker/executor-live.js"
import { skipUnlessRoot } from "../support/root.js"
import { ensureClusterUser, sample, scratch, testConfig } from "./support.js"

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
})
