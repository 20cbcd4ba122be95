import { Schema } from "effect"
import * as path from "node:path"
import { PAM_STATE_DIR } from "../../protocols/pam-session.js"
import { loadProfile } from "../../runtime/config.js"

// `pam.yml` on user machines: what prolo-pam needs besides the secrets it shares with presenced
// (presencesync-pub.yml, presence.yml) and the HFS clients (hfs-client.yml).

export const AttachMode = Schema.Literal("auto", "kernel", "fuse")
export type AttachMode = typeof AttachMode.Type

export const PamProfile = Schema.Struct({
  /** The gateway node serving MDB's public `query` (which HFS serves this machine). */
  mdb_url: Schema.optionalWith(Schema.NonEmptyString, { default: () => "http://mdb/" }),
  /**
   * How a home is attached: `kernel` (nbd-client, one /dev/nbdN per session), `fuse` (nbdfuse
   * and a loop device: no nbd module needed), `auto` (kernel when the nbd module is loaded or
   * loads, else fuse).
   */
  attach: Schema.optionalWith(AttachMode, { default: () => "auto" as const }),
  /** Where homes are mounted (`<home_base>/<login>`). */
  home_base: Schema.optionalWith(Schema.NonEmptyString, { default: () => "/home" }),
  /** Session files (root-only; tmpfs in production). */
  state_dir: Schema.optionalWith(Schema.NonEmptyString, { default: () => PAM_STATE_DIR }),
  /**
   * The resident login helper's socket (`prolo-node --layer login`), which `bin/prolo-pam`
   * hands the stages to. Default `<state_dir>/.helper.sock` (no login starts with a dot).
   */
  helper_socket: Schema.optional(Schema.NonEmptyString),
  /** Bound on getHome, which may move the home from another HFS first. */
  home_timeout_seconds: Schema.optionalWith(Schema.Number.pipe(Schema.between(1, 3600)), { default: () => 300 })
}).annotations({ parseOptions: { onExcessProperty: "error" } })
export type PamProfile = typeof PamProfile.Type

export const helperSocketOf = (profile: PamProfile): string => profile.helper_socket ?? path.join(profile.state_dir, ".helper.sock")

export const loadPamProfile = loadProfile("pam", PamProfile)
