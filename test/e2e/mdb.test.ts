import { describe, expect, it } from "@effect/vitest"
import { Effect, Schedule } from "effect"
import { type ChildProcess, execFile, spawn } from "node:child_process"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { gwMachine } from "../mdb/fixtures.js"
import { freePort as freePortNow, pidsWithArg } from "../support/processes.js"

// The whole path an operator takes: a `--layer all` node with its embedded PostgreSQL,
// `prolo mdb add` over the authenticated rpc, `GET /call/query` as curl would, then SIGTERM.

const repo = path.resolve(import.meta.dirname, "../..")
const configDir = path.join(repo, "etc/prologin")

const freePort = Effect.promise(freePortNow)

const postgresPids = (dataDir: string) => Effect.promise(() => pidsWithArg(dataDir))

const exited = (child: ChildProcess) =>
  Effect.async<{ code: number | null; signal: NodeJS.Signals | null }>((resume) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      return resume(Effect.succeed({ code: child.exitCode, signal: child.signalCode }))
    }
    child.once("exit", (code, signal) => resume(Effect.succeed({ code, signal })))
  })

/** `prolo mdb …` against the node, as an operator runs it. */
const prolo = (url: string, args: ReadonlyArray<string>) =>
  Effect.async<{ code: number; stdout: string; stderr: string }>((resume) => {
    const child = execFile(
      process.execPath,
      [path.join(repo, "bin/prolo.js"), "mdb", ...args],
      { cwd: repo, env: { ...process.env, PROLO_NODE: url, PROLO_CONFIG_DIR: configDir }, timeout: 60_000 },
      (error, stdout, stderr) =>
        resume(Effect.succeed({ code: error === null ? 0 : typeof error.code === "number" ? error.code : 1, stdout, stderr }))
    )
    return Effect.sync(() => void child.kill("SIGKILL"))
  })

const GW_ALIASES = gwMachine.aliases

describe("e2e: mdb on a --layer all node", () => {
  it.live(
    "prolo mdb add, GET /call/query, then SIGTERM stops the node and its embedded PostgreSQL",
    () =>
      Effect.gen(function* () {
        const dataRoot = yield* Effect.acquireRelease(
          Effect.promise(async () => {
            const dir = await fs.mkdtemp(path.join(os.tmpdir(), "prolo-e2e-mdb-"))
            await fs.chmod(dir, 0o755)
            return dir
          }),
          (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
        )
        const port = yield* freePort
        const url = `http://127.0.0.1:${port}`
        let output = ""
        const node = yield* Effect.acquireRelease(
          Effect.sync(() => {
            const child = spawn(
              process.execPath,
              [path.join(repo, "bin/prolo-node.js"), "--layer", "all", "--listen", `127.0.0.1:${port}`, "--config", configDir],
              { cwd: repo, env: { ...process.env, PROLO_DATA_DIR: dataRoot }, stdio: ["ignore", "pipe", "pipe"] }
            )
            child.stdout?.on("data", (c: Buffer) => (output += c.toString("utf8")))
            child.stderr?.on("data", (c: Buffer) => (output += c.toString("utf8")))
            return child
          }),
          (child) => Effect.sync(() => void child.kill("SIGKILL"))
        )

        const started = Date.now()
        // Readiness: the node answers once every subsystem (and the database) is up.
        // Each attempt is bounded: a connection made while the node is still starting may hang.
        yield* Effect.tryPromise(() =>
          fetch(`${url}/__ping`, { signal: AbortSignal.timeout(2000) }).then((r) => (r.ok ? r.text() : Promise.reject(new Error(`${r.status}`))))
        ).pipe(
          Effect.retry(Schedule.spaced("100 millis").pipe(Schedule.upTo("90 seconds"))),
          Effect.orDieWith(() => new Error(`node did not come up:\n${output}`))
        )
        const readyMs = Date.now() - started

        const add = yield* prolo(url, [
          "add",
          "--hostname",
          "gw",
          "--mac",
          "11:22:33:44:55:66",
          "--ip",
          "192.168.1.254",
          "--rfs",
          "0",
          "--hfs",
          "0",
          "--mtype",
          "service",
          "--room",
          "pasteur",
          "--aliases",
          GW_ALIASES
        ])
        expect(add, output).toMatchObject({ code: 0, stdout: "added gw 192.168.1.254 11:22:33:44:55:66 (service, pasteur)\n" })

        const res = yield* Effect.promise(() => fetch(`${url}/call/query`))
        expect(res.headers.get("content-type")).toBe("application/json")
        expect(JSON.parse(yield* Effect.promise(() => res.text()))).toEqual({
          type: "result",
          data: [gwMachine]
        })

        // A refused write is one clear line and exit status 2 (each CLI run costs seconds of
        // start-up on a loaded box: the in-process CLI test covers the other subcommands).
        const dup = yield* prolo(url, ["add", "--hostname", "ns", "--mac", "66:55:44:33:22:11", "--mtype", "service"])
        expect(dup).toEqual({ code: 2, stdout: "", stderr: "prolo mdb: hostname ns is already used by machine gw\n" })
        const list = yield* prolo(url, ["list"])
        expect(list.code).toBe(0)
        expect(list.stdout).toBe(
          [
            "HOSTNAME  IP             MAC                MTYPE    ROOM     RFS  HFS  FAULTY  ALIASES",
            `gw        192.168.1.254  11:22:33:44:55:66  service  pasteur  0    0            ${GW_ALIASES}`,
            ""
          ].join("\n")
        )

        const pids = yield* postgresPids(path.join(dataRoot, "db"))
        expect(pids.length).toBeGreaterThan(0)
        const stopping = Date.now()
        node.kill("SIGTERM")
        const exit = yield* exited(node).pipe(Effect.timeout("30 seconds"))
        const stopMs = Date.now() - stopping
        expect(exit.code === 0 || exit.signal === "SIGTERM" || exit.code === 143, output).toBe(true)
        expect(yield* postgresPids(path.join(dataRoot, "db"))).toEqual([])
        yield* Effect.log(`e2e mdb: node ready in ${readyMs} ms (initdb + start + migrate), stopped in ${stopMs} ms`)
      }).pipe(Effect.scoped),
    180_000
  )
})
