import { readFile, rename, unlink, writeFile } from "node:fs/promises"
import { Effect, Metric, Schema } from "effect"
import type { ToolResult } from "../../runtime/run-tool.js"
import { writeFileAtomic } from "../passwd/atomic-write.js"

// Validate, then swap: a rendered configuration file replaces the live one only after the
// daemon's own checker accepted it (named-checkzone, dhcpd -t). A refused file is kept aside
// as `<target>.rejected` for the operator, the checker's message is logged and counted, and
// the last good file stays live. Shared by the dns and dhcp generators.

const rejected = Metric.counter("prolo_gw_config_rejected_total", {
  description: "Generated configuration files the daemon's checker refused (the last good one stayed live)",
  incremental: true
})

export class SwapFailed extends Schema.TaggedError<SwapFailed>()("SwapFailed", {
  target: Schema.String,
  message: Schema.String
}) {}

export type SwapOutcome =
  | { readonly _tag: "Unchanged" }
  | { readonly _tag: "Written" }
  | { readonly _tag: "Rejected"; readonly output: string }

/** The file's text, or undefined when it does not exist (or cannot be read). */
export const readText = (file: string): Effect.Effect<string | undefined> =>
  Effect.promise(() => readFile(file, "utf8").catch(() => undefined))

export const rejectedPath = (target: string): string => `${target}.rejected`

export const validatedSwap = (options: {
  readonly target: string
  readonly content: string
  /** Checks the candidate file at the path given; code 0 accepts it. */
  readonly validate: (candidate: string) => Effect.Effect<ToolResult>
  /** For the metric and the log: "dns", "dhcp". */
  readonly service: string
}): Effect.Effect<SwapOutcome, SwapFailed> =>
  Effect.gen(function* () {
    const { target, content, service } = options
    if ((yield* readText(target)) === content) return { _tag: "Unchanged" } as const
    const candidate = `${target}.candidate`
    const io = <A>(what: string, f: () => Promise<A>) =>
      Effect.tryPromise({ try: f, catch: (e) => new SwapFailed({ target, message: `${what}: ${String(e)}` }) })
    yield* io(`cannot write ${candidate}`, () => writeFile(candidate, content, { mode: 0o644 }))
    const checked = yield* options.validate(candidate)
    if (checked.code !== 0) {
      yield* io(`cannot keep ${rejectedPath(target)}`, () => rename(candidate, rejectedPath(target)))
      yield* Metric.increment(Metric.tagged(Metric.tagged(rejected, "service", service), "file", target))
      yield* Effect.logError(`${service}: ${target} not replaced, the checker refused it (kept as ${rejectedPath(target)}): ${checked.output}`)
      return { _tag: "Rejected", output: checked.output } as const
    }
    yield* io(`cannot replace ${target}`, () => writeFileAtomic(target, content, 0o644))
    yield* Effect.promise(() => unlink(candidate).catch(() => undefined))
    return { _tag: "Written" } as const
  })
