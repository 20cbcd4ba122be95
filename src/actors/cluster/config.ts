import { Effect, Schema } from "effect"
import * as os from "node:os"
import * as path from "node:path"
import { ConfigDir, loadProfile } from "../../runtime/config.js"
import { HostPort } from "../../runtime/host-port.js"
import { Secret } from "../../runtime/secret.js"
import { dataPath } from "../dns/config.js"
import { ExecutorConfig } from "../worker/config.js"

// `cluster.yml`: read by the master (role web) and by every worker (role worker). The original's
// masternode.yml + workernode.yml in one file, since both sides share the secret and the
// master's address. Defaults are the original's (spec matches.md §1).

const seconds = (max: number) =>
  Schema.Number.pipe(Schema.positive(), Schema.lessThanOrEqualTo(max)).annotations({ description: `a number of seconds in (0, ${max}]` })
const count = (max: number) => Schema.Int.pipe(Schema.between(1, max)).annotations({ description: `an integer between 1 and ${max}` })

export const ClusterProfile = Schema.Struct({
  /** Time-auth secret of the workers' rpcs (join, heartbeat, results). */
  shared_secret: Secret,
  /** Master: where it listens for workers (TCP + msgpack). Port 0 picks one (logged). */
  listen: Schema.optionalWith(HostPort, { default: () => ({ host: "127.0.0.1", port: 20067 }) }),
  /** Workers: where they dial the master. Absent: the master of the same node (`--layer all`). */
  master: Schema.optional(HostPort),
  /**
   * Master: the content-addressed file store, shared with the website (web.yml's
   * `concours.files_dir` must name the same directory). Relative: to the config directory, as
   * secret files are. Default `$PROLO_DATA_DIR/concours`, else `./var/concours`.
   */
  files_dir: Schema.optional(Schema.NonEmptyString),
  heartbeat_seconds: Schema.optionalWith(seconds(60), { default: () => 5 }),
  /** Master: a worker silent this long is dropped and its tasks go elsewhere. */
  worker_timeout_seconds: Schema.optionalWith(seconds(600), { default: () => 12 }),
  compilation_timeout_seconds: Schema.optionalWith(seconds(3600), { default: () => 20 }),
  match_timeout_seconds: Schema.optionalWith(seconds(24 * 3600), { default: () => 450 }),
  /** Dispatches of one task (timeouts, lost workers) before it is `failed`. */
  max_task_tries: Schema.optionalWith(count(100), { default: () => 10 }),
  compile_cost: Schema.optionalWith(count(1000), { default: () => 1 }),
  match_cost: Schema.optionalWith(count(1000), { default: () => 5 }),
  /** Worker: the slots it offers. */
  slots: Schema.optionalWith(count(10_000), { default: () => 20 }),
  /** Worker: its name on the master (default: the host name). */
  worker_name: Schema.optional(Schema.NonEmptyString),
  /** Worker: the sandbox and the game (src/actors/worker/config.ts); required where a worker runs. */
  executor: Schema.optional(ExecutorConfig)
}).annotations({ parseOptions: { onExcessProperty: "error" } })
export type ClusterProfile = typeof ClusterProfile.Type

export const loadClusterProfile = loadProfile("cluster", ClusterProfile)

/** The master's settings, in millis and slots. */
export interface MasterSettings {
  readonly heartbeatMillis: number
  readonly workerTimeoutMillis: number
  readonly timeoutMillis: { readonly compile: number; readonly match: number }
  readonly cost: { readonly compile: number; readonly match: number }
  readonly maxTries: number
}

export const masterSettingsOf = (p: ClusterProfile): MasterSettings => ({
  heartbeatMillis: p.heartbeat_seconds * 1000,
  workerTimeoutMillis: p.worker_timeout_seconds * 1000,
  timeoutMillis: { compile: p.compilation_timeout_seconds * 1000, match: p.match_timeout_seconds * 1000 },
  cost: { compile: p.compile_cost, match: p.match_cost },
  maxTries: p.max_task_tries
})

export const filesDirOf = (p: ClusterProfile): Effect.Effect<string, never, ConfigDir> =>
  p.files_dir === undefined ? dataPath(undefined, "concours") : Effect.map(ConfigDir, (dir) => path.resolve(dir, p.files_dir!))

export const workerNameOf = (p: ClusterProfile): string => p.worker_name ?? os.hostname().split(".")[0]!
