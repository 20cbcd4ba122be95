// prolo-pam: run by pam_exec on user machines (etc/pam.d/prolo), as root, for the account and
// session stages: `prolo-pam [--config DIR]`, the stage in PAM_TYPE, the user in PAM_USER, the
// service in PAM_SERVICE. Progress and the one failure line go to stdout (pam_exec's `stdout`
// shows them on the greeter); the exit status is 0 or a PAM code (src/actors/pam/stages.ts).
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { Console, Effect, Layer } from "effect"
import { loadPamSetup } from "../src/actors/pam/base.js"
import { perCallClients } from "../src/actors/pam/clients.js"
import { PAM_STAGES, runPamStage } from "../src/actors/pam/run-stage.js"
import { EXIT } from "../src/actors/pam/stages.js"
import { defaultConfigDir } from "../src/runtime/cli-client-options.js"
import { ConfigDir } from "../src/runtime/config.js"

// pam_exec gives its program only the PAM variables: no PATH. The tools we run (losetup, mount,
// nbd-client, nbdfuse) are found in the system directories, never in a caller's PATH.
process.env.PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

const argv = process.argv.slice(2)
const at = argv.indexOf("--config")
const configDir = at >= 0 && argv[at + 1] !== undefined ? argv[at + 1]! : (process.env.PROLO_CONFIG_DIR ?? defaultConfigDir())

const request = {
  stage: process.env.PAM_TYPE ?? "",
  user: process.env.PAM_USER ?? "",
  service: process.env.PAM_SERVICE ?? "",
  rhost: process.env.PAM_RHOST ?? ""
}

const say = (line: string) => Console.log(line)

const program = Effect.gen(function* () {
  // No configuration is read for a stage prolo-pam does not handle.
  if (!(PAM_STAGES as ReadonlyArray<string>).includes(request.stage)) return EXIT.ok
  const setup = yield* loadPamSetup
  return yield* runPamStage({ ...setup, clients: perCallClients(setup) }, request, say)
}).pipe(
  Effect.catchTag("ConfigError", (e) => Effect.as(say(`Login impossible: configuration: ${e.message}`), EXIT.systemError)),
  Effect.provide(Layer.merge(NodeFileSystem.layer, ConfigDir.layer(configDir)))
)

process.umask(0o077)
Effect.runPromise(program).then(
  (code) => process.exit(code),
  (e) => {
    console.log(`Login impossible: prolo-pam failed: ${e instanceof Error ? e.message : String(e)}`)
    process.exit(EXIT.systemError)
  }
)
