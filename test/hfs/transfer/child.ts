// A real process playing one side of a transfer, for the kill suite (kill.test.ts):
//   child.ts source <image>                       serves <image> on 127.0.0.1:0
//   child.ts dest <port> <login> <gen> <dir>      receives into <dir>
// Progress goes to stderr, one line per window, so that the test can SIGKILL it at a point.
import { Effect, Redacted } from "effect"
import * as path from "node:path"
import { receiveHome } from "../../../src/actors/hfs/transfer/receive.js"
import { transferServer } from "../../../src/actors/hfs/transfer/server.js"

const secret = Redacted.make(process.env.HFS_TRANSFER_SECRET ?? "")
const [mode, ...args] = process.argv.slice(2)
const say = (line: string) => process.stderr.write(`${line}\n`)

const program: Effect.Effect<void, unknown> =
  mode === "source"
    ? Effect.gen(function* () {
        const image = args[0]!
        const srv = yield* transferServer({
          host: "127.0.0.1",
          port: 0,
          secret,
          resolve: () => Effect.succeed(image),
          onWindow: (_, offset) => say(`window ${offset}`)
        })
        say(`listening ${srv.port}`)
        return yield* Effect.never
      }).pipe(Effect.scoped)
    : Effect.gen(function* () {
        const [port, login, gen, dir] = args as [string, string, string, string]
        const r = yield* receiveHome({
          host: "127.0.0.1",
          port: Number(port),
          secret,
          login,
          generation: Number(gen),
          dir,
          finalPath: path.join(dir, `${login}.nbd`),
          checkpointBytes: 1,
          onWindow: (offset) => say(`window ${offset}`)
        })
        say(`done ${JSON.stringify(r)}`)
      })

Effect.runPromise(program).then(
  () => process.exit(0),
  (e: unknown) => {
    say(`failed ${String(e)}`)
    process.exit(1)
  }
)
