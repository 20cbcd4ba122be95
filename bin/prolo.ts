// prolo: the operator CLI. Talks to a node over HTTP (`--node`, env PROLO_NODE); secrets come
// from the configuration directory (`--config`, env PROLO_CONFIG_DIR). Any failure is one
// line on stderr and exit status 2.
import * as Command from "@effect/cli/Command"
import { Console, Effect, Schema } from "effect"
import { mdbCommand } from "../src/actors/mdb/cli.js"
import { table } from "../src/runtime/cli-table.js"
import { udbCommand } from "../src/actors/udb/cli.js"
import { nbdCommand } from "../src/nbd/cli.js"
import { hfsCommand } from "../src/actors/hfs/cli.js"
import { concoursCommand } from "../src/actors/web/concours/cli.js"
import { clusterCommand } from "../src/actors/cluster/cli.js"
import { ActorInfo } from "../src/runtime/actor-tree.js"
import { configOption, nodeOption, topLevelClientEnv } from "../src/runtime/cli-client-options.js"
import { cliConfig, mistypedSubcommand, subcommandTree, withPlainConsole } from "../src/runtime/cli-console.js"
import { runCliMain } from "../src/runtime/cli-exit.js"

const PROGRAM = "prolo"

class CliError extends Schema.TaggedError<CliError>()("CliError", { message: Schema.String }) {}

const root = Command.make(PROGRAM, { node: nodeOption, config: configOption })

const fetchText = (url: string) =>
  Effect.tryPromise({
    try: async (signal) => {
      const res = await fetch(url, { signal })
      const body = await res.text()
      if (!res.ok) throw new Error(`HTTP ${res.status}`)
      return body
    },
    catch: (e) => {
      const cause = e instanceof Error && e.cause instanceof Error ? `: ${e.cause.message}` : ""
      return new CliError({ message: `cannot reach ${url}: ${e instanceof Error ? e.message : String(e)}${cause}` })
    }
  }).pipe(
    Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => new CliError({ message: `no answer from ${url} within 10 s` }) })
  )

const formatAge = (seconds: number): string => {
  const s = Math.floor(seconds)
  if (s < 60) return `${s}s`
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`
}

const decodeActors = Schema.decodeUnknown(Schema.parseJson(Schema.Array(ActorInfo)))

const status = Command.make("status", {}, () =>
  Effect.gen(function* () {
    const { node } = yield* root
    const base = node.replace(/\/+$/, "")
    const pong = yield* fetchText(`${base}/__ping`)
    if (pong !== "pong") return yield* new CliError({ message: `${base}/__ping answered ${JSON.stringify(pong.slice(0, 40))}, not pong` })
    const actors = yield* fetchText(`${base}/__actors`).pipe(
      Effect.flatMap(decodeActors),
      Effect.mapError((e) => (e._tag === "CliError" ? e : new CliError({ message: `${base}/__actors: unexpected answer` })))
    )
    yield* Console.log(`node ${base}: up, ${actors.length} actor${actors.length === 1 ? "" : "s"}`)
    if (actors.length === 0) return
    yield* Console.log(
      table(
        ["PATH", "KIND", "MAILBOX", "HANDLED", "RESTARTS", "AGE", "CHILDREN"],
        actors.map((a) => [
          a.path,
          a.kind ?? "actor",
          String(a.mailboxDepth),
          String(a.handled),
          String(a.restarts),
          formatAge(a.ageSeconds),
          a.children === undefined ? "" : String(a.children)
        ])
      )
    )
  })
).pipe(Command.withDescription("is the node up, and its actor tree (mailbox depth, restarts, age)"))

// Subcommands contributed by subsystems: one line each.
const subcommands = [
  status,
  mdbCommand,
  udbCommand,
  hfsCommand,
  nbdCommand,
  concoursCommand,
  clusterCommand
] as const

const command = root.pipe(
  Command.withDescription("operator CLI of prolo: status, machines (mdb), users (udb), homes (hfs), nbd, the concours website"),
  Command.withSubcommands(subcommands)
)

// Options that take a value, anywhere before a subcommand's name.
const valueOptions = new Set(["--node", "--config", "--log-level", "--completions", "--url", "--user"])
const tree = { status: {}, mdb: subcommandTree(mdbCommand), udb: subcommandTree(udbCommand), hfs: subcommandTree(hfsCommand), nbd: subcommandTree(nbdCommand), concours: subcommandTree(concoursCommand), cluster: subcommandTree(clusterCommand) }
Object.assign(process.env, topLevelClientEnv(process.argv.slice(2)))
const mistyped = mistypedSubcommand(PROGRAM, tree, process.argv.slice(2), valueOptions)

runCliMain(
  PROGRAM,
  (mistyped === undefined ? Command.run(command, { name: PROGRAM, version: "0.1.0" })(process.argv) : new CliError({ message: mistyped })).pipe(
    withPlainConsole,
    Effect.provide(cliConfig)
  ),
  (error) => error instanceof CliError && error.message.startsWith(PROGRAM)
)
