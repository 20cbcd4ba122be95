import { SqlClient } from "@effect/sql"
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Exit, Layer, Schedule, Scope } from "effect"
import { spawn } from "node:child_process"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { ChangeLog } from "../../src/store/change-log.js"
import { embeddedDataDir, fromSettings } from "../../src/store/database.js"
import { startEmbeddedPostgres } from "../../src/store/embedded-postgres.js"
import { alive, pidsWithArg } from "../support/processes.js"

const postgresPids = (dataDir: string) => Effect.promise(() => pidsWithArg(dataDir))

const tempRoot = Effect.acquireRelease(
  Effect.promise(async () => {
    const root = await fs.mkdtemp(path.join(os.tmpdir(), "prolo-db-test-"))
    await fs.chmod(root, 0o755)
    return root
  }),
  (root) => Effect.promise(() => fs.rm(root, { recursive: true, force: true }))
)

describe("embedded database", () => {
  it.effect("lives in ./var/db, in /var/lib/prolo/db as root (the postgres user cannot enter /root/prolo), else where it is told", () =>
    Effect.gen(function* () {
      const noEnv = Effect.withConfigProvider(ConfigProvider.fromMap(new Map()))
      expect(yield* noEnv(embeddedDataDir({}, false))).toBe(path.resolve("var", "db"))
      expect(yield* noEnv(embeddedDataDir({}, true))).toBe("/var/lib/prolo/db")
      const env = Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["PROLO_DATA_DIR", "/srv/prolo"]])))
      expect(yield* env(embeddedDataDir({}, true))).toBe("/srv/prolo/db")
      expect(yield* env(embeddedDataDir({ data_dir: "/data/pg" }, true))).toBe("/data/pg")
    })
  )

  it.live("starts a cluster, migrates it, keeps data across a quick restart, and leaves no process behind", () =>
    Effect.gen(function* () {
      const root = yield* tempRoot
      // Parents that do not exist yet, as `./var/db` in a fresh checkout.
      const dataDir = path.join(root, "var", "db")
      const write = Effect.gen(function* () {
        const log = yield* ChangeLog
        return yield* log.append("persist", [{ op: "update", key: "k", record: { v: 1 } }])
      })
      const read = Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const log = yield* ChangeLog
        const tables = yield* sql<{ n: number }>`SELECT count(*) AS n FROM information_schema.tables WHERE table_name = 'machine'`
        return { revision: yield* log.head("persist"), machineTable: tables[0]?.n }
      })

      const started = Date.now()
      expect(yield* Effect.scoped(Effect.provide(write, fromSettings({ data_dir: dataDir })))).toBe(1)
      const firstRun = Date.now() - started
      expect(yield* postgresPids(dataDir)).toEqual([])

      // Immediately again on the same directory: no initdb, same data, migrations a no-op.
      const restarted = Date.now()
      expect(yield* Effect.scoped(Effect.provide(read, fromSettings({ data_dir: dataDir })))).toEqual({
        revision: 1,
        machineTable: 1
      })
      const secondRun = Date.now() - restarted
      expect(yield* postgresPids(dataDir)).toEqual([])
      yield* Effect.log(`embedded database: first start+migrate+stop ${firstRun} ms, restart ${secondRun} ms`)
    }).pipe(Effect.scoped)
  )

  it.live("takes over from a postgres left running by a killed node", () =>
    Effect.gen(function* () {
      const root = yield* tempRoot
      const dataDir = path.join(root, "db")
      const orphanScope = yield* Scope.make()
      const orphan = yield* Scope.extend(startEmbeddedPostgres({ dataDir }), orphanScope)
      expect(alive(orphan.pid)).toBe(true)
      // A new node on the same directory while the old postgres still runs.
      const fresh = yield* startEmbeddedPostgres({ dataDir })
      expect(fresh.pid).not.toBe(orphan.pid)
      expect(alive(orphan.pid)).toBe(false)
      yield* Scope.close(orphanScope, Exit.void)
      const running = yield* postgresPids(dataDir)
      expect(running).toContain(fresh.pid)
      expect(running).not.toContain(orphan.pid)
    }).pipe(Effect.scoped)
  )

  it.live("a node killed with SIGKILL does not leave its postgres running", () =>
    Effect.gen(function* () {
      const root = yield* tempRoot
      const dataDir = path.join(root, "db")
      const holder = spawn(process.execPath, ["--import", "tsx", path.join(import.meta.dirname, "fixtures/hold-postgres.ts"), dataDir], {
        stdio: ["ignore", "pipe", "inherit"]
      })
      yield* Effect.addFinalizer(() => Effect.sync(() => void holder.kill("SIGKILL")))
      // Readiness is the holder's own line; if it dies first, say so instead of waiting out the test.
      const [pid, socketDir] = yield* Effect.async<readonly [number, string]>((resume) => {
        let out = ""
        holder.stdout?.on("data", (c: Buffer) => {
          out += c.toString("utf8")
          const m = /ready (\d+) (\S+)\n/.exec(out)
          if (m) resume(Effect.succeed([Number(m[1]), m[2]!] as const))
        })
        holder.once("exit", (code, signal) => resume(Effect.dieMessage(`hold-postgres ended (${code ?? signal}) before "ready": ${out}`)))
      })
      expect(alive(pid)).toBe(true)
      holder.kill("SIGKILL")
      // The watchdog notices at once; postgres then needs a moment for its fast shutdown.
      yield* postgresPids(dataDir).pipe(
        Effect.filterOrFail(
          (pids) => pids.length === 0,
          (pids) => new Error(`postgres still running 30 s after its node was killed: ${pids.join(", ")}`)
        ),
        Effect.retry(Schedule.spaced("100 millis").pipe(Schedule.upTo("30 seconds")))
      )
      // Exited: at most a zombie left for init to reap (its parent was the killed node).
      expect(yield* Effect.promise(() => fs.readFile(`/proc/${pid}/stat`, "utf8").then((t) => / Z /.test(t), () => true))).toBe(true)
      // The killed node's socket directory is left behind (issue 17 item 7) and named after it;
      // the next start removes it.
      expect(path.basename(socketDir)).toMatch(new RegExp(`^prolo-pg-${holder.pid}-`))
      expect(yield* Effect.promise(() => fs.readdir(socketDir))).toEqual([])
      const next = yield* startEmbeddedPostgres({ dataDir })
      expect(path.basename(next.socketDir)).toMatch(new RegExp(`^prolo-pg-${process.pid}-`))
      expect(yield* Effect.promise(() => fs.access(socketDir).then(() => "still there", () => "removed"))).toBe("removed")
    }).pipe(Effect.scoped),
    120_000 // the holder starts under tsx: seconds on a loaded box, before initdb even begins
  )

  it.live("refuses a data directory that holds something else, with a clear error", () =>
    Effect.gen(function* () {
      const root = yield* tempRoot
      const dataDir = path.join(root, "db")
      yield* Effect.promise(async () => {
        await fs.mkdir(dataDir)
        await fs.writeFile(path.join(dataDir, "notes.txt"), "mine")
      })
      const error = yield* Effect.flip(Layer.build(fromSettings({ data_dir: dataDir })))
      expect(error.message).toBe(
        `embedded PostgreSQL (initdb) in ${dataDir}: ${dataDir} is not empty and holds no PostgreSQL cluster (no PG_VERSION); refusing to initialise it`
      )
      expect(yield* Effect.promise(() => fs.readdir(dataDir))).toEqual(["notes.txt"])
    }).pipe(Effect.scoped)
  )
})
