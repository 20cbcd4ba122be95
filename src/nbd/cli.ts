import { Command, Options } from "@effect/cli"
import { Effect, Option, Schema } from "effect"
import { NbdExports } from "./exports.js"
import { openFileBackend } from "./file-backend.js"
import { makeMemoryBackend } from "./memory-backend.js"
import { parseExportArg, parseListen, parseMemoryBudget, type ExportArg } from "./serve-args.js"
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
  Options.withDescription("NAME=FILE[,ro] or NAME=mem:SIZE[,ro]; clients may ask for NAME@GENERATION (generation 0 here)"),
  Options.repeated
)
const memoryBudget = Options.text("memory-budget").pipe(
  Options.withDescription(
    `data buffers all clients may hold together, e.g. 16M (default ${defaultMemoryBudget / 2 ** 20}M); a client's request waits for room instead of allocating past it`
  ),
  Options.optional
)

export const serve = (args: { readonly listen: string; readonly exports: ReadonlyArray<string>; readonly memoryBudget?: Option.Option<string> }) =>
  Effect.gen(function* () {
    const addr = parseListen(args.listen)
    if (typeof addr === "string") return yield* new NbdUsageError({ message: addr })
    const budgetText = Option.getOrUndefined(args.memoryBudget ?? Option.none())
    const budget = budgetText === undefined ? defaultMemoryBudget : parseMemoryBudget(budgetText)
    if (typeof budget === "string") return yield* new NbdUsageError({ message: budget })
    if (args.exports.length === 0) return yield* new NbdUsageError({ message: "give at least one --export NAME=FILE[,ro]" })
    const specs: Array<ExportArg> = []
    for (const text of args.exports) {
      const spec = parseExportArg(text)
      if (typeof spec === "string") return yield* new NbdUsageError({ message: spec })
      specs.push(spec)
    }
    const registry = yield* NbdExports
    for (const spec of specs) {
      const backend =
        spec.source._tag === "File"
          ? yield* openFileBackend(spec.source.path, { readOnly: spec.readOnly })
          : makeMemoryBackend({ size: spec.source.size, readOnly: spec.readOnly })
      const info = yield* registry.add({
        name: spec.name,
        backend,
        readOnly: spec.readOnly,
        description: spec.source._tag === "File" ? spec.source.path : `memory, ${spec.source.size} bytes`
      })
      yield* Effect.log(`nbd export ${info.name}: ${info.size} bytes${info.readOnly ? ", read-only" : ""}`)
    }
    // Acquired after the files, so released before them.
    const server = yield* makeServer({ host: addr.host, port: addr.port, memoryBudget: budget })
    yield* Effect.log(`nbd serving on ${server.address.host}:${server.address.port}`)
    return yield* Effect.never
  }).pipe(Effect.scoped, Effect.provide(NbdExports.layer))

const serveCommand = Command.make("serve", { listen, exports: exportOpt, memoryBudget }, serve).pipe(
  Command.withDescription("serve files or memory disks over NBD")
)

export const nbdCommand = Command.make("nbd").pipe(
  Command.withDescription("the native NBD server"),
  Command.withSubcommands([serveCommand])
)
