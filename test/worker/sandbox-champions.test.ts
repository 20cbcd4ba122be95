import { describe, expect, it } from "@effect/vitest"
import { existsSync } from "node:fs"
import { createServer } from "node:net"
import { Effect } from "effect"
import { makeExecutor } from "../../src/actors/worker/executor-live.js"
import type { MatchResult, SandboxKill } from "../../src/protocols/cluster-task.js"
import { skipUnlessRoot } from "../support/root.js"
import { champion, ensureClusterUser, sample, scratch, smallLimits, testConfig } from "./support.js"

// The sandbox suite of the issue: hostile champions, each playing a real match of the reference
// game against the C sample. Each is contained (the host is untouched, the other player and the
// server finish the match), reported with the right reason on its player, and the executor then
// serves a normal match.

/** A Python champion that does `evil` on its first turn, then plays the first cell. */
const hostile = (evil: string): Uint8Array =>
  champion({
    _lang: "python",
    "champion.py": `import os, sys, socket\nfirst = True\ndef play_turn(turn, cells, me, them):\n  global first\n  if first:\n    first = False\n${evil
      .split("\n")
      .map((l) => `    ${l}`)
      .join("\n")}\n  return 0\n`
  })

describe.skipIf(skipUnlessRoot("sandbox suite: bwrap jails as the cluster user"))("sandbox suite: hostile champions", () => {
  it.scopedLive("network, fork bomb, 4 GiB, endless loop, writes outside, /etc/shadow, garbage to the server, 1 GiB of output: each contained and reported", () =>
    Effect.gen(function* () {
      ensureClusterUser()
      const dir = yield* scratch
      const ex = yield* makeExecutor(
        testConfig(dir, { client: smallLimits({ cpu_seconds: 2, wall_seconds: 20, memory_mib: 256, processes: 16, output_kib: 64 }) })
      )
      const good = yield* ex.compile({ taskId: 1, attempt: 1, championId: 1, author: "alice", sources: sample("c") })
      expect(good.status).toBe("ready")

      let connections = 0
      const listener = createServer((s) => {
        connections++
        s.destroy()
      })
      yield* Effect.acquireRelease(
        Effect.async<void>((k) => void listener.listen(0, "127.0.14.2", () => k(Effect.void))),
        () => Effect.async<void>((k) => void listener.close(() => k(Effect.void)))
      )
      const port = (listener.address() as { port: number }).port

      const cases: Array<[string, string, SandboxKill | undefined, (log: string) => void]> = [
        [
          "network",
          `for addr in [("127.0.14.2", ${port}), ("1.1.1.1", 80)]:\n  try:\n    socket.create_connection(addr, timeout=1); print("CONNECTED", addr)\n  except OSError as e: print("blocked", addr, e.errno)`,
          undefined,
          (log) => {
            expect(log).toMatch(/blocked \('127\.0\.14\.2', \d+\) (101|111)/)
            expect(log).not.toContain("CONNECTED")
          }
        ],
        ["fork bomb", "while True: os.fork()", "pids", (log) => expect(log).toContain("Resource temporarily unavailable")],
        ["4 GiB", "x = bytearray(4 << 30)", "memory", (log) => expect(log).toContain("MemoryError")],
        ["endless loop", "while True: pass", "cpu", () => undefined],
        [
          "writes outside",
          `for p in ["/usr/lib/pwned", "/etc/pwned", "/box/../pwned", "/sock/../pwned", "${dir}/pwned"]:\n  try:\n    open(p, "w").write("x"); print("WROTE", p)\n  except OSError as e: print("refused", p, e.errno)`,
          undefined,
          (log) => {
            expect(log).not.toContain("WROTE")
            expect(log.match(/^refused /gm)).toHaveLength(5)
          }
        ],
        [
          "/etc/shadow",
          `try:\n  print("SHADOW", open("/etc/shadow").read())\nexcept OSError as e: print("no shadow", e.errno)`,
          undefined,
          (log) => {
            expect(log).toContain("no shadow 2")
            expect(log).not.toContain("root:")
          }
        ],
        [
          "garbage to the server",
          `for fd in range(3, 16):\n  try:\n    os.write(fd, b"{not json\\n" + b"x" * 200000)\n  except OSError: pass`,
          undefined,
          () => undefined
        ],
        ["1 GiB of output", `chunk = "x" * (1 << 20) + "\\n"\nfor i in range(1024): sys.stdout.write(chunk)\nsys.stdout.flush()`, "output", (log) => expect(Buffer.byteLength(log)).toBe(64 * 1024)]
      ]
      let matchId = 100
      const timings: Array<string> = []
      for (const [what, evil, kill, check] of cases) {
        const bad = yield* ex.compile({ taskId: 2, attempt: 1, championId: 2, author: "mallory", sources: hostile(evil) })
        expect(bad.status, `${what}: ${bad.log}`).toBe("ready")
        const m: MatchResult = yield* ex.runMatch({
          taskId: 3,
          attempt: 1,
          matchId: ++matchId,
          map: "turns 10\ncells 5 3 8 1 9\n",
          players: [
            { playerId: 1, championId: 1, compiled: good.compiled! },
            { playerId: 2, championId: 2, compiled: bad.compiled! }
          ],
          options: {}
        })
        timings.push(`${what} ${m.durationMs} ms`)
        expect(m.status, `${what}: ${m.reason} ${m.serverStderr}`).toBe("done")
        const [c, h] = m.players
        expect(c!.kill, what).toBeUndefined()
        expect(c!.score, what).toBeGreaterThan(0)
        expect(h!.kill, `${what}: ${h!.log.slice(0, 400)}`).toBe(kill)
        check(h!.log)
        if (kill !== undefined) expect(h!.nbTimeout, what).toBeGreaterThan(0)
      }
      expect(connections).toBe(0)
      for (const p of ["/usr/lib/pwned", "/etc/pwned", `${dir}/pwned`]) expect(existsSync(p), p).toBe(false)
      // And the executor serves the next task as before.
      const py = yield* ex.compile({ taskId: 4, attempt: 1, championId: 3, author: "bob", sources: sample("python") })
      const after = yield* ex.runMatch({
        taskId: 5,
        attempt: 1,
        matchId: 999,
        map: "",
        players: [
          { playerId: 1, championId: 1, compiled: good.compiled! },
          { playerId: 3, championId: 3, compiled: py.compiled! }
        ],
        options: { turns: "5" }
      })
      expect(after.status).toBe("done")
      expect(after.players.map((p) => [p.kill, p.nbTimeout])).toEqual([[undefined, 0], [undefined, 0]])
      console.log(`sandbox suite: ${timings.join(", ")}`)
    }), 120_000)
})
