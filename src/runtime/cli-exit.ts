// How both CLI entries (bin/prolo.ts and the NBD-only bin/prolo-nbd.ts) end: success or an
// interrupt is status 0; any failure is one line on stderr and status 2. Kept apart from
// cli-run.ts so that prolo-nbd loads no RPC client code.
import { isValidationError } from "@effect/cli/ValidationError"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Effect, Exit, Option } from "effect"

const ok = (exit: Exit.Exit<unknown, unknown>) => Exit.isSuccess(exit) || Cause.isInterruptedOnly(exit.cause)

/** The stderr line for `exit`, if any: `<program>: <first line of the error's message>`. */
const exitLine = (program: string, exit: Exit.Exit<unknown, unknown>, verbatim: (error: unknown) => boolean): string | undefined => {
  if (Exit.isSuccess(exit) || Cause.isInterruptedOnly(exit.cause)) return undefined
  const error = Option.getOrUndefined(Cause.failureOption(exit.cause))
  if (isValidationError(error)) return undefined // @effect/cli printed it
  const message =
    typeof error === "object" && error !== null && "message" in error && typeof error.message === "string" ? error.message : undefined
  if (message !== undefined && verbatim(error)) return message
  return `${program}: ${message?.split("\n", 1)[0] ?? Cause.pretty(exit.cause)}`
}

/**
 * Runs a CLI `main` as the process: its failure reported as one line (`verbatim` errors:
 * their message as it is, already naming the program), exit status 0 or 2.
 */
export const runCliMain = (
  program: string,
  main: Effect.Effect<unknown, unknown, NodeContext.NodeContext>,
  verbatim: (error: unknown) => boolean = () => false
): void =>
  main.pipe(
    Effect.onExit((exit) => {
      const text = exitLine(program, exit, verbatim)
      return text === undefined ? Effect.void : Effect.sync(() => process.stderr.write(`${text}\n`))
    }),
    Effect.provide(NodeContext.layer),
    NodeRuntime.runMain({
      disableErrorReporting: true,
      disablePrettyLogger: true,
      teardown: (exit, onExit) => onExit(ok(exit) ? 0 : 2)
    })
  )
