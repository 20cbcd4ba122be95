/**
 * Supervised loops: the long-running parts of a subsystem that are not message handlers (a
 * sync topic's fan-out, a sync follower, presenced's heartbeat rounds, a change-log pruner, a
 * listener) run as named children of the current `ActorSupervisor`, with the same supervision
 * as actors and the same place in `/__actors`.
 *
 * Why this shape:
 * - The loop is an effect that runs until its scope closes. When it dies or fails, it is run
 *   again at once (OTP's restart), in a fresh scope: resources one run acquired (a
 *   subscription, a timer fiber) are released before the next run starts.
 * - State that must survive a restart lives outside `body`, in whatever built it (a follower's
 *   revision and materialised state, a topic's delivered revision and its subscribers): a run
 *   starts from the last state the previous one committed, as an actor resumes from its last
 *   committed state. Whatever lives inside `body` is fresh on each run.
 * - More than `intensity.maxRestarts` restarts within `intensity.within` (read from `Clock`)
 *   means restarting does not help: the loop stops, leaves the tree and escalates to its
 *   supervisor (at the root: the process ends with code 70), exactly as an actor does.
 * - A loop whose body returns has finished its work (a transient child): it leaves the tree
 *   and is not restarted. A loop interrupted from outside (its scope closing) just stops.
 * - The tree shows it at `<supervisor path>/<name>` as kind "loop": restarts and age like an
 *   actor, plus what `probe` reports (frames queued, items handled, live children such as a
 *   topic's subscribers).
 *
 * Usage (in a subsystem layer, under its `supervisorGroup`):
 *   const follower = yield* client.follower("udb", handler)   // holds the revision across runs
 *   yield* supervisedLoop("follow-udb", follower.run)          // /root/udbsync-passwd/follow-udb
 */
import { Cause, Clock, Effect, Exit, Scope } from "effect"
import { ActorTree, type ActorInfo } from "./actor-tree.js"
import { ActorSupervisor, childPath, decodeIntensity, makeRestartWindow, RestartIntensity, type Intensity } from "./supervisor.js"

/** What a loop reports of its own work in `/__actors`; anything left out shows as 0 (or no children). */
export interface LoopLoad {
  readonly mailboxDepth?: number
  readonly handled?: number
  readonly children?: number
}

export interface LoopOptions {
  /** Restart intensity; past it the loop escalates. Default: the actors' default. */
  readonly intensity?: Intensity
  /** Read at every `/__actors` request. */
  readonly probe?: Effect.Effect<LoopLoad>
}

export interface LoopRef {
  readonly path: string
  readonly info: Effect.Effect<ActorInfo>
}

/**
 * Starts `body` as the supervised loop `name` under the current `ActorSupervisor`, living as
 * long as the current scope. Returns once the loop is started (its first run is forked).
 */
export const supervisedLoop = <E, R>(
  name: string,
  body: Effect.Effect<unknown, E, R>,
  options: LoopOptions = {}
): Effect.Effect<LoopRef, never, Exclude<R, Scope.Scope> | Scope.Scope | ActorTree | ActorSupervisor> =>
  Effect.gen(function* () {
    const parent = yield* ActorSupervisor
    const tree = yield* ActorTree
    const scope = yield* Effect.scope
    const path = childPath(parent.path, name)
    const intensity = yield* decodeIntensity(path, options.intensity ?? (yield* RestartIntensity))
    const window = makeRestartWindow(intensity)
    const startedAt = yield* Clock.currentTimeMillis
    const probe = options.probe ?? Effect.succeed<LoopLoad>({})
    let restarts = 0

    const info: Effect.Effect<ActorInfo> = Effect.zipWith(Clock.currentTimeMillis, probe, (now, load) => ({
      path,
      mailboxDepth: load.mailboxDepth ?? 0,
      handled: load.handled ?? 0,
      restarts,
      ageSeconds: Math.max(0, (now - startedAt) / 1000),
      kind: "loop" as const,
      ...(load.children === undefined ? {} : { children: load.children })
    }))
    const leaveTree = yield* tree.registerScoped(path, info)

    // One run in a scope of its own, so a restart never inherits the previous run's resources.
    const run = Effect.scoped(body)

    const loop = Effect.gen(function* () {
      while (true) {
        const exit = yield* Effect.exit(run)
        if (Exit.isSuccess(exit)) {
          yield* Effect.logInfo(`loop ${path}: finished`)
          return yield* leaveTree
        }
        // Interruption only: the scope is closing (or the body stopped itself): not a crash.
        if (Cause.isInterruptedOnly(exit.cause)) return yield* leaveTree
        const { exceeded } = yield* window.record
        if (exceeded) {
          yield* Effect.logError(`loop ${path}: more than ${intensity.maxRestarts} restarts, escalating`, exit.cause)
          yield* leaveTree
          return yield* parent.escalate({
            path,
            restarts: intensity.maxRestarts,
            within: intensity.within,
            cause: exit.cause
          })
        }
        restarts++
        yield* Effect.logError(`loop ${path}: died, restarting (restart ${restarts})`, exit.cause)
      }
    })
    // Forked fibers inherit interruptibility; a caller inside an uninterruptible region (a
    // layer being built) must not make the loop unstoppable.
    yield* Effect.forkIn(Effect.interruptible(loop), scope)
    return { path, info }
  })
