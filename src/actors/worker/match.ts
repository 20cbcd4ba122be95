import { existsSync } from "node:fs"
import { writeFile } from "node:fs/promises"
import * as path from "node:path"
import { gzipSync } from "node:zlib"
import { Duration, Effect, Fiber, Schedule } from "effect"
import { parseAllDocuments } from "yaml"
import { ExecutorFailure, type MatchResult, type MatchTask, type PlayerResult } from "../../protocols/cluster-task.js"
import { ArchiveRejected, readTgz } from "./archive.js"
import { jailDir, readRegular, taskDir, writeEntries } from "./box.js"
import type { ExecutorConfig } from "./config.js"
import { type JailOutcome, runJailed, type SandboxEnv } from "./sandbox/run.js"

// A match with the stechec2 contract (spec/matches.md §5 "Match"): the server and each client
// in their own jail, sharing only the match's socket directory (`ipc://` unix sockets: they
// cross network namespaces, TCP does not); clients in `--client_id` order with the champion
// in `CHAMPION_PATH`; scores from the YAML documents the server prints; dump, replay and stats
// gzip'd. A champion that crashes or hits a limit is that player's problem: the server goes on
// and the match is `done`. The server failing makes it `failed` (not retried, as the original).

/** The contract's own options, which a task's `options` may not override. */
const RESERVED = new Set(["rules", "rep_addr", "pub_addr", "nb_clients", "time", "socket_timeout", "dump", "replay", "stats", "verbose", "map"])

interface ScoreLine {
  readonly player: string
  readonly score: number
  readonly nb_timeout: number
}

/** The server's stdout from the first `---`: mappings with player, score, nb_timeout. */
export const parseScores = (stdout: string): Array<ScoreLine> => {
  const at = stdout.search(/^---/m)
  if (at === -1) return []
  return parseAllDocuments(stdout.slice(at)).flatMap((doc): Array<ScoreLine> => {
    if (!("toJS" in doc) || doc.errors.length > 0) return []
    const v: unknown = doc.toJS()
    if (typeof v !== "object" || v === null) return []
    const r = v as Record<string, unknown>
    return typeof r.score === "number" && typeof r.nb_timeout === "number" && r.player !== undefined
      ? [{ player: String(r.player), score: r.score, nb_timeout: r.nb_timeout }]
      : []
  })
}

const gz = (b: Uint8Array | undefined) => (b === undefined ? {} : { data: new Uint8Array(gzipSync(b)) })

export const runMatch = (
  config: ExecutorConfig,
  env: SandboxEnv,
  task: MatchTask,
  bindFrom: (source: string) => Effect.Effect<string>
): Effect.Effect<MatchResult, ExecutorFailure> =>
  Effect.gen(function* () {
    const started = yield* Effect.clockWith((c) => c.currentTimeMillis)
    const base = { taskId: task.taskId, attempt: task.attempt, matchId: task.matchId }
    const finish = (r: Omit<MatchResult, "taskId" | "attempt" | "matchId" | "durationMs">) =>
      Effect.map(Effect.clockWith((c) => c.currentTimeMillis), (now): MatchResult => ({ ...base, ...r, durationMs: now - started }))
    const fail = (reason: string, extra: Partial<MatchResult> = {}) => finish({ status: "failed", reason, players: [], serverStdout: "", serverStderr: "", ...extra })

    const reserved = Object.keys(task.options).find((k) => RESERVED.has(k))
    if (reserved !== undefined) return yield* fail(`option --${reserved} belongs to the game contract and cannot be set by a task`)
    const g = config.game
    const dir = yield* taskDir(config.work_dir, `match-${task.matchId}-${task.attempt}`)
    const sock = path.join(dir, "sock")
    const serverBox = path.join(dir, "server")
    yield* jailDir(sock, env.drop, 0o700)
    yield* jailDir(serverBox, env.drop)
    const hasMap = task.map !== ""
    if (hasMap) yield* Effect.promise(() => writeFile(path.join(serverBox, "map.txt"), task.map, { mode: 0o644 }))
    const ro = yield* Effect.forEach(g.binds, (b) => Effect.map(bindFrom(b), (from) => [from, b] as const))

    const boxes: Array<string> = []
    for (const [i, p] of task.players.entries()) {
      const entries = readTgz(p.compiled, { maxEntries: config.archive_max_entries, maxBytes: config.archive_max_bytes })
      if (entries instanceof ArchiveRejected) return yield* fail(`player ${p.playerId} (champion ${p.championId}): compiled archive refused: ${entries.message}`)
      const box = path.join(dir, `player-${i}`)
      yield* jailDir(box, env.drop)
      if (hasMap) yield* Effect.promise(() => writeFile(path.join(box, "map.txt"), task.map, { mode: 0o644 }))
      yield* writeEntries(box, entries, env.drop)
      boxes.push(box)
    }

    const mapArg = hasMap ? ["--map", "/box/map.txt"] : []
    const server = yield* runJailed(env, {
      rw: [[serverBox, "/box"], [sock, "/sock"]],
      ro,
      cwd: "/box",
      env: {},
      limits: config.server,
      argv: [
        ...g.server,
        "--rules", g.rules,
        "--rep_addr", "ipc:///sock/reqrep",
        "--pub_addr", "ipc:///sock/pubsub",
        "--nb_clients", String(task.players.length),
        "--time", String(g.server_time_ms),
        "--socket_timeout", String(g.socket_timeout_ms),
        "--dump", "/box/dump.json",
        "--replay", "/box/replay",
        "--stats", "/box/stats.yaml",
        "--verbose", "1",
        ...mapArg,
        ...Object.entries(task.options).flatMap(([k, v]) => [`--${k}`, v])
      ]
    }).pipe(Effect.forkScoped)

    // The original polled for the two sockets (7 × 2 s); here every 20 ms until the socket
    // timeout, and not past the server's end.
    const socketsUp = yield* Effect.sync(() => existsSync(path.join(sock, "reqrep")) && existsSync(path.join(sock, "pubsub"))).pipe(
      Effect.repeat({ schedule: Schedule.spaced("20 millis"), until: (up) => up }),
      Effect.as(true),
      Effect.timeout(Duration.millis(g.socket_timeout_ms)),
      Effect.raceFirst(Fiber.await(server).pipe(Effect.as(false))),
      Effect.orElseSucceed(() => false)
    )
    if (!socketsUp) {
      const s = yield* Fiber.join(server).pipe(Effect.timeout("1 second"), Effect.option)
      yield* Fiber.interrupt(server)
      const out = s._tag === "Some" ? s.value : undefined
      if (out?.started === false) {
        return yield* new ExecutorFailure({ taskId: task.taskId, attempt: task.attempt, message: `the server jail did not start: ${out.stderr.trim()}` })
      }
      return yield* fail("server: its sockets never appeared", { serverStdout: out?.stdout ?? "", serverStderr: out?.stderr ?? "", ...(out?.kill === undefined ? {} : { kill: out.kill }) })
    }

    const clients = yield* Effect.forEach(
      task.players,
      (p, i) =>
        runJailed(env, {
          rw: [[boxes[i]!, "/box"], [sock, "/sock"]],
          ro,
          cwd: "/box",
          env: { CHAMPION_PATH: "/box" },
          limits: config.client,
          argv: [
            ...g.client,
            "--name", String(p.playerId),
            "--rules", g.rules,
            "--champion", "/box/champion.so",
            "--req_addr", "ipc:///sock/reqrep",
            "--sub_addr", "ipc:///sock/pubsub",
            "--socket_timeout", String(g.socket_timeout_ms),
            "--time", String(g.client_time_ms),
            "--verbose", "1",
            "--client_id", String(i),
            ...mapArg
          ]
        }),
      { concurrency: "unbounded" }
    )
    const s: JailOutcome = yield* Fiber.join(server)
    const notStarted = [s, ...clients].find((o) => !o.started)
    if (notStarted !== undefined) {
      return yield* new ExecutorFailure({ taskId: task.taskId, attempt: task.attempt, message: `a match jail did not start: ${notStarted.stderr.trim()}` })
    }
    const outputs = { serverStdout: s.stdout, serverStderr: s.stderr, ...(s.kill === undefined ? {} : { kill: s.kill }) }
    if (s.exitCode !== 0 || s.kill !== undefined) {
      const why = s.kill !== undefined ? `server: stopped by the sandbox (${s.kill})` : `server: exited with a non-zero code (${s.exitCode}).`
      return yield* fail(why, outputs)
    }
    const scores = parseScores(s.stdout)
    const players: Array<PlayerResult> = []
    for (const [i, p] of task.players.entries()) {
      const line = scores.find((l) => l.player === String(p.playerId))
      if (line === undefined) return yield* fail(`server: no result for player ${p.playerId}`, outputs)
      const c = clients[i]!
      players.push({ playerId: p.playerId, championId: p.championId, score: line.score, nbTimeout: line.nb_timeout, log: c.merged, ...(c.kill === undefined ? {} : { kill: c.kill }) })
    }
    const dump = gz(yield* readRegular(path.join(serverBox, "dump.json")))
    const replay = gz(yield* readRegular(path.join(serverBox, "replay")))
    const stats = gz(yield* readRegular(path.join(serverBox, "stats.yaml")))
    return yield* finish({
      status: "done",
      players,
      ...outputs,
      ...(dump.data === undefined ? {} : { dump: dump.data }),
      ...(replay.data === undefined ? {} : { replay: replay.data }),
      ...(stats.data === undefined ? {} : { stats: stats.data })
    })
  }).pipe(Effect.scoped)
