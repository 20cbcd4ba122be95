import { Effect, Exit, Scope } from "effect"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import type { TestProject } from "vitest/node"
import { startEmbeddedPostgres } from "../src/store/embedded-postgres.js"

declare module "vitest" {
  export interface ProvidedContext {
    /** Where the throwaway test cluster listens (unix socket directory and port). */
    pgSocket: { readonly dir: string; readonly port: number }
  }
}

// ONE throwaway PostgreSQL for the whole run; test/support/pg.ts gives each test file its own
// database in it. Durability is switched off: nothing here outlives the run.
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), "prolo-test-pg-"))
  await fs.chmod(root, 0o755) // the postgres OS user must reach data/ inside
  const scope = Effect.runSync(Scope.make())
  const started = Date.now()
  const pg = await Effect.runPromise(
    Scope.extend(
      startEmbeddedPostgres({
        dataDir: path.join(root, "data"),
        settings: { fsync: "off", synchronous_commit: "off", full_page_writes: "off", max_connections: "300" }
      }),
      scope
    )
  )
  if (process.env.PROLO_TEST_VERBOSE) console.log(`test PostgreSQL up in ${Date.now() - started} ms`)
  project.provide("pgSocket", { dir: pg.socketDir, port: pg.port })
  return async () => {
    await Effect.runPromise(Scope.close(scope, Exit.void))
    await fs.rm(root, { recursive: true, force: true })
  }
}
