import * as FileSystem from "@effect/platform/FileSystem"
import { Duration, Effect, Schema } from "effect"
import { DatabaseSettings } from "../store/database-settings.js"
import { ConfigDir, type ConfigError, configError, loadProfile, profilePath } from "./config.js"
import { defaultHttpLimits, HttpLimitsProfile } from "./http-limits.js"
import type { Intensity } from "./supervisor.js"

/**
 * `<config>/node.yml`, optional: the settings of prolo-node itself. One schema for the whole
 * file, so that a key nobody reads (a typo such as `drainTimeoutSecond`) is refused.
 */
export const NodeProfile = Schema.Struct({
  /** Supervision: more than `restarts` restarts within `restartWindowSeconds` escalates (OTP intensity/period). */
  restarts: Schema.optionalWith(Schema.Int.pipe(Schema.nonNegative()).annotations({ description: "a non-negative integer" }), {
    default: () => 5
  }),
  restartWindowSeconds: Schema.optionalWith(
    Schema.Number.pipe(Schema.positive()).annotations({ description: "a positive number of seconds" }),
    { default: () => 10 }
  ),
  drainTimeoutSeconds: Schema.optionalWith(
    Schema.Number.pipe(Schema.positive()).annotations({ description: "a positive number of seconds" }),
    { default: () => 5 }
  ),
  database: Schema.optionalWith(Schema.NullOr(DatabaseSettings), { default: () => ({}) }),
  /** Request body limits and timeouts (http-limits.ts). */
  http: Schema.optionalWith(HttpLimitsProfile, { default: () => defaultHttpLimits })
})
export type NodeProfile = typeof NodeProfile.Type

/** Reads `node.yml` when present (all defaults otherwise); the configuration directory must exist. */
export const loadNodeProfile: Effect.Effect<NodeProfile, ConfigError, ConfigDir | FileSystem.FileSystem> = Effect.gen(
  function* () {
    const dir = yield* ConfigDir
    const fs = yield* FileSystem.FileSystem
    const isDir = yield* fs.stat(dir).pipe(
      Effect.map((info) => info.type === "Directory"),
      Effect.orElseSucceed(() => false)
    )
    if (!isDir) {
      return yield* configError(dir, "", "a configuration directory (set --config or PROLO_CONFIG_DIR)", "no such directory")
    }
    const present = yield* fs.exists(profilePath(dir, "node")).pipe(Effect.orElseSucceed(() => true))
    return present ? yield* loadProfile("node", NodeProfile) : NodeProfile.make({})
  }
)

/** The restart intensity every actor of the node gets unless its behaviour sets its own. */
export const intensityOf = (profile: NodeProfile): Intensity => ({
  maxRestarts: profile.restarts,
  within: Duration.seconds(profile.restartWindowSeconds)
})
