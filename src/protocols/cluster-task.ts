import { Schema } from "effect"

// What the master hands a worker's executor and what comes back (spec/matches.md §5): one
// compilation or one match, each carrying the lease's attempt number so that the master can
// drop a late result from an old dispatch. Bytes travel as `Uint8Array` (msgpack's bin type):
// the original base64-encoded every tarball inside JSON.

const Id = Schema.Int.pipe(Schema.nonNegative())
const Bytes = Schema.Uint8ArrayFromSelf

/** Why the sandbox ended a program before it ended by itself (metric label and result field). */
export const SandboxKill = Schema.Literal(
  "cpu", // RLIMIT_CPU: SIGXCPU then SIGKILL
  "memory", // address-space rlimit or cgroup memory.max: allocation refused or OOM-killed
  "wall_clock", // the worker's own timeout on Clock: the whole process tree is killed
  "pids", // RLIMIT_NPROC or cgroup pids.max: fork refused
  "output", // stdout/stderr past the cap: killed so that a printing loop fills neither disk nor memory
  "file_size", // RLIMIT_FSIZE: SIGXFSZ
  "signal" // any other fatal signal (segfault, abort)
)
export type SandboxKill = typeof SandboxKill.Type

/** A champion archive the executor refuses before compiling anything (the contestant's fault, not retried). */
export const ArchiveProblem = Schema.Literal(
  "corrupt_archive", // not a gzip'd tar, or truncated
  "no_lang", // no `_lang` file at the top
  "unknown_language", // `_lang` names a language this worker cannot build
  "path_escape", // an absolute path, `..`, a link, a device: anything that could land outside the champion's directory
  "too_large" // more entries or bytes than the limits
)
export type ArchiveProblem = typeof ArchiveProblem.Type

export const CompileTask = Schema.Struct({
  taskId: Id,
  /** The lease's attempt: grows on every dispatch of this task. */
  attempt: Id,
  championId: Id,
  author: Schema.String,
  /** The uploaded `champion.tgz` (with its `_lang` file). */
  sources: Bytes
})
export type CompileTask = typeof CompileTask.Type

export const CompileResult = Schema.Struct({
  taskId: Id,
  attempt: Id,
  championId: Id,
  /** `ready`: `compiled` is present. `error`: the contestant's sources did not build (or were refused). */
  status: Schema.Literal("ready", "error"),
  /** `champion-compiled.tgz`. */
  compiled: Schema.optional(Bytes),
  /** `compilation.log`: the compiler's stdout+stderr, capped, plus the executor's own lines. */
  log: Schema.String,
  /** Set when the archive was refused before compiling. */
  rejected: Schema.optional(ArchiveProblem),
  /** Set when the sandbox ended the compiler. */
  kill: Schema.optional(SandboxKill),
  durationMs: Schema.Number
})
export type CompileResult = typeof CompileResult.Type

export const MatchPlayer = Schema.Struct({
  /** The match_player row (stechec's `--name`). */
  playerId: Id,
  championId: Id,
  /** That champion's `champion-compiled.tgz`. */
  compiled: Bytes
})
export type MatchPlayer = typeof MatchPlayer.Type

/**
 * Extra `--<name> <value>` options for the game server (e.g. the reference game's `turns`,
 * `seed`). Names are plain words so that they can never be read as something else; the
 * contract's own options (`--map`, `--dump`, …) are refused by the executor.
 */
export const MatchOptions = Schema.Record({
  key: Schema.String.pipe(Schema.pattern(/^[a-z][a-z0-9_]{0,31}$/)),
  value: Schema.String.pipe(Schema.maxLength(256))
})
export type MatchOptions = typeof MatchOptions.Type

export const MatchTask = Schema.Struct({
  taskId: Id,
  attempt: Id,
  matchId: Id,
  /** The map file's contents (`""`: no map, the server runs without `--map`). */
  map: Schema.String,
  /** In `--client_id` order: client 0 is `players[0]`. */
  players: Schema.Array(MatchPlayer).pipe(Schema.minItems(1)),
  options: Schema.optionalWith(MatchOptions, { default: () => ({}) })
})
export type MatchTask = typeof MatchTask.Type

export const PlayerResult = Schema.Struct({
  playerId: Id,
  championId: Id,
  score: Schema.Int,
  /** How many turns this player's client timed out (the master records `has_timeout = nbTimeout != 0`). */
  nbTimeout: Schema.Int,
  /** `log-champ-<playerId>-<championId>.log`: the client's stdout+stderr, capped. */
  log: Schema.String,
  kill: Schema.optional(SandboxKill)
})
export type PlayerResult = typeof PlayerResult.Type

export const MatchResult = Schema.Struct({
  taskId: Id,
  attempt: Id,
  matchId: Id,
  /** `done`: every player has a score. `failed`: the game ran and did not finish (not retried, as the original). */
  status: Schema.Literal("done", "failed"),
  reason: Schema.optional(Schema.String),
  /** The server's kill, when the sandbox ended it. */
  kill: Schema.optional(SandboxKill),
  /** Empty when `failed` before the server reported scores. */
  players: Schema.Array(PlayerResult),
  serverStdout: Schema.String,
  serverStderr: Schema.String,
  /** gzip'd, stored as `dump.json.gz`, `replay.gz`, `server_stats.yaml.gz`. */
  dump: Schema.optional(Bytes),
  replay: Schema.optional(Bytes),
  stats: Schema.optional(Bytes),
  durationMs: Schema.Number
})
export type MatchResult = typeof MatchResult.Type

/**
 * The executor could not do its job (no space, the sandbox would not start, the game is not
 * installed): not the champion's fault, so the master retries the task elsewhere.
 */
export class ExecutorFailure extends Schema.TaggedError<ExecutorFailure>()("ExecutorFailure", {
  taskId: Id,
  attempt: Id,
  message: Schema.String
}) {}
