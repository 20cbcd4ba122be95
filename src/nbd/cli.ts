import { Command, Options } from "@effect/cli"
import { Effect, Option, Schema } from "effect"
import { NbdExports } from "./exports.js"
import { openFileBackend } from "./file-backend.js"
import { makeMemoryBackend } from "./memory-backend.js"
import { DEFAULT_EXPORT_NAME, parseDeadPeer, parseExportArg, parseListen, parseMemoryBudget, type ExportArg } from "./serve-args.js"
import { defaultMemoryBudget, make as makeServer } from "./server.js"

// `prolo nbd serve --listen HOST:PORT --export NAME=FILE[,ro] [--export …]`: serve files
// (or throwaway in-memory disks, NAME=mem:SIZE) without the rest of the system. SIGINT or
// SIGTERM interrupts the program; closing its scope stops accepting, answers what clients
// already sent, closes them, then closes the files.

export class NbdUsageError extends Schema.TaggedError<NbdUsageError>()("NbdUsageError", {
  message: Schema.String
}) {}

const listen = Options.text("listen").pipe(
  Options.withDescription("address to listen on, HOST:PORT"),
  Options.withDefault("127.0.0.1:10809")
)
const exportOpt = Options.text("export").pipe(
  Options.withDescription(
    "NAME=FILE[,ro] or NAME=mem:SIZE[,ro]; =FILE is the default export (listed as \"default\"), served to clients that name none (nbd://HOST:PORT); clients may ask for NAME@GENERATION (generation 0 here)"
  ),
  Options.repeated
)
const defaultOpt = Options.text("default").pipe(
  Options.withDescription("the export served to clients that name none (nbd://HOST:PORT); without it (or --export =FILE) they are refused"),
  Options.optional
)
const memoryBudget = Options.text("memory-budget").pipe(
  Options.withDescription(
    `data buffers all clients may hold together, e.g. 16M (default ${defaultMemoryBudget / 2 ** 20}M); a client's request waits for room instead of allocating past it`
  ),
  Options.optional
)

const deadPeer = Options.text("dead-peer").pipe(
  Options.withDescription("IDLE,INTERVAL,COUNT: TCP keepalive probes after IDLE s of silence, every INTERVAL s; COUNT unanswered cut the connection (a crashed client), e.g. 10,2,5"),
  Options.optional
)

export const serve = (args: {
  readonly listen: string
  readonly exports: ReadonlyArray<string>
  readonly default?: Option.Option<string>
  readonly memoryBudget?: Option.Option<string>
  readonly deadPeer?: Option.Option<string>
}) =>
  Effect.gen(function* () {
    const addr = parseListen(args.listen)
    if (typeof addr === "string") return yield* new NbdUsageError({ message: addr })
    const budgetText = Option.getOrUndefined(args.memoryBudget ?? Option.none())
    const budget = budgetText === undefined ? defaultMemoryBudget : parseMemoryBudget(budgetText)
    if (typeof budget === "string") return yield* new NbdUsageError({ message: budget })
    const deadPeerText = Option.getOrUndefined(args.deadPeer ?? Option.none())
    const dead = deadPeerText === undefined ? undefined : parseDeadPeer(deadPeerText)
    if (typeof dead === "string") return yield* new NbdUsageError({ message: dead })
    if (args.exports.length === 0) return yield* new NbdUsageError({ message: "give at least one --export NAME=FILE[,ro]" })
    const specs: Array<ExportArg> = []
    for (const text of args.exports) {
      const spec = parseExportArg(text)
      if (typeof spec === "string") return yield* new NbdUsageError({ message: spec })
      specs.push(spec)
    }
    const unnamed = specs.filter((s) => s.name === "")
    const named = Option.getOrUndefined(args.default ?? Option.none())
    if (unnamed.length > 1) return yield* new NbdUsageError({ message: "more than one --export =FILE: there is one default export" })
    if (unnamed.length === 1 && named !== undefined) {
      return yield* new NbdUsageError({ message: `--default ${named} and --export =FILE both name the default export: keep one` })
    }
    if (named !== undefined && !specs.some((s) => s.name === named)) {
      return yield* new NbdUsageError({ message: `--default ${named}: no --export ${named}=… is given` })
    }
    const registry = yield* NbdExports
    for (const spec of specs) {
      const backend =
        spec.source._tag === "File"
          ? yield* openFileBackend(spec.source.path, { readOnly: spec.readOnly })
          : makeMemoryBackend({ size: spec.source.size, readOnly: spec.readOnly })
      // No description: NBD_OPT_LIST and NBD_INFO_DESCRIPTION go to any client, and the
      // file's path on this server is none of its business.
      const info = yield* registry.add({ name: spec.name === "" ? DEFAULT_EXPORT_NAME : spec.name, backend, readOnly: spec.readOnly })
      yield* Effect.log(`nbd export ${info.name}: ${info.size} bytes${info.readOnly ? ", read-only" : ""}`)
    }
    const defaultName = unnamed.length === 1 ? DEFAULT_EXPORT_NAME : named
    if (defaultName !== undefined) {
      yield* registry.setDefault(defaultName)
      yield* Effect.log(`nbd default export (nbd://HOST:PORT): ${defaultName}`)
    }
    // Acquired after the files, so released before them.
    const server = yield* makeServer({ host: addr.host, port: addr.port, memoryBudget: budget, ...(dead === undefined ? {} : { deadPeer: dead }) })
    yield* Effect.log(`nbd serving on ${server.address.host}:${server.address.port}`)
    return yield* Effect.never
  }).pipe(Effect.scoped, Effect.provide(NbdExports.layer))

const serveCommand = Command.make("serve", { listen, exports: exportOpt, default: defaultOpt, memoryBudget, deadPeer }, serve).pipe(
  Command.withDescription("serve files or memory disks over NBD")
)

export const nbdCommand = Command.make("nbd").pipe(
  Command.withDescription("the native NBD server"),
  Command.withSubcommands([serveCommand])
)
