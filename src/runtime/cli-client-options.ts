import * as Options from "@effect/cli/Options"
import { Config } from "effect"
import { existsSync } from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

// The options every `prolo` subcommand shares, with the same defaults everywhere.

// The checkout (or installed package) this code runs from: the nearest ancestor holding
// package.json. Searched, not a fixed "../..", because the same code also runs bundled from dist/.
const packageRoot = (from: string): string => {
  let dir = from
  while (!existsSync(path.join(dir, "package.json")) && path.dirname(dir) !== dir) dir = path.dirname(dir)
  return dir
}
const checkoutRoot = packageRoot(path.dirname(fileURLToPath(import.meta.url)))

/**
 * Run from a checkout, the example configuration next to the code (what `npm start` uses), so
 * `prolo` talks to a dev node as is; installed (under node_modules or /usr), `/etc/prologin`.
 */
export const defaultConfigDir = (): string => {
  const example = path.join(checkoutRoot, "etc/prologin")
  const installed = checkoutRoot.split(path.sep).includes("node_modules")
  return !installed && existsSync(example) ? example : "/etc/prologin"
}

export const DEFAULT_NODE = "http://127.0.0.1:20000"

export const nodeOption = Options.text("node").pipe(
  Options.withPseudoName("URL"),
  Options.withDescription(`the node to talk to (env PROLO_NODE, default ${DEFAULT_NODE})`),
  Options.withFallbackConfig(Config.string("PROLO_NODE")),
  Options.withDefault(DEFAULT_NODE)
)

export const configOption = Options.text("config").pipe(
  Options.withPseudoName("DIR"),
  Options.withDescription("configuration directory holding the secrets' profiles (env PROLO_CONFIG_DIR)"),
  Options.withFallbackConfig(Config.string("PROLO_CONFIG_DIR")),
  Options.withDefault(defaultConfigDir())
)

/**
 * `prolo --node URL mdb …`: the subcommands (mdb, udb, hfs) have their own `--node` and
 * `--config`, which @effect/cli does not fill from the top level, so a value given before the
 * subcommand would be silently dropped. It reaches them through their environment fallback
 * instead (a value given after the subcommand still wins). Returns the variables to set.
 */
export const topLevelClientEnv = (argv: ReadonlyArray<string>): Record<string, string> => {
  const names: Record<string, string> = { "--node": "PROLO_NODE", "--config": "PROLO_CONFIG_DIR" }
  const env: Record<string, string> = {}
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (!arg.startsWith("-")) break // the subcommand's name: what follows is its own
    const eq = arg.indexOf("=")
    const name = eq === -1 ? arg : arg.slice(0, eq)
    const variable = names[name]
    if (variable === undefined) continue
    const value = eq === -1 ? argv[++i] : arg.slice(eq + 1)
    if (value !== undefined) env[variable] = value
  }
  return env
}
