import { Schema } from "effect"

// The executor's part of the worker's configuration (the original `workernode.yml`'s `path`,
// `timeout` and `isolate` keys, here applied for real). Every limit has a default that a
// contest machine can live with; tests give small ones.

const exact = { parseOptions: { onExcessProperty: "error" } } as const
const Positive = Schema.Number.pipe(Schema.positive())
const PositiveInt = Schema.Int.pipe(Schema.positive())

/** What one sandboxed program may use. Each is applied (rlimit, cgroup or the worker's own watch). */
export const SandboxLimits = Schema.Struct({
  /** CPU seconds (RLIMIT_CPU). */
  cpu_seconds: PositiveInt,
  /** Wall-clock seconds, on the worker's Clock; then the whole process tree is killed. */
  wall_seconds: Positive,
  /** Address space (RLIMIT_AS) and, where a delegated cgroup offers it, memory.max. */
  memory_mib: PositiveInt,
  /** Processes/threads (RLIMIT_NPROC in the jail's own user namespace; cgroup pids.max). */
  processes: PositiveInt,
  /** Largest file the program may write (RLIMIT_FSIZE). */
  file_size_kib: PositiveInt,
  /** stdout+stderr kept; past it the program is killed (reason `output`). */
  output_kib: PositiveInt
}).annotations(exact)
export type SandboxLimits = typeof SandboxLimits.Type

export const defaultLimits = {
  /** The original's intended compile limits (timeout.compile, fsize 51200 KiB). */
  compile: { cpu_seconds: 60, wall_seconds: 20, memory_mib: 1024, processes: 64, file_size_kib: 51_200, output_kib: 256 },
  /** The original's stechec server (timeout.server 400 s). */
  server: { cpu_seconds: 400, wall_seconds: 400, memory_mib: 1024, processes: 32, file_size_kib: 262_144, output_kib: 1024 },
  /** The original's isolate limits for clients (350 s, 500 MB, 100 processes, fsize 256 KiB). */
  client: { cpu_seconds: 350, wall_seconds: 400, memory_mib: 500, processes: 100, file_size_kib: 256, output_kib: 256 }
} as const satisfies Record<string, SandboxLimits>

/**
 * The game: argv prefixes to which the executor appends the stechec2 contract's options
 * (server: `--rules --rep_addr --pub_addr --nb_clients --dump --replay --stats --verbose [--map]`;
 * client: `--name --rules --champion --req_addr --sub_addr --client_id --verbose [--map]`).
 * `binds` are read-only directories the jails need beyond the system (the game's files).
 */
export const GameCommands = Schema.Struct({
  server: Schema.NonEmptyArray(Schema.String),
  client: Schema.NonEmptyArray(Schema.String),
  rules: Schema.String,
  binds: Schema.optionalWith(Schema.Array(Schema.String), { default: () => [] }),
  /** stechec's own per-turn bounds (the original's hard-coded `--time 3000` / `--time 1500`). */
  server_time_ms: Schema.optionalWith(PositiveInt, { default: () => 3000 }),
  client_time_ms: Schema.optionalWith(PositiveInt, { default: () => 1500 }),
  socket_timeout_ms: Schema.optionalWith(PositiveInt, { default: () => 45_000 })
}).annotations(exact)
export type GameCommands = typeof GameCommands.Type

export const DEFAULT_WORK_DIR = "/var/lib/prolo-worker/boxes"

export const ExecutorConfig = Schema.Struct({
  /** Scratch space: one directory per task, removed after it. The default is under prolo-node@worker's
   * own state directory (etc/systemd/prolo-node@worker.service.d: 0751, `cluster` traverses it). */
  work_dir: Schema.optionalWith(Schema.NonEmptyString, { default: () => DEFAULT_WORK_DIR }),
  /** The unprivileged user the jails run as (outside their user namespace). */
  user: Schema.optionalWith(Schema.NonEmptyString, { default: () => "cluster" }),
  /** A cgroup v2 directory the worker may create children in; `auto` looks for one. */
  cgroup: Schema.optionalWith(Schema.String, { default: () => "auto" }),
  bwrap: Schema.optionalWith(Schema.NonEmptyString, { default: () => "/usr/bin/bwrap" }),
  /** The interpreter used inside the jails (system python, not a user's pyenv shim). */
  python: Schema.optionalWith(Schema.NonEmptyString, { default: () => "/usr/bin/python3" }),
  gcc: Schema.optionalWith(Schema.NonEmptyString, { default: () => "/usr/bin/gcc" }),
  /** Bounds on an uploaded archive (entries, unpacked bytes). */
  archive_max_entries: Schema.optionalWith(PositiveInt, { default: () => 1000 }),
  archive_max_bytes: Schema.optionalWith(PositiveInt, { default: () => 64 * 1024 * 1024 }),
  compile: Schema.optionalWith(SandboxLimits, { default: () => defaultLimits.compile }),
  server: Schema.optionalWith(SandboxLimits, { default: () => defaultLimits.server }),
  client: Schema.optionalWith(SandboxLimits, { default: () => defaultLimits.client }),
  game: GameCommands
}).annotations(exact)
export type ExecutorConfig = typeof ExecutorConfig.Type
export type ExecutorConfigInput = typeof ExecutorConfig.Encoded
