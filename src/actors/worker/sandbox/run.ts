import { type ChildProcess, spawn } from "node:child_process"
import { Deferred, Duration, Effect, Fiber, Option, Schedule } from "effect"
import type { SandboxKill } from "../../../protocols/cluster-task.js"
import { type CgroupProbe, createJailCgroup, type JailCgroup } from "./cgroup.js"
import { bwrapArgs, type JailSpec } from "./jail.js"

// Runs one program in its jail and says how it ended. The worker watches it from outside:
// wall-clock timeout on Clock, stdout/stderr capped (a program printing forever is killed, it
// never fills memory or disk), the process count and CPU time sampled from its cgroup. Every
// end — normal, killed, or the caller interrupted — kills the whole tree and removes the cgroup.

export interface SandboxEnv {
  readonly bwrap: string
  /** The jail user (outside its namespace); `undefined`: run as ourselves (we are that user). */
  readonly drop: { readonly uid: number; readonly gid: number } | undefined
  readonly cgroup: CgroupProbe
}

export interface JailOutcome {
  /**
   * The jail was set up and the program started. `false`: bwrap itself failed (a bind source
   * missing, no user namespaces): the worker's trouble, never the champion's.
   */
  readonly started: boolean
  /** bwrap's exit status: the program's, or 128 + signal. */
  readonly exitCode: number
  readonly kill: SandboxKill | undefined
  readonly stdout: string
  readonly stderr: string
  /** stdout and stderr in arrival order (a client's log). */
  readonly merged: string
  readonly durationMs: number
}

const SIGKILL = 9
const SIGXCPU = 24
const SIGXFSZ = 25
const SAMPLE = Duration.millis(50)

/** A program that ran out of memory under RLIMIT_AS only says so in its output. */
const MEMORY_TEXT = /MemoryError|Cannot allocate memory|std::bad_alloc|out of memory/i
const FORK_TEXT = /fork.*(Resource temporarily unavailable|retry)|Cannot fork|BlockingIOError.*Resource temporarily unavailable/i

let jailSeq = 0

export const runJailed = (env: SandboxEnv, spec: JailSpec): Effect.Effect<JailOutcome> =>
  Effect.gen(function* () {
    const l = spec.limits
    const cap = l.output_kib * 1024
    const started = yield* Effect.clockWith((c) => c.currentTimeMillis)
    const cg: JailCgroup | undefined =
      env.cgroup._tag === "Available"
        ? createJailCgroup(env.cgroup.base, `jail-${process.pid}-${++jailSeq}`, { memoryBytes: l.memory_mib * 1024 * 1024, processes: l.processes })
        : undefined
    // sh puts itself in the jail's cgroup before becoming bwrap, so nothing escapes the count.
    const enter = cg === undefined ? [] : ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', cg.procsFile]
    const drop = env.drop === undefined ? [] : ["/usr/bin/setpriv", `--reuid=${env.drop.uid}`, `--regid=${env.drop.gid}`, "--clear-groups", "--"]
    // Inside the jail, before the program: one byte on fd 3 says the jail is up.
    const announce = ["/bin/sh", "-c", 'echo >&3 && exec 3>&- && exec "$@"', "jail"]
    const argv = [...enter, ...drop, ...bwrapArgs(env.bwrap, { ...spec, argv: [...announce, ...spec.argv] })]

    const exited = yield* Deferred.make<number>()
    const state = { started: false, ours: undefined as SandboxKill | undefined, bytes: 0, out: [] as Array<Buffer>, err: [] as Array<Buffer>, merged: [] as Array<Buffer>, maxProcs: 0, cpu: 0 }
    // Ending a jail: SIGKILL to its init (pid 1 of its namespace) ends every process in it,
    // reaped by that init as it dies; outer bwrap then exits. Killing bwrap first would orphan
    // the init to the machine's pid 1 (a zombie wherever that never reaps). The cgroup, when
    // there is one, is the backstop once bwrap has exited.
    const info = { text: "", initPid: undefined as number | undefined }
    const killInit = (c: ChildProcess) => {
      if (info.initPid !== undefined) {
        try {
          process.kill(info.initPid, "SIGKILL")
          return
        } catch {
          // already gone
        }
      }
      c.kill("SIGKILL")
    }
    const child = yield* Effect.acquireRelease(
      Effect.sync(() => spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "pipe", "pipe", "pipe", "pipe"] })),
      (c) =>
        Effect.gen(function* () {
          if (c.exitCode === null && c.signalCode === null) {
            killInit(c)
            const gone = yield* Deferred.await(exited).pipe(Effect.timeout("2 seconds"), Effect.option)
            if (Option.isNone(gone)) {
              cg?.kill()
              c.kill("SIGKILL")
              yield* Deferred.await(exited)
            }
          }
          if (cg !== undefined) {
            // The tree is gone once cgroup.procs is empty; bounded wait, then remove.
            yield* Effect.sync(() => cg.kill()).pipe(
              Effect.zipRight(Effect.sync(() => cg.count())),
              Effect.repeat({ schedule: Schedule.spaced("10 millis"), until: (n) => n === 0, times: 200 }),
              Effect.ignore
            )
            cg.remove()
          }
        })
    )
    child.stdio[4]?.on("data", (chunk: Buffer) => {
      info.text += chunk.toString("utf8")
      const m = /"child-pid":\s*(\d+)/.exec(info.text)
      if (m !== null) info.initPid = Number(m[1])
    })
    const killTree = (why: SandboxKill) => {
      state.ours ??= why
      killInit(child)
    }
    const collect = (into: Array<Buffer>) => (chunk: Buffer) => {
      const room = cap - state.bytes
      state.bytes += chunk.length
      if (room > 0) {
        const kept = chunk.length <= room ? chunk : chunk.subarray(0, room)
        into.push(kept)
        state.merged.push(kept)
      }
      if (state.bytes > cap) killTree("output")
    }
    child.stdio[3]?.on("data", () => {
      state.started = true
    })
    child.stdout?.on("data", collect(state.out))
    child.stderr?.on("data", collect(state.err))
    child.on("error", () => Deferred.unsafeDone(exited, Effect.succeed(127)))
    child.on("close", (code, signal) => Deferred.unsafeDone(exited, Effect.succeed(code ?? 128 + (signal === "SIGKILL" ? SIGKILL : 15))))

    const sampler = yield* Effect.sync(() => {
      if (cg === undefined) return
      state.maxProcs = Math.max(state.maxProcs, cg.count())
      state.cpu = Math.max(state.cpu, cg.cpuSeconds())
    }).pipe(Effect.repeat(Schedule.spaced(SAMPLE)), Effect.fork)

    const inTime = yield* Deferred.await(exited).pipe(Effect.timeout(Duration.seconds(l.wall_seconds)), Effect.option)
    if (Option.isNone(inTime)) killTree("wall_clock")
    const exitCode = yield* Deferred.await(exited)
    yield* Fiber.interrupt(sampler)
    if (cg !== undefined) state.cpu = Math.max(state.cpu, cg.cpuSeconds())

    const stdout = Buffer.concat(state.out).toString("utf8")
    const stderr = Buffer.concat(state.err).toString("utf8")
    const merged = Buffer.concat(state.merged).toString("utf8")
    const failed = exitCode !== 0
    const kill: SandboxKill | undefined =
      state.ours ??
      (cg !== undefined && cg.oomKills() > 0
        ? "memory"
        : cg !== undefined && cg.pidsRefused() > 0
          ? "pids"
          : exitCode === 128 + SIGXCPU || (exitCode === 128 + SIGKILL && state.cpu >= l.cpu_seconds - 0.5)
            ? "cpu"
            : exitCode === 128 + SIGXFSZ
              ? "file_size"
              : failed && state.maxProcs >= l.processes
                ? "pids"
                : failed && MEMORY_TEXT.test(merged)
                  ? "memory"
                  : failed && FORK_TEXT.test(merged)
                    ? "pids"
                    : exitCode > 128 && exitCode < 128 + 65
                      ? "signal"
                      : undefined)
    const ended = yield* Effect.clockWith((c) => c.currentTimeMillis)
    return { started: state.started, exitCode, kill, stdout, stderr, merged, durationMs: ended - started }
  }).pipe(Effect.scoped)
