import { Effect, Layer, Schema } from "effect"
import { ExecutorFailure } from "../../protocols/cluster-task.js"
import { compileChampion } from "./compile.js"
import { ExecutorConfig, type ExecutorConfigInput } from "./config.js"
import { Executor } from "./executor.js"
import { makeBindSources } from "./bind-sources.js"
import { runMatch } from "./match.js"
import { makeSandboxEnv } from "./sandbox/env.js"

// The live executor: the sandbox found once (bwrap, the jail user, a cgroup if any), then each
// task in its own directories and jails. A defect in the executor (a bug, the disk full) is an
// `ExecutorFailure` for that task only, so that the worker keeps serving the next one.

const failure = (taskId: number, attempt: number) => (cause: unknown) =>
  Effect.fail(new ExecutorFailure({ taskId, attempt, message: cause instanceof Error ? cause.message : String(cause) }))

export const makeExecutor = (input: ExecutorConfigInput) =>
  Effect.gen(function* () {
    const config = yield* Schema.decodeUnknown(ExecutorConfig)(input)
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
