import { Context, type Effect } from "effect"
import type {
  CompileResult,
  CompileTask,
  ExecutorFailure,
  MatchResult,
  MatchTask
} from "../../protocols/cluster-task.js"

// The worker's executor: runs one compilation or one match in the sandbox and answers the
// result (spec/matches.md §5). The worker's connection to the master (cluster-master lane)
// calls it; it knows nothing of slots, leases or the master. A contestant's failure (bad
// archive, compile error, crash, limit hit) is a *result*; only the worker's own trouble is
// an `ExecutorFailure`, which the master retries elsewhere.

export interface ExecutorShape {
  /** Safe extraction, `_lang` → compiler in a jail → `champion-compiled.tgz` + `compilation.log`. */
  readonly compile: (task: CompileTask) => Effect.Effect<CompileResult, ExecutorFailure>
  /** The game server and one client per player (client_id order), each in its own jail. */
  readonly runMatch: (task: MatchTask) => Effect.Effect<MatchResult, ExecutorFailure>
}

export class Executor extends Context.Tag("prolo/worker/Executor")<Executor, ExecutorShape>() {}
