// prolo-pam: run by pam_exec on user machines (etc/pam.d/prolo), as root, for the account and
// session stages: `prolo-pam [--config DIR]`, the stage in PAM_TYPE, the user in PAM_USER, the
// service in PAM_SERVICE. Progress and the one failure line go to stdout (pam_exec's `stdout`
// shows them on the greeter); the exit status is 0 or a PAM code (src/actors/pam/stages.ts).
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import { Console, Effect, Layer } from "effect"
import * as os from "node:os"
import { loadPamProfile } from "../src/actors/pam/config.js"
import { accountStage, closeSessionStage, EXIT, handles, lookupAccount, openSessionStage, type PamContext } from "../src/actors/pam/stages.js"
import { loadPresenceProfile } from "../src/actors/presence/config.js"
import { presenceTargetOf } from "../src/actors/presenced/client.js"
import { machineName } from "../src/actors/presenced/hostname.js"
import { loadHfsClientProfile } from "../src/actors/hfs/config.js"
import { defaultConfigDir } from "../src/runtime/cli-client-options.js"
import { ConfigDir, loadProfile } from "../src/runtime/config.js"
import { SharedSecretProfile } from "../src/runtime/profiles.js"

// pam_exec gives its program only the PAM variables: no PATH. The tools we run (losetup, mount,
// nbd-client, nbdfuse) are found in the system directories, never in a caller's PATH.
process.env.PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

const argv = process.argv.slice(2)
const at = argv.indexOf("--config")
const configDir = at >= 0 && argv[at + 1] !== undefined ? argv[at + 1]! : (process.env.PROLO_CONFIG_DIR ?? defaultConfigDir())

const stage = process.env.PAM_TYPE ?? ""
const user = process.env.PAM_USER ?? ""
const service = process.env.PAM_SERVICE ?? ""

const say = (line: string) => Console.log(line)

const program = Effect.gen(function* () {
  if (!["account", "open_session", "close_session"].includes(stage)) return EXIT.ok
  const account = yield* lookupAccount(user)
  if (!handles(service, account)) return EXIT.ok
  const ctx: PamContext = {
    profile: yield* loadPamProfile,
    presence: presenceTargetOf(yield* loadPresenceProfile, yield* loadProfile("presencesync-pub", SharedSecretProfile)),
    hfsClient: yield* loadHfsClientProfile,
    hostname: machineName(os.hostname()),
    say
  }
  const run = stage === "account" ? accountStage : stage === "open_session" ? openSessionStage : closeSessionStage
  yield* run(ctx, account)
  return EXIT.ok
}).pipe(
  Effect.catchTags({
    PamFailure: (e) => Effect.as(say(e.message), e.code),
    ConfigError: (e) => Effect.as(say(`Login impossible: configuration: ${e.message}`), EXIT.systemError)
  }),
  Effect.catchAllDefect((d) => Effect.as(say(`Login impossible: prolo-pam failed: ${d instanceof Error ? d.message : String(d)}`), EXIT.systemError)),
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
