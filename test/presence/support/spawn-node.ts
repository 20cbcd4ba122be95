import { Effect, Redacted } from "effect"
import { spawn, type ChildProcess } from "node:child_process"
import { copyFileSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

// `prolo-node --layer gw` as a child process, over a test database, with the example
// configuration of etc/prologin (dev secrets) and a chosen lease.

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../../..")

export const DEV_SECRETS = {
  mdb: "dev-mdb-secret",
  udb: "dev-udb-secret",
  presence: "dev-presencesync-secret",
  presenceSub: "dev-presencesyncsub-secret"
} as const

export const hostOf = (i: number) => `pas-r${String(Math.floor(i / 100) + 1).padStart(2, "0")}p${String(i % 100).padStart(2, "0")}`
export const macOf = (i: number) => `aa:bb:cc:dd:${(i >> 8).toString(16).padStart(2, "0")}:${(i & 255).toString(16).padStart(2, "0")}`

/** A config directory: etc/prologin, with node.yml on database `url` and presence.yml's lease (plus `presenceExtra` lines). */
export const writeConfig = (url: Redacted.Redacted<string>, leaseSeconds: number, presenceExtra = "") =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const dir = mkdtempSync(path.join(os.tmpdir(), "prolo-presence-"))
      const etc = path.join(root, "etc", "prologin")
      for (const name of readdirSync(etc)) if (name.endsWith(".yml")) copyFileSync(path.join(etc, name), path.join(dir, name))
      writeFileSync(path.join(dir, "node.yml"), `database:\n  url: ${JSON.stringify(Redacted.value(url))}\n  max_connections: 4\n`)
      writeFileSync(path.join(dir, "presence.yml"), `lease_seconds: ${leaseSeconds}\n${presenceExtra}`)
      return dir
    }),
    (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
  )

export interface RunningNode {
  readonly url: string
  /** Presence's TCP rpc port, when presence.yml has `tcp_listen`. */
  readonly tcpPort: number | undefined
  readonly child: ChildProcess
  /** SIGKILL and wait for the exit. */
  readonly kill9: Effect.Effect<void>
}

const LISTENING = /listening on (http:\/\/127\.0\.0\.1:\d+)/
// logged while the layers are built, so before LISTENING
const PRESENCE_TCP = /presence: rpc over tcp\+msgpack on 127\.0\.0\.1:(\d+)/

/** Starts `prolo-node --layer gw`; killed (SIGKILL) with the scope if still running. */
export const startGateway = (configDir: string) =>
  Effect.acquireRelease(
    Effect.async<RunningNode, Error>((resume) => {
      const child = spawn(
        process.execPath,
        [path.join(root, "bin", "prolo-node.js"), "--layer", "gw", "--config", configDir, "--listen", "127.0.0.1:0"],
        { cwd: root, stdio: ["ignore", "ignore", "pipe"] }
      )
      let err = ""
      let started = false
      const exited = new Promise<void>((r) => child.once("exit", () => r()))
      const kill9 = Effect.promise(() => {
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
        return exited
      })
      child.stderr!.on("data", (d: Buffer) => {
        err += d.toString()
        const match = LISTENING.exec(err)
        if (match !== null && !started) {
          started = true
          const tcp = PRESENCE_TCP.exec(err)
          resume(Effect.succeed({ url: match[1]!, tcpPort: tcp === null ? undefined : Number(tcp[1]), child, kill9 }))
        }
      })
      child.once("exit", (code, signal) => {
        if (!started) resume(Effect.fail(new Error(`prolo-node exited (${code ?? signal}) before listening:\n${err}`)))
      })
      return Effect.sync(() => child.kill("SIGKILL"))
    }).pipe(Effect.timeoutFail({ duration: "90 seconds", onTimeout: () => new Error("prolo-node did not start within 90 s") })),
    (node) => node.kill9
  )
