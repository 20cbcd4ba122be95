import { execFile } from "node:child_process"
import { Effect } from "effect"

// Runs an external tool (a validator such as named-checkzone, a reload such as rndc) and keeps
// everything it printed: validators print their diagnosis on stdout, others on stderr, and the
// operator needs that text in the log whatever the tool.

export interface ToolResult {
  /** Exit code; -1 when the tool could not be started or was killed. */
  readonly code: number
  /** stdout then stderr, trimmed. */
  readonly output: string
}

/**
 * `argv[0]` with the rest as arguments, `input` (if any) on its stdin (a batch for `ipset
 * restore`); never fails: a missing tool is a result with code -1.
 */
export const runTool = (argv: ReadonlyArray<string>, timeoutMs = 30_000, input?: string): Effect.Effect<ToolResult> =>
  Effect.async<ToolResult>((resume) => {
    const [command = "", ...args] = argv
    const child = execFile(command, args, { timeout: timeoutMs, maxBuffer: 1 << 20 }, (error, stdout, stderr) => {
      const output = `${stdout}${stderr}`.trim()
      if (error === null) return resume(Effect.succeed({ code: 0, output }))
      const code = typeof error.code === "number" ? error.code : -1
      const why = code === -1 ? `${command}: ${error.message}` : ""
      resume(Effect.succeed({ code, output: [output, why].filter((s) => s !== "").join("\n") }))
    })
    // A tool that exits without reading all of its input must not raise EPIPE in the node.
    child.stdin?.on("error", () => undefined)
    child.stdin?.end(input)
    return Effect.sync(() => child.kill())
  })
