import { describe, expect, it } from "@effect/vitest"
import { existsSync, readdirSync, statSync } from "node:fs"
import { createServer } from "node:net"
import * as path from "node:path"
import { Effect, Fiber, TestClock } from "effect"
import type { SandboxLimits } from "../../src/actors/worker/config.js"
import { makeSandboxEnv } from "../../src/actors/worker/sandbox/env.js"
import { type JailOutcome, runJailed, type SandboxEnv } from "../../src/actors/worker/sandbox/run.js"
import { jailDir } from "../../src/actors/worker/box.js"
import { skipUnlessRoot } from "../support/root.js"
import { ensureClusterUser, scratch, smallLimits } from "./support.js"

// Each limit of a jail, applied for real and reported with its reason: one small program per
// limit (shell or python), run in bwrap as the cluster user, as the executor runs champions.

const PY = "/usr/bin/python3"

describe.skipIf(skipUnlessRoot("sandbox: bwrap jails as the cluster user"))("sandbox limits", () => {
  const setup = Effect.gen(function* () {
    ensureClusterUser()
    const dir = yield* scratch
    const env = yield* makeSandboxEnv({ bwrap: "/usr/bin/bwrap", user: "cluster", cgroup: "auto" })
    const box = path.join(dir, "box")
    yield* jailDir(box, env.drop)
    const run = (argv: Array<string>, over: Partial<SandboxLimits> = {}): Effect.Effect<JailOutcome> =>
      runJailed(env, { rw: [[box, "/box"]], ro: [], cwd: "/box", env: {}, limits: smallLimits(over), argv })
    return { dir, box, env, run }
  })
  const sh = (script: string) => ["/bin/sh", "-c", script]

  it.scopedLive("runs as the cluster user in its own namespaces: no network, no /etc/shadow, read-only system, private /tmp", () =>
    Effect.gen(function* () {
      const { run, box, env } = yield* setup
      // A listener on our loopback: the jail's empty network namespace cannot reach it.
      const server = createServer((s) => {
        connections++
        s.destroy()
      })
      let connections = 0
      yield* Effect.acquireRelease(
        Effect.async<void>((k) => void server.listen(0, "127.0.14.1", () => k(Effect.void))),
        () => Effect.async<void>((k) => void server.close(() => k(Effect.void)))
      )
      const port = (server.address() as { port: number }).port
      const r = yield* run([
        PY,
        "-c",
        [
          "import os, socket",
          "print('uid', os.getuid(), 'pid', os.getpid())",
          `try:\n  socket.create_connection(('127.0.14.1', ${port}), timeout=2); print('CONNECTED')\nexcept OSError as e: print('net', e.errno)`,
          "try:\n  print(open('/etc/shadow').read()[:20])\nexcept OSError as e: print('shadow', e.errno)",
          "for p in ['/usr/pwned', '/etc/pwned', '/box/../pwned', '/proc/sys/kernel/hostname']:\n  try:\n    open(p, 'w').write('x'); print('WROTE', p)\n  except OSError as e: print('write', p, e.errno)",
          "open('/tmp/t', 'w').write('private'); open('/box/mine', 'w').write('ok'); print('tmp+box ok')"
        ].join("\n")
      ])
      expect(r.exitCode, r.merged).toBe(0)
      expect(r.kill).toBeUndefined()
      expect(r.stdout).toContain(`uid ${env.drop?.uid ?? process.getuid?.()} pid 2`)
      expect(r.stdout).toMatch(/^net (101|111)$/m) // unreachable, or refused by the jail's own loopback
      expect(r.stdout).toMatch(/^shadow 2$/m) // not even there
      expect(r.stdout).not.toContain("WROTE")
      expect(r.stdout).toContain("tmp+box ok")
      expect(connections).toBe(0)
      expect(existsSync("/usr/pwned") || existsSync("/etc/pwned") || existsSync(path.join(path.dirname(box), "pwned"))).toBe(false)
      expect(readdirSync(box)).toEqual(["mine"])
      expect(statSync(path.join(box, "mine")).uid).toBe(env.drop?.uid)
    }), 60_000)

  it.scopedLive("cpu: RLIMIT_CPU ends a busy loop, reason cpu", () =>
    Effect.gen(function* () {
      const { run } = yield* setup
      const r = yield* run(sh("while :; do :; done"), { cpu_seconds: 1, wall_seconds: 20 })
      expect(r.kill, r.merged).toBe("cpu")
    }), 60_000)

  it.scopedLive("wall clock: a sleeping program and its children are killed, reason wall_clock", () =>
    Effect.gen(function* () {
      const { run } = yield* setup
      const r = yield* run(sh("sleep 60 & sleep 60 & sleep 60"), { wall_seconds: 1 })
      expect(r.kill).toBe("wall_clock")
      expect(r.durationMs).toBeLessThan(10_000)
    }), 60_000)

  it.scoped("wall clock reads Clock: under TestClock a sleeping program is killed when the clock reaches its limit, not before", () =>
    Effect.gen(function* () {
      const { run } = yield* setup
      const fiber = yield* run(sh("sleep 600"), { wall_seconds: 30 }).pipe(Effect.fork)
      // Bounded wait (real process start) until the run waits on the clock: its sampler and its timeout.
      for (let i = 0; i < 2000 && (yield* TestClock.sleeps()).length < 2; i++) yield* Effect.promise(() => new Promise((r) => setTimeout(r, 5)))
      yield* TestClock.adjust("29 seconds")
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 second")
      const r = yield* Fiber.join(fiber)
      expect(r.kill).toBe("wall_clock")
      expect(r.durationMs).toBe(30_000)
    }), 60_000)

  it.scopedLive("memory: the address-space limit refuses 1 GiB under a 256 MiB budget, reason memory", () =>
    Effect.gen(function* () {
      const { run } = yield* setup
      const r = yield* run([PY, "-c", "x = bytearray(1 << 30)"], { memory_mib: 256 })
      expect(r.merged).toContain("MemoryError")
      expect(r.kill).toBe("memory")
    }), 60_000)

  it.scopedLive("processes: a fork bomb stops at the process limit, reason pids", () =>
    Effect.gen(function* () {
      const { run } = yield* setup
      const r = yield* run([PY, "-c", "import os\nwhile True: os.fork()"], { processes: 16 })
      expect(r.kill, r.merged.slice(0, 500)).toBe("pids")
      expect(r.merged).toContain("Resource temporarily unavailable")
    }), 60_000)

  it.scopedLive("file size: RLIMIT_FSIZE stops a large write, reason file_size", () =>
    Effect.gen(function* () {
      const { run, box } = yield* setup
      const r = yield* run(sh("head -c 10000000 /dev/zero > /box/big"), { file_size_kib: 64 })
      expect(r.kill).toBe("file_size")
      expect(statSync(path.join(box, "big")).size).toBe(64 * 1024)
    }), 60_000)

  it.scopedLive("output: printing forever is cut at the cap and killed, reason output", () =>
    Effect.gen(function* () {
      const { run } = yield* setup
      const r = yield* run(sh("yes 'printing 1 GiB'"), { output_kib: 64 })
      expect(r.kill).toBe("output")
      expect(Buffer.byteLength(r.merged)).toBe(64 * 1024)
    }), 60_000)

  it.scopedLive("each jail has its own process budget: two at the limit at once both run", () =>
    Effect.gen(function* () {
      const { run } = yield* setup
      // Each forks 6 sleepers under a limit of 12: together 14 processes, alone 7.
      const prog = [PY, "-c", "import os, time, sys\nfor i in range(6):\n  if os.fork() == 0:\n    time.sleep(1); os._exit(0)\nfor i in range(6): os.wait()\nprint('ok')"]
      const [a, b] = yield* Effect.all([run(prog, { processes: 12 }), run(prog, { processes: 12 })], { concurrency: 2 })
      expect([a.stdout, b.stdout]).toEqual(["ok\n", "ok\n"])
    }), 60_000)
})
