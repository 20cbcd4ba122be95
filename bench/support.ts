// What the bench scripts share: their log line, a free loopback port, running a tool to its
// exit code, medians.
import { spawn } from "node:child_process"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

export { freePort } from "../test/support/processes.js"

/** The checkout's root: benches run their tools and the dist/ bundle from there. */
export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")

// nbdsh/nbdinfo's python parts need Debian's python3, which a pyenv python may shadow.
export const toolEnv = (): NodeJS.ProcessEnv => ({ ...process.env, PATH: `/usr/bin:/usr/sbin:/bin:/sbin:${process.env["PATH"] ?? ""}` })

/** `[bench:NAME] msg` on stderr: stdout carries only the report. */
export const benchLog = (name: string) => (msg: string) => process.stderr.write(`[bench:${name}] ${msg}\n`)

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

/** Runs a tool to its exit code; its stderr goes to ours, its stdout to ours or nowhere. */
export const run = (cmd: string, args: ReadonlyArray<string>, stdout: "inherit" | "ignore" = "inherit"): Promise<number> =>
  new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: root, env: toolEnv(), stdio: ["ignore", stdout, "inherit"] })
    child.once("error", reject)
    child.once("close", (code) => resolve(code ?? 1))
  })

export const median = (xs: ReadonlyArray<number>): number => {
  const s = [...xs].sort((a, b) => a - b)
  if (s.length === 0) return NaN
  return s.length % 2 === 1 ? (s[(s.length - 1) / 2] as number) : ((s[s.length / 2 - 1] as number) + (s[s.length / 2] as number)) / 2
}
