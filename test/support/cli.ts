import { Command } from "@effect/cli"
import { NodeContext } from "@effect/platform-node"
import * as HttpServer from "@effect/platform/HttpServer"
import { Effect } from "effect"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { serverUrl } from "../../src/runtime/http-host.js"

/** A temporary config directory holding `<profile>.yml` with `shared_secret`, removed with the scope. */
export const secretConfigDir = (profile: string, secret: string) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const dir = await fs.mkdtemp(path.join(os.tmpdir(), `prolo-${profile}-`))
      await fs.writeFile(path.join(dir, `${profile}.yml`), `shared_secret: ${secret}\n`)
      return dir
    }),
    (dir) => Effect.promise(() => fs.rm(dir, { recursive: true, force: true }))
  )

/** Runs `<name> --node <the test host> --config <config> <args>` in-process; returns the exit status it set (0 when untouched). */
export const runCommand = <Name extends string, R, E, A>(
  command: Command.Command<Name, R, E, A>,
  name: string,
  config: string,
  args: ReadonlyArray<string>
) =>
  Effect.gen(function* () {
    const url = serverUrl((yield* HttpServer.HttpServer).address)
    process.exitCode = 0
    yield* Command.run(command, { name, version: "test" })(["node", "prolo", "--node", url, "--config", config, ...args]).pipe(
      Effect.provide(NodeContext.layer)
    )
    const code = process.exitCode
    process.exitCode = 0
    return code
  })
