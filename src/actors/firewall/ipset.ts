import { Effect, Schema } from "effect"
import { runTool } from "../../runtime/run-tool.js"

// The allowed set is replaced atomically: the temporary set is flushed and filled, then swapped
// with the live one in one `ipset swap` (a rename of the two sets' contents in the kernel, under
// its lock): a packet is matched against either the whole old set or the whole new one, never a
// half-built one. The whole batch goes through one `ipset restore` (one process, not one per
// address); a failure before the swap leaves the live set untouched.

export class SwapFailed extends Schema.TaggedError<SwapFailed>()("SwapFailed", {
  command: Schema.String,
  code: Schema.Number,
  output: Schema.String
}) {
  override get message(): string {
    return `firewall: ${this.command} failed (exit ${this.code}): ${this.output}`
  }
}

export interface IpsetConfig {
  readonly ipset: ReadonlyArray<string>
  readonly set: string
  readonly tmpSet: string
  readonly setType: ReadonlyArray<string>
}

const createLines = (config: IpsetConfig): ReadonlyArray<string> => [
  `create ${config.tmpSet} ${config.setType.join(" ")}`,
  `create ${config.set} ${config.setType.join(" ")}`
]

/** The `ipset restore` batch that makes `set` hold exactly `ips`. */
export const swapScript = (config: IpsetConfig, ips: ReadonlyArray<string>): string =>
  [
    ...createLines(config),
    `flush ${config.tmpSet}`,
    ...ips.map((ip) => `add ${config.tmpSet} ${ip}`),
    `swap ${config.tmpSet} ${config.set}`,
    ""
  ].join("\n")

const run = (argv: ReadonlyArray<string>, input?: string) =>
  Effect.flatMap(runTool(argv, 30_000, input), (r) =>
    r.code === 0 ? Effect.void : Effect.fail(new SwapFailed({ command: argv.join(" "), code: r.code, output: r.output }))
  )

/** `-exist`: creating a set that exists with the same type is not an error. */
export const swapAllowed = (config: IpsetConfig, ips: ReadonlyArray<string>): Effect.Effect<void, SwapFailed> =>
  run([...config.ipset, "-exist", "restore"], swapScript(config, ips))

/** Makes both sets exist (before rules that name them are loaded). */
export const ensureSets = (config: IpsetConfig): Effect.Effect<void, SwapFailed> =>
  run([...config.ipset, "-exist", "restore"], [...createLines(config), ""].join("\n"))

/** Members of `set` as the kernel holds them (tests, `prolo` status). */
export const listSet = (ipset: ReadonlyArray<string>, set: string): Effect.Effect<ReadonlyArray<string>, SwapFailed> =>
  Effect.flatMap(runTool([...ipset, "list", set, "-output", "save"]), (r) =>
    r.code !== 0
      ? Effect.fail(new SwapFailed({ command: `${ipset.join(" ")} list ${set}`, code: r.code, output: r.output }))
      : Effect.succeed(
          r.output
            .split("\n")
            .filter((l) => l.startsWith(`add ${set} `))
            .map((l) => l.split(" ")[2] ?? "")
            .sort()
        )
  )

/** `rules` once the sets exist (iptables-restore of the forwarding rules). */
export const runRules = (argv: ReadonlyArray<string>): Effect.Effect<void, SwapFailed> => run(argv)
