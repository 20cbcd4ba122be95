import { Effect, Layer, Schema } from "effect"
import { ExecutorFailure } from "../../protocols/cluster-task.js"
import { compileChampion } from "./compile.js"
import { DEFAULT_WORK_DIR, ExecutorConfig, type ExecutorConfigInput } from "./config.js"
import { Executor } from "./executor.js"
import { ancestorsTraversable, makeBindSources } from "./bind-sources.js"
import { runMatch } from "./match.js"
import { makeSandboxEnv } from "./sandbox/env.js"

// The live executor: the sandbox found once (bwrap, the jail user, a cgroup if any), then each
// task in its own directories and jails. A defect in the executor (a bug, the disk full) is an
// `ExecutorFailure` for that task only, so that the worker keeps serving the next one.

const failure = (taskId: number, attempt: number) => (cause: unknown) =>
  Effect.fail(new ExecutorFailure({ taskId, attempt, message: cause instanceof Error ? cause.message : String(cause) }))

export const makeExecutor = (input: ExecutorConfigInput) =>
  Effect.gen(function* () {
    const decoded = yield* Schema.decodeUnknown(ExecutorConfig)(input)
    // A work dir the jail user cannot reach (the example's `var/worker` in a checkout under a
    // 0700 directory: /root, `mktemp -d`) would fail every jail: use the default one instead, as
    // the embedded database does for its data (said once in the log).
    const reachable = yield* Effect.promise(() => ancestorsTraversable(decoded.work_dir))
    const fallback = DEFAULT_WORK_DIR
    if (!reachable) {
      yield* Effect.logWarning(
        `worker: ${decoded.work_dir} is inside a directory the ${decoded.user} user cannot enter; jails work in ${fallback} instead (set executor.work_dir to a reachable directory)`
      )
    }
    const config = reachable ? decoded : { ...decoded, work_dir: fallback }
    const env = yield* makeSandboxEnv(config)
    const bindFrom = makeBindSources(config.work_dir)
    return Executor.of({
      compile: (task) =>
        compileChampion(config, env, task).pipe(
          Effect.catchAllDefect(failure(task.taskId, task.attempt)),
          Effect.withSpan("executor.compile", { attributes: { champion: task.championId } })
        ),
      runMatch: (task) =>
        runMatch(config, env, task, bindFrom).pipe(
          Effect.catchAllDefect(failure(task.taskId, task.attempt)),
          Effect.withSpan("executor.runMatch", { attributes: { match: task.matchId } })
        )
    })
  })

export const ExecutorLive = (input: ExecutorConfigInput) => Layer.effect(Executor, makeExecutor(input))
