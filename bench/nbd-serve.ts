// Stand-in for `prolo nbd serve` while bin/prolo.ts does not exist yet: the same
// `serve` program from src/nbd/cli.ts, with `--listen HOST:PORT --export NAME=FILE[,ro]…`.
import { NodeRuntime } from "@effect/platform-node"
import { serve } from "../src/nbd/cli.js"

const argv = process.argv.slice(2)
let listen = "127.0.0.1:10809"
const exports: Array<string> = []
for (let i = 0; i < argv.length; i += 2) {
  const [flag, value] = [argv[i], argv[i + 1]]
  if (value === undefined) throw new Error(`missing value after ${flag}`)
  if (flag === "--listen") listen = value
  else if (flag === "--export") exports.push(value)
  else throw new Error(`unknown argument ${flag}`)
}
NodeRuntime.runMain(serve({ listen, exports }))
