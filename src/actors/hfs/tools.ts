import { execFile } from "node:child_process"
import { Effect } from "effect"

// External tools (mke2fs, debugfs, dumpe2fs): run without a shell, bounded in time and output,
// killed when the caller is interrupted. Fails with the tool's first stderr line.

export interface ToolOptions {
  readonly timeoutMillis?: number
  /** Written to the tool's stdin (then closed). */
  readonly input?: string
  /**
   * A tool that reports failed commands on stderr but exits 0 (debugfs): any stderr line not
   * matching this is a failure.
   */
  readonly stderrAllowed?: RegExp
}

export const runTool = (command: string, args: ReadonlyArray<string>, options: ToolOptions = {}): Effect.Effect<string, string> =>
  Effect.async<string, string>((resume) => {
    const child = execFile(
      command,
      [...args],
      { timeout: options.timeoutMillis ?? 60_000, maxBuffer: 1 << 20, env: { ...process.env, LC_ALL: "C" } },
      (error, stdout, stderr) => {
        const lines = stderr.split("\n").filter((l) => l.trim() !== "")
        if (error === null) {
          const allowed = options.stderrAllowed
          const bad = allowed === undefined ? undefined : lines.find((l) => !allowed.test(l))
          return resume(bad === undefined ? Effect.succeed(stdout) : Effect.fail(`${command}: ${bad}`))
        }
        resume(Effect.fail(`${command}: ${lines.pop() ?? error.message}`))
      }
    )
    child.stdin?.on("error", () => {})
    child.stdin?.end(options.input ?? "")
    return Effect.sync(() => child.kill("SIGKILL"))
  })
