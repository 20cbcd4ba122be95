// prolo-node: runs the subsystems of one or more roles behind one HTTP port.
// Exit codes: 0 after SIGTERM/SIGINT (graceful), 2 when it cannot start (usage, configuration,
// database, port: one line on stderr naming the cause and the fix), 70 when the root supervisor
// gives up, 1 for a defect (a bug: its stack is printed).
import * as Command from "@effect/cli/Command"
import * as HelpDoc from "@effect/cli/HelpDoc"
import * as Span from "@effect/cli/HelpDoc/Span"
import * as Options from "@effect/cli/Options"
import { isValidationError } from "@effect/cli/ValidationError"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Cause, Config, Context, Effect, Exit, Layer, Option, Schema } from "effect"
import { describeRoles, parseRoles, subsystemsOf } from "../src/roles.js"
import { parseListen } from "../src/runtime/http-host.js"
import * as CliConfig from "@effect/cli/CliConfig"
import { withPlainConsole } from "../src/runtime/cli-console.js"
import { logLevelNames, loggingLayer } from "../src/runtime/logging.js"

const PROGRAM = "prolo-node"

class HfsIdsError extends Schema.TaggedError<HfsIdsError>()("HfsIdsError", { message: Schema.String }) {}

/** `--hfs 0,1`: distinct HFS ids (non-negative integers); default HFS 0. */
const parseHfsIds = (value: Option.Option<string>): Effect.Effect<ReadonlyArray<number>, HfsIdsError> => {
  if (Option.isNone(value)) return Effect.succeed([0])
  const parts = value.value.split(",").map((p) => p.trim())
  const ids = parts.map((p) => (/^(0|[1-9][0-9]{0,5})$/.test(p) ? Number(p) : NaN))
  if (parts.length === 0 || ids.some((id) => Number.isNaN(id))) {
    return Effect.fail(new HfsIdsError({ message: `--hfs: expected a comma list of HFS ids such as 0,1, got ${JSON.stringify(value.value)}` }))
  }
  if (new Set(ids).size !== ids.length) return Effect.fail(new HfsIdsError({ message: `--hfs: an HFS id is given twice in ${JSON.stringify(value.value)}` }))
  return Effect.succeed(ids)
}

class StartError extends Schema.TaggedError<StartError>()("StartError", { message: Schema.String }) {}

const oneLine = (text: string) => text.split("\n", 1)[0] ?? text

const layer = Options.text("layer").pipe(
  Options.withPseudoName("ROLE"),
  Options.withAlias("l"),
  Options.repeated,
  Options.withDescription("role(s) to run: a comma list, and/or repeat the option (see the roles above)")
)
const config = Options.text("config").pipe(
  Options.withPseudoName("DIR"),
  Options.withFallbackConfig(Config.string("PROLO_CONFIG_DIR")),
  Options.withDefault("/etc/prologin"),
  Options.withDescription("configuration directory holding the <profile>.yml files (env PROLO_CONFIG_DIR)")
)
const listen = Options.text("listen").pipe(
  Options.withPseudoName("HOST:PORT"),
  Options.withDefault("0.0.0.0:20000"),
  Options.withDescription("HOST:PORT of the node's HTTP server; port 0 picks a free one")
)
const hfs = Options.text("hfs").pipe(
  Options.optional,
  Options.withDescription("role rhfs: the HFS ids this node serves, e.g. 0,1 (one per NIC; default 0)")
)
const logLevel = Options.choice("log-level", logLevelNames).pipe(
  Options.withDefault("info" as const),
  Options.withDescription("minimum level logged on stderr")
)

const help = HelpDoc.blocks([
  HelpDoc.p("Runs the prolo subsystems of the given roles behind one HTTP port (/__ping, /__actors, /metrics, /rpc/<service>)."),
  HelpDoc.p("--help prints this, --version the version."),
  HelpDoc.p("Roles:"),
  HelpDoc.descriptionList(
    describeRoles().map(([name, text]) => [Span.text(name), HelpDoc.p(text)] as [Span.Span, HelpDoc.HelpDoc]) as [
      [Span.Span, HelpDoc.HelpDoc],
      ...Array<[Span.Span, HelpDoc.HelpDoc]>
    ]
  )
])

const start = (options: {
  readonly layer: ReadonlyArray<string>
  readonly config: string
  readonly listen: string
  readonly hfs: Option.Option<string>
  readonly logLevel: (typeof logLevelNames)[number]
}) =>
  Effect.gen(function* () {
    const roleNames = yield* parseRoles(options.layer)
    const address = yield* parseListen(options.listen)
    const hfsIds = yield* parseHfsIds(options.hfs)
    // Loaded after parsing, so that `--help` and usage errors stay quick.
    const { nodeLayer, NodeUrls } = yield* Effect.promise(() => import("../src/runtime/http-host-node.js"))
    const node = nodeLayer({
      subsystems: subsystemsOf(roleNames),
      listen: address,
      configDir: options.config,
      flags: { hfs: hfsIds }
    })
    const urls = yield* Layer.build(node).pipe(
      Effect.map((ctx) => Context.get(ctx, NodeUrls)),
      Effect.mapError((e) =>
        tagOf(e) === "ServeError" && typeof e === "object" && e !== null && "cause" in e
          ? new StartError({
              message: `cannot listen on ${options.listen}: ${messageOf(e.cause) ?? "error"}; fix: free that port or pick another with --listen`
            })
          : e
      )
    )
    yield* Effect.logInfo(`${PROGRAM} listening on ${urls.base} (layers: ${roleNames.join(", ")})`)
    for (const path of urls.paths) yield* Effect.logInfo(`  ${urls.base}${path}`)
    return yield* Effect.never
  }).pipe(Effect.scoped, Effect.provide(loggingLayer(options.logLevel)))

const command = Command.make(PROGRAM, { layer, config, listen, hfs, logLevel }, start).pipe(Command.withDescription(help))

const cli = Command.run(command, { name: PROGRAM, version: "0.1.0" })

const failureOf = (exit: Exit.Exit<unknown, unknown>): unknown =>
  Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined

const tagOf = (error: unknown): string | undefined =>
  typeof error === "object" && error !== null && "_tag" in error ? String(error._tag) : undefined

const messageOf = (error: unknown): string | undefined =>
  typeof error === "object" && error !== null && "message" in error && typeof error.message === "string" && error.message !== ""
    ? oneLine(error.message)
    : undefined

const exitCode = (exit: Exit.Exit<unknown, unknown>): number => {
  if (Exit.isSuccess(exit) || Cause.isInterruptedOnly(exit.cause)) return 0
  // Once listening the node only returns on a signal (the root supervisor exits by itself),
  // so every typed failure is a start-up failure; a defect is a bug.
  return Option.isSome(Cause.failureOption(exit.cause)) ? 2 : 1
}

// A failure the operator can act on is one line; a defect keeps its stack, it is a bug report.
const report = (exit: Exit.Exit<unknown, unknown>): string | undefined => {
  if (Exit.isSuccess(exit) || Cause.isInterruptedOnly(exit.cause)) return undefined
  const error = failureOf(exit)
  if (isValidationError(error)) return undefined // @effect/cli printed it
  const message = messageOf(error)
  return message !== undefined ? `${PROGRAM}: ${message}` : `${PROGRAM}: failed\n${Cause.pretty(exit.cause)}`
}

// Our `--log-level` (the level of the node's own logger) replaces @effect/cli's built-in one,
// which was listed beside it with other choices: the built-ins stay out of the help, which
// names the two an operator needs (--help, --version) in its description.
// @effect/cli reads its built-in --help/--version only before the command's own options
// (`--layer rhfs --help` was "unknown argument"): an operator may put them anywhere.
const builtIns = new Set(["--help", "-h", "--version"])
const argv = [...process.argv.slice(0, 2), ...process.argv.slice(2).filter((a) => builtIns.has(a)), ...process.argv.slice(2).filter((a) => !builtIns.has(a))]

cli(argv).pipe(
  withPlainConsole,
  Effect.provide(CliConfig.layer({ showBuiltIns: false })),
  Effect.onExit((exit) => {
    const text = report(exit)
    return text === undefined ? Effect.void : Effect.sync(() => process.stderr.write(`${text}\n`))
  }),
  Effect.provide(NodeContext.layer),
  NodeRuntime.runMain({ disableErrorReporting: true, disablePrettyLogger: true, teardown: (exit, onExit) => onExit(exitCode(exit)) })
)
