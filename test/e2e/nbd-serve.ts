import { spawn } from "node:child_process"
import { type Spawned, spawnBin } from "./node-process.js"

// `prolo nbd serve` as its own process, and the real NBD clients (nbdsh, nbdinfo, nbdcopy,
// qemu-io, nbdfuse) run against it, for the e2e NBD tests.

// Debian's tools first: a pyenv python3 earlier on PATH has no libnbd bindings for nbdsh.
export const TOOLS_PATH = `/usr/bin:/usr/sbin:/bin:/sbin:${process.env["PATH"] ?? ""}`

export interface NbdServe {
  readonly spawned: Spawned
  readonly port: number
  readonly output: () => string
}

const SERVING = /nbd serving on 127\.0\.0\.1:(\d+)/

// Port 0: the server picks a free port and logs it (no window for another process to take it).
export const startNbdServe = async (args: ReadonlyArray<string>, timeoutMs = 60_000): Promise<NbdServe> => {
  const spawned = spawnBin("prolo", ["nbd", "serve", "--listen", "127.0.0.1:0", ...args])
  const output = () => spawned.stdout + spawned.stderr
  const port = await new Promise<number>((resolve, reject) => {
    const check = () => {
      const m = SERVING.exec(output())
      if (m !== null) {
        done()
        resolve(Number(m[1]))
      }
    }
    const timer = setTimeout(() => {
      done()
      reject(new Error(`prolo nbd serve did not listen within ${timeoutMs} ms:\n${output()}`))
    }, timeoutMs)
    const done = () => {
      clearTimeout(timer)
      spawned.child.stdout?.off("data", check)
      spawned.child.stderr?.off("data", check)
    }
    spawned.child.stdout?.on("data", check)
    spawned.child.stderr?.on("data", check)
    void spawned.exited.then((code) => {
      done()
      reject(new Error(`prolo nbd serve exited (${code}) before listening:\n${output()}`))
    })
    check()
  })
  return { spawned, port, output }
}

export interface ToolRun {
  readonly code: number | string
  readonly stdout: string
  readonly stderr: string
}

// Runs a client to completion; killed (and reported as "timeout") after `timeoutMs`.
export const runTool = (
  command: string,
  args: ReadonlyArray<string>,
  opts: { readonly timeoutMs?: number; readonly input?: string; readonly cwd?: string; readonly env?: NodeJS.ProcessEnv } = {}
): Promise<ToolRun> =>
  new Promise((resolve) => {
    const child = spawn(command, args, {
      cwd: opts.cwd,
      env: { ...process.env, PATH: TOOLS_PATH, ...opts.env },
      stdio: [opts.input === undefined ? "ignore" : "pipe", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stdout?.setEncoding("utf8").on("data", (d: string) => (stdout += d))
    child.stderr?.setEncoding("utf8").on("data", (d: string) => (stderr += d))
    if (opts.input !== undefined) child.stdin?.end(opts.input)
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      child.kill("SIGKILL")
    }, opts.timeoutMs ?? 60_000)
    child.once("error", (err) => {
      clearTimeout(timer)
      resolve({ code: "spawn-error", stdout, stderr: `${stderr}${err.message}` })
    })
    child.once("close", (code, signal) => {
      clearTimeout(timer)
      resolve({ code: timedOut ? "timeout" : (code ?? signal ?? "unknown"), stdout, stderr })
    })
  })

// A Python snippet run by nbdsh (libnbd's shell: `h` is a fresh handle, `nbd` the module).
export const nbdsh = (script: string, timeoutMs = 60_000) => runTool("nbdsh", ["-c", script], { timeoutMs })
