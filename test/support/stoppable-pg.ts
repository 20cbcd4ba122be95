import { Effect, type Scope } from "effect"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { type EmbeddedPg, startEmbeddedPostgres } from "../../src/store/embedded-postgres.js"
import { childrenOf } from "./processes.js"

// A PostgreSQL that stops answering (a stalled disk, a frozen VM) without closing its
// connections: a cluster of the test's own, since the run's shared one must never be stopped.

const signalAll = (pids: ReadonlyArray<number>, signal: NodeJS.Signals) =>
  Effect.sync(() => {
    for (const pid of pids) {
      try {
        process.kill(pid, signal)
      } catch {
        // already gone
      }
    }
  })

export interface StoppablePg {
  readonly pg: EmbeddedPg
  /**
   * SIGSTOPs the postmaster and all its processes; returns the SIGCONT that resumes them. They
   * are also resumed when the scope closes, whatever happens, or the cluster could not stop.
   */
  readonly stop: Effect.Effect<Effect.Effect<void>, never, Scope.Scope>
}

/** An embedded PostgreSQL in a temporary directory (`prefix…`) removed with the scope. */
export const stoppablePostgres = (prefix: string) =>
  Effect.gen(function* () {
    const root = yield* Effect.acquireRelease(
      Effect.promise(async () => {
        const dir = await fs.mkdtemp(path.join(os.tmpdir(), prefix))
        await fs.chmod(dir, 0o755) // the postgres OS user must reach data/ inside
        return dir
      }),
      (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
    )
    const pg = yield* startEmbeddedPostgres({ dataDir: path.join(root, "data"), settings: { fsync: "off" } })
    const stop = Effect.gen(function* () {
      const pids = [pg.pid, ...(yield* Effect.promise(() => childrenOf(pg.pid)))]
      yield* Effect.acquireRelease(signalAll(pids, "SIGSTOP"), () => signalAll(pids, "SIGCONT"))
      return signalAll(pids, "SIGCONT")
    })
    return { pg, stop } satisfies StoppablePg
  })
