import * as CliConfig from "@effect/cli/CliConfig"
import * as Command from "@effect/cli/Command"
import { Console, Effect, HashMap, Layer } from "effect"
import { stripVTControlCharacters } from "node:util"

// What both binaries give @effect/cli: plain help and errors where colours do not belong, and
// help that shows our descriptions rather than the library's type blurbs.

/** https://no-color.org: any non-empty NO_COLOR; and no colours into a pipe or a file. */
const plain = (stream: NodeJS.WriteStream): boolean => (process.env["NO_COLOR"] ?? "") !== "" || stream.isTTY !== true

// @effect/cli heads every option's help with its type's blurb ("A user-defined piece of text."),
// which says nothing of what the option does; our descriptions follow it. The choices' blurb
// ("One of the following: …") is kept: it lists what is accepted.
const BLURB = /\n\n {2}(?:\x1b\[[0-9;]*m)*(?:A user-defined piece of text\.|A true or false value\.|An integer\.|A floating point number\.|A file\.|A file or directory\.)(?:\x1b\[[0-9;]*m)*(?=\n)/g

const clean = (args: ReadonlyArray<unknown>, plainText: boolean) =>
  args.map((a) => (typeof a !== "string" ? a : plainText ? stripVTControlCharacters(a.replace(BLURB, "")) : a.replace(BLURB, "")))

/**
 * Runs `effect` with a Console whose log/error drop the type blurbs of @effect/cli's help, and
 * ANSI escapes when their stream wants plain text.
 */
export const withPlainConsole = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.flatMap(Effect.console, (console) => {
    const out = plain(process.stdout)
    const err = plain(process.stderr)
    const strip = (args: ReadonlyArray<unknown>, plainText: boolean) => clean(args, plainText)
    const patched: Console.Console = {
      ...console,
      log: (...args) => console.log(...strip(args, out)),
      info: (...args) => console.info(...strip(args, out)),
      error: (...args) => console.error(...strip(args, err)),
      warn: (...args) => console.warn(...strip(args, err))
    }
    return Effect.withConsole(effect, patched)
  })

/** Usage lines name each option's value (`--node URL`), not its type. */
export const cliConfig: Layer.Layer<CliConfig.CliConfig> = CliConfig.layer({ showTypes: true })

/** Command names and their subcommands, for `mistypedSubcommand` (a leaf has none). */
export interface CommandTree {
  readonly [name: string]: CommandTree
}

/** The names of `command`'s subcommands as a tree one level deep. */
export const subcommandTree = <Name extends string, R, E, A>(command: Command.Command<Name, R, E, A>): CommandTree =>
  Object.fromEntries([...HashMap.keys(Command.getSubcommands(command))].map((name) => [name, {}]))

/**
 * @effect/cli reports `prolo mdb lst` as an invalid subcommand of `prolo` (each level rewraps its
 * child's mismatch with its own name): find the deepest command the words name and what it
 * accepts instead. `valueOptions` are the options that take a value (skipped with it).
 */
export const mistypedSubcommand = (
  program: string,
  tree: CommandTree,
  words: ReadonlyArray<string>,
  valueOptions: ReadonlySet<string>
): string | undefined => {
  let level = tree
  let path = program
  for (let i = 0; i < words.length; i++) {
    const word = words[i]!
    if (word === "--") return undefined
    if (word.startsWith("-")) {
      if (valueOptions.has(word)) i++
      continue
    }
    const names = Object.keys(level)
    if (names.length === 0) return undefined // a leaf: the rest are its arguments
    const next = Object.hasOwn(level, word) ? level[word] : undefined
    if (next === undefined) {
      return `${path}: unknown command ${JSON.stringify(word)}; use one of ${names.sort().join(", ")} (${path} --help)`
    }
    level = next
    path = `${path} ${word}`
  }
  return undefined
}
