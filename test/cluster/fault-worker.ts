// A real worker process for the fault suite: the cluster client of src/actors/cluster over the
// real TCP transport, with a fast test executor in place of the sandbox (the suite is about the
// master, the connection and the database, not the game). Every attempt's start and end is
// appended to a log file, written synchronously so that a SIGKILL loses nothing written.
//
//   node --import tsx test/cluster/fault-worker.ts CONFIG_DIR LOG_FILE WORKER_NAME SEED
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Clock, Duration, Effect, Layer, Random } from "effect"
import * as fs from "node:fs"
import { loadClusterProfile } from "../../src/actors/cluster/config.js"
import { runWorkerClient } from "../../src/actors/cluster/worker-client.js"
import { Executor } from "../../src/actors/worker/executor.js"
import { ConfigDir } from "../../src/runtime/config.js"
import { Metrics } from "../../src/runtime/metrics.js"

const [configDir = "", logFile = "", worker = "", seed = "1"] = process.argv.slice(2)

const log = (event: Record<string, unknown>) =>
  Effect.flatMap(Clock.currentTimeMillis, (t) => Effect.sync(() => fs.appendFileSync(logFile, `${JSON.stringify({ ...event, worker, pid: process.pid, t })}\n`)))

const executor = Executor.of({
  compile: (task) =>
    Effect.succeed({ taskId: task.taskId, attempt: task.attempt, championId: task.championId, status: "ready" as const, compiled: task.sources, log: "ok", durationMs: 0 }),
  runMatch: (task) =>
    Effect.gen(function* () {
      const at = { match: task.matchId, attempt: task.attempt }
      yield* log({ ev: "start", ...at })
      let finished = false
      return yield* Effect.gen(function* () {
        yield* Effect.sleep(Duration.millis(yield* Random.nextIntBetween(300, 1200)))
        finished = true
        yield* log({ ev: "end", ...at })
        return {
          taskId: task.taskId,
          attempt: task.attempt,
          matchId: task.matchId,
          status: "done" as const,
          // The attempt is in the score: the suite checks the recorded one is the lease's.
          players: task.players.map((p, i) => ({ playerId: p.playerId, championId: p.championId, score: task.attempt * 1000 + i, nbTimeout: 0, log: "" })),
          serverStdout: `match ${task.matchId}`,
          serverStderr: "",
          durationMs: 0
        }
      }).pipe(Effect.ensuring(Effect.suspend(() => (finished ? Effect.void : log({ ev: "stopped", ...at })))))
    })
})

const main = Effect.gen(function* () {
  const profile = yield* loadClusterProfile
  return yield* runWorkerClient({
    master: profile.master!, // the suite writes it
    secret: profile.shared_secret,
    worker,
    slots: profile.slots,
    cost: { compile: profile.compile_cost, match: profile.match_cost }
  })
}).pipe(
  Effect.withRandom(Random.make(`${seed}:${worker}:${process.pid}`)),
  Effect.provideService(Executor, executor),
  Effect.provide(Layer.mergeAll(ConfigDir.layer(configDir), NodeFileSystem.layer, Metrics.layer))
)

NodeRuntime.runMain(Effect.scoped(main))
