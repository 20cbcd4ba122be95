import { type ChildProcess, spawn } from "node:child_process"
import * as net from "node:net"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

// Spawns the real binaries from the checkout, the way an operator runs them.
export const checkout = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..")

export interface Spawned {
  readonly child: ChildProcess
  stdout: string
  stderr: string
  /** Resolves with the exit code (or the signal name) when the process ends. */
  readonly exited: Promise<number | string>
}

const live = new Set<ChildProcess>()

export const spawnBin = (bin: "prolo-node" | "prolo", args: ReadonlyArray<string>, env: NodeJS.ProcessEnv = {}): Spawned =>
  spawnNode([path.join(checkout, "bin", `${bin}.js`), ...args], env)

/** `node <args>` in the checkout (or `cwd`), output collected, tracked for `killAll`. */
export const spawnNode = (args: ReadonlyArray<string>, env: NodeJS.ProcessEnv = {}, cwd = checkout): Spawned =>
  spawnTracked(
    spawn(process.execPath, args, {
      cwd,
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"]
    })
  )

/** Any child process: output collected, tracked for `killAll` (a daemon a test starts). */
export const spawnTracked = (child: ChildProcess): Spawned => {
  live.add(child)
  const spawned: Spawned = {
    child,
    stdout: "",
    stderr: "",
    exited: new Promise((resolve) => {
      child.on("exit", (code, signal) => {
        live.delete(child)
        resolve(code ?? signal ?? "unknown")
      })
    })
  }
  child.stdout?.setEncoding("utf8").on("data", (chunk: string) => (spawned.stdout += chunk))
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => (spawned.stderr += chunk))
  return spawned
}

/** Waits until `pattern` shows in stderr; fails early, with the output, if the process ends. */
export const waitForOutput = (spawned: Spawned, pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray> =>
  new Promise((resolve, reject) => {
    const check = () => {
      const match = spawned.stderr.match(pattern)
      if (match !== null) {
        done()
        resolve(match)
      }
    }
    const onExit = (code: number | string) => {
      done()
      reject(new Error(`process ended (${code}) before ${pattern}:\n${spawned.stderr}${spawned.stdout}`))
    }
    const timer = setTimeout(() => {
      done()
      reject(new Error(`no ${pattern} within ${timeoutMs} ms:\n${spawned.stderr}${spawned.stdout}`))
    }, timeoutMs)
    const done = () => {
      clearTimeout(timer)
      spawned.child.stderr?.off("data", check)
    }
    spawned.child.stderr?.on("data", check)
    void spawned.exited.then(onExit)
    check()
  })

/** The line a node logs once every subsystem is up and the HTTP server serves: URL and roles. */
export const LISTENING = /prolo-node listening on (http:\/\/\S+) \(layers: ([^)]*)\)/

/**
 * Starts `prolo-node` with `--listen 127.0.0.1:0` (the kernel picks the port: no window in
 * which another process can take it) and waits for its listening line. The embedded database
 * makes `--layer all` slow to start on a busy machine: the bound is generous, nothing here
 * measures speed (bench/start.ts does).
 */
export const startNode = async (args: ReadonlyArray<string>, env: NodeJS.ProcessEnv = {}, timeoutMs = 120_000) => {
  const node = spawnBin("prolo-node", [...args, "--listen", "127.0.0.1:0"], env)
  const [, url = "", layers = ""] = await waitForOutput(node, LISTENING, timeoutMs)
  return { node, url, layers }
}

/** Resolves with the exit code, or "timeout" if the process is still running after `ms`. */
export const exitWithin = (spawned: Spawned, ms: number): Promise<number | string> =>
  Promise.race([spawned.exited, new Promise<string>((resolve) => setTimeout(() => resolve("timeout"), ms).unref())])

/** For afterEach: no test leaves a process behind. */
export const killAll = async (): Promise<void> => {
  const children = [...live]
  for (const child of children) child.kill("SIGKILL")
  await Promise.all(children.map((c) => new Promise((resolve) => (c.exitCode !== null || c.signalCode !== null ? resolve(undefined) : c.once("exit", resolve)))))
}

/** A port free on `host` now (for a node that must be given its port before it starts). */
export const freePortOn = (host: string): Promise<number> =>
  new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once("error", reject)
    s.listen(0, host, () => {
      const { port } = s.address() as net.AddressInfo
      s.close(() => resolve(port))
    })
  })
