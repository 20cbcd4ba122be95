import { execFile } from "node:child_process"
import { Effect } from "effect"

// External tools (mke2fs, stat): run without a shell, bounded in time and output, killed when
// the caller is interrupted. Fails with the tool's first stderr line.

export const runTool = (
  command: string,
  args: ReadonlyArray<string>,
  options: { readonly timeoutMillis?: number } = {}
): Effect.Effect<string, string> =>
  Effect.async<string, string>((resume) => {
    const child = execFile(
      command,
      [...args],
      { timeout: options.timeoutMillis ?? 60_000, maxBuffer: 1 << 20, env: { ...process.env, LC_ALL: "C" } },
      (error, stdout, stderr) => {
        if (error === null) return resume(Effect.succeed(stdout))
        const line = stderr.trim().split("\n").filter((l) => l.trim() !== "").pop()
        resume(Effect.fail(`${command}: ${line ?? error.message}`))
      }
    )
    return Effect.sync(() => child.kill("SIGKILL"))
  })
