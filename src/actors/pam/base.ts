import { Effect } from "effect"
import * as os from "node:os"
import { loadHfsClientProfile } from "../hfs/config.js"
import { loadPresenceProfile } from "../presence/config.js"
import { presenceTargetOf } from "../presenced/client.js"
import { machineName } from "../presenced/hostname.js"
import { loadProfile } from "../../runtime/config.js"
import { SharedSecretProfile } from "../../runtime/profiles.js"
import { loadPamProfile } from "./config.js"
import type { PamTargets } from "./clients.js"

/** What the stages read from the configuration directory and the machine, once. */
export interface PamSetup extends PamTargets {
  /** This machine's MDB hostname. */
  readonly hostname: string
}

export const loadPamSetup = Effect.gen(function* () {
  const setup: PamSetup = {
    profile: yield* loadPamProfile,
    presence: presenceTargetOf(yield* loadPresenceProfile, yield* loadProfile("presencesync-pub", SharedSecretProfile)),
    hfsClient: yield* loadHfsClientProfile,
    hostname: machineName(os.hostname())
  }
  return setup
})
