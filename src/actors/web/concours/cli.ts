import { Args, Command, Options } from "@effect/cli"
import { Config, Console, Effect, Option, Schema } from "effect"
import { readFile } from "node:fs/promises"
import * as path from "node:path"

// `prolo concours …`: the original `python -m prologin.concours.api` commands, over the
// website's REST API (/api/) with HTTP Basic (login and password, as a contestant's script).
//   prolo concours champion upload FILE.tgz --name NAME [--comment C]
//   prolo concours match launch CHAMPION_ID… [--map ID]
//   prolo concours map get ID
// The password comes from PROLO_PASSWORD (never from the command line: `ps` would show it).

export class ConcoursCliError extends Schema.TaggedError<ConcoursCliError>()("ConcoursCliError", { message: Schema.String }) {}

const url = Options.text("url").pipe(
  Options.withFallbackConfig(Config.string("PROLO_CONCOURS_URL")),
  Options.withDefault("http://concours/"),
  Options.withDescription("the concours website (env PROLO_CONCOURS_URL)")
)
const user = Options.text("user").pipe(
  Options.withFallbackConfig(Config.string("USER")),
  Options.withDescription("your login (default: $USER); the password is read from PROLO_PASSWORD")
)

const concours = Command.make("concours", { url, user })

const call = (method: "GET" | "POST", pathname: string, body?: FormData | URLSearchParams) =>
  Effect.gen(function* () {
    const where = yield* concours
    const password = process.env["PROLO_PASSWORD"]
    if (password === undefined || password === "") return yield* new ConcoursCliError({ message: "set PROLO_PASSWORD to your password (the concours API needs it)" })
    const target = `${where.url.replace(/\/+$/, "")}/api${pathname}`
    const res = yield* Effect.tryPromise({
      try: (signal) =>
        fetch(target, {
          method,
          signal,
          headers: { authorization: `Basic ${Buffer.from(`${where.user}:${password}`).toString("base64")}` },
          ...(body === undefined ? {} : { body })
        }).then(async (r) => ({ status: r.status, text: await r.text() })),
      catch: (e) => new ConcoursCliError({ message: `cannot reach ${target}: ${e instanceof Error ? e.message : String(e)}` })
    }).pipe(Effect.timeoutFail({ duration: "60 seconds", onTimeout: () => new ConcoursCliError({ message: `no answer from ${target} within 60 s` }) }))
    if (res.status >= 400) return yield* new ConcoursCliError({ message: `${method} ${target}: ${res.status} ${res.text.slice(0, 500)}` })
    return res.text
  })

const upload = Command.make(
  "upload",
  {
    file: Args.file({ name: "FILE.tgz", exists: "yes" }),
    name: Options.text("name").pipe(Options.withAlias("n"), Options.withDescription("the champion's name (at most 25 characters)")),
    comment: Options.text("comment").pipe(Options.withAlias("c"), Options.optional)
  },
  ({ file, name, comment }) =>
    Effect.gen(function* () {
      const bytes = yield* Effect.tryPromise({
        try: () => readFile(file),
        catch: (e) => new ConcoursCliError({ message: `cannot read ${file}: ${e instanceof Error ? e.message : String(e)}` })
      })
      const form = new FormData()
      form.set("name", name)
      form.set("comment", Option.getOrElse(comment, () => ""))
      form.set("sources", new Blob([bytes]), path.basename(file))
      yield* Console.log(yield* call("POST", "/champions/", form))
    })
).pipe(Command.withDescription("upload a champion (.tgz with a _lang file)"))

const launch = Command.make(
  "launch",
  {
    champions: Args.integer({ name: "CHAMPION_ID" }).pipe(Args.atLeast(1)),
    map: Options.integer("map").pipe(Options.optional)
  },
  ({ champions, map }) =>
    Effect.gen(function* () {
      const form = new URLSearchParams()
      champions.forEach((id, i) => form.set(`champion_${i + 1}`, String(id)))
      if (Option.isSome(map)) form.set("map", String(map.value))
      yield* Console.log(yield* call("POST", "/matches/", form))
    })
).pipe(Command.withDescription("launch a match between champions (and on a map)"))

const getMap = Command.make("get", { id: Args.integer({ name: "ID" }) }, ({ id }) =>
  Effect.gen(function* () {
    const text = yield* call("GET", `/maps/${id}/`)
    const map = JSON.parse(text) as { contents?: unknown }
    yield* Console.log(typeof map.contents === "string" ? map.contents.replace(/\n$/, "") : text)
  })
).pipe(Command.withDescription("print a map's contents"))

export const concoursCommand = concours.pipe(
  Command.withDescription("the concours website: champions, matches, maps (REST API, PROLO_PASSWORD)"),
  Command.withSubcommands([
    Command.make("champion").pipe(Command.withSubcommands([upload])),
    Command.make("match").pipe(Command.withSubcommands([launch])),
    Command.make("map").pipe(Command.withSubcommands([getMap]))
  ])
)
