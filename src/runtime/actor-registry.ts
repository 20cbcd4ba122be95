/**
 * Keyed actor registry: one actor per key (per user, per worker host), spawned on
 * its first message and passivated after it has been idle for `idleTimeToLive`.
 *
 * Why not RcMap: RcMap counts references held by callers, so a `tell` would drop
 * its reference while the message still sits in the mailbox and the actor could be
 * passivated (interrupted) with work pending; it also keeps a failed lookup cached
 * until its idle time runs out, and `invalidate` cannot tell the entry it meant from
 * a newer one for the same key (two live actors for one key would break per-key
 * serialisation). Here an entry counts the messages it holds (queued or being
 * handled), idleness starts when that count reaches zero, an `init` failure is
 * reported to the callers waiting for it and then forgotten, and removals check the
 * entry's identity. Idle timers, spawns and escalation handling run in `FiberSet`s
 * owned by the registry's scope; idle time reads `Clock`. Infinite `idleTimeToLive`
 * means never passivate.
 *
 * Supervision: the registry is its children's `ActorSupervisor`. A child that
 * escalates is dropped (its next message spawns a fresh one) and counts as one
 * restart of the registry; more than `intensity` of those and the registry stops
 * its children, refuses new messages and escalates to its own parent.
 *
 * `maxActors` caps live actors, idle ones included until they are passivated;
 * going past it fails with `TooManyActors` rather than evicting someone's state.
 * `tell` to a key with no actor yet waits for its `init`, never for the handling.
 *
 * Usage (in a subsystem layer):
 *   const homes = yield* ActorRegistry.make({
 *     name: "hfs", behaviour: (user: string) => hfsBehaviour(user),
 *     idleTimeToLive: "10 minutes", maxActors: 500
 *   })                                                  // at /root/hfs, children /root/hfs/<user>
 *   yield* homes.ask("alice", new Attach({ ... }))      // typed per message, plus TooManyActors
 */
import { Clock, Deferred, Duration, Effect, ExecutionStrategy, Exit, FiberSet, Scope } from "effect"
import {
  makeCell,
  type ActorCell,
  type AnyMessage,
  type AskError,
  type Behaviour,
  type ErrorOf,
  type SuccessOf,
  type TellError
} from "./actor.js"
import { actorStopped, tooManyActors, type ActorStopped, type TooManyActors } from "./actor-errors.js"
import { ActorTree } from "./actor-tree.js"
import {
  ActorSupervisor,
  childPath,
  decodeIntensity,
  makeRestartWindow,
  RestartIntensity,
  type Escalation,
  type Intensity
} from "./supervisor.js"

export type RegistryKey = string | number

export interface RegistryOptions<K extends RegistryKey, S, M extends AnyMessage, EI, R> {
  readonly name: string
  readonly behaviour: (key: K) => Behaviour<S, M, EI, R>
  readonly idleTimeToLive: Duration.DurationInput
  readonly maxActors: number
  readonly intensity?: Intensity
}

export type RegistryError = TooManyActors

export interface ActorRegistry<K extends RegistryKey, M extends AnyMessage, EI = never> {
  readonly path: string
  readonly ask: <Msg extends M>(
    key: K,
    message: Msg
  ) => Effect.Effect<SuccessOf<Msg>, ErrorOf<Msg> | AskError | RegistryError | EI>
  readonly tell: (key: K, message: M) => Effect.Effect<void, TellError | RegistryError | EI>
  // Keys with a live (or spawning) actor.
  readonly live: Effect.Effect<ReadonlyArray<K>>
  // Stops that key's actor now; messages it still holds get `ActorStopped`.
  readonly passivate: (key: K) => Effect.Effect<void>
}

interface Entry<M extends AnyMessage, EI> {
  readonly cell: Deferred.Deferred<ActorCell<M>, EI | ActorStopped>
  scope: Scope.CloseableScope | undefined
  // Messages accepted for this actor and not yet answered, plus callers on their way in.
  pending: number
  idleSince: number
  // Whether an idle timer is running for this entry.
  timing: boolean
}

export const make = <K extends RegistryKey, S, M extends AnyMessage, EI, R>(
  options: RegistryOptions<K, S, M, EI, R>
): Effect.Effect<ActorRegistry<K, M, EI>, never, R | Scope.Scope | ActorTree | ActorSupervisor> =>
  Effect.gen(function* () {
    const parent = yield* ActorSupervisor
    const tree = yield* ActorTree
    const registryScope = yield* Effect.scope
    const context = yield* Effect.context<R | ActorTree>()
    const path = childPath(parent.path, options.name)
    const maxActors = options.maxActors
    if (!Number.isInteger(maxActors) || maxActors < 1) {
      return yield* Effect.dieMessage(`${path}: maxActors must be a positive integer, got ${maxActors}`)
    }
    const ttl = Duration.decodeUnknown(options.idleTimeToLive)
    if (ttl._tag === "None" || Duration.toMillis(ttl.value) <= 0) {
      return yield* Effect.dieMessage(
        `${path}: idleTimeToLive must be a positive duration, got ${String(options.idleTimeToLive)}`
      )
    }
    const idleMillis = Duration.toMillis(ttl.value)
    const intensity = yield* decodeIntensity(path, options.intensity ?? (yield* RestartIntensity))
    const window = makeRestartWindow(intensity)

    const entries = new Map<K, Entry<M, EI>>()
    // Finalizers run in reverse: on close the registry first refuses new messages, then
    // stops spawns and timers, then closes every actor (each in a child of this scope).
    const actorsScope = yield* Scope.fork(registryScope, ExecutionStrategy.sequential)
    const timers = yield* FiberSet.make()
    const background = yield* FiberSet.make()
    const startedAt = yield* Clock.currentTimeMillis
    let handled = 0
    let dropped = 0
    let stopped: "stopped" | "escalated" | undefined
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        stopped ??= "stopped"
      })
    )

    const closeEntry = (entry: Entry<M, EI>) =>
      Effect.suspend(() => (entry.scope ? Scope.close(entry.scope, Exit.void) : Effect.void))

    // Only ever removes the entry it was given, never a newer actor for the same key.
    const remove = (key: K, entry: Entry<M, EI>) =>
      Effect.suspend(() => {
        if (entries.get(key) !== entry) return Effect.void
        entries.delete(key)
        return closeEntry(entry)
      })

    const onChildEscalation = (key: K, entry: Entry<M, EI>, e: Escalation) =>
      Effect.gen(function* () {
        dropped++
        yield* Effect.logWarning(`registry ${path}: dropped ${e.path} after it escalated`)
        yield* remove(key, entry)
        const { exceeded } = yield* window.record
        if (!exceeded || stopped !== undefined) return
        stopped = "escalated"
        yield* Effect.logError(`registry ${path}: more than ${intensity.maxRestarts} children escalated, escalating`)
        yield* Effect.forEach([...entries], ([k, en]) => remove(k, en), { discard: true })
        yield* parent.escalate({ path, restarts: intensity.maxRestarts, within: intensity.within, cause: e.cause })
      })

    const spawn = (key: K, entry: Entry<M, EI>) =>
      Effect.gen(function* () {
        const scope = yield* Scope.fork(actorsScope, ExecutionStrategy.sequential)
        entry.scope = scope
        const supervisor = {
          path,
          escalate: (e: Escalation) =>
            Effect.asVoid(FiberSet.run(background, Effect.interruptible(onChildEscalation(key, entry, e))))
        }
        const exit = yield* makeCell(String(key), options.behaviour(key)).pipe(
          Scope.extend(scope),
          Effect.provideService(ActorSupervisor, supervisor),
          Effect.provide(context),
          Effect.exit
        )
        if (Exit.isFailure(exit)) {
          // Forget the failed spawn so the next message tries `init` again.
          if (entries.get(key) === entry) entries.delete(key)
          yield* Scope.close(scope, exit)
          return yield* Deferred.done(entry.cell, exit)
        }
        if (entries.get(key) !== entry) {
          // Removed while spawning (the registry is stopping): do not leave it running.
          yield* Scope.close(scope, Exit.void)
          return yield* Deferred.fail(entry.cell, actorStopped(exit.value.ref.path, stopped ?? "stopped"))
        }
        yield* Deferred.done(entry.cell, exit)
      }).pipe(
        // Interrupted only when the registry closes: the callers waiting get an answer.
        Effect.onInterrupt(() => Deferred.fail(entry.cell, actorStopped(childPath(path, String(key)), "stopped")))
      )

    // Idleness starts when the last held message is answered. One timer per entry at
    // most, re-armed by moving `idleSince` rather than by interrupting and forking (a
    // busy key would otherwise pay a fiber per message). The timer unlinks the entry
    // synchronously (no caller can pick up a dying actor), then closes its scope.
    const expireLoop = (key: K, entry: Entry<M, EI>): Effect.Effect<void> =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        if (entry.pending > 0 || entries.get(key) !== entry) {
          entry.timing = false
          return Effect.void
        }
        const remaining = entry.idleSince + idleMillis - now
        if (remaining > 0) return Effect.zipRight(Effect.sleep(remaining), expireLoop(key, entry))
        entry.timing = false
        entries.delete(key)
        return closeEntry(entry)
      })

    const release = (key: K, entry: Entry<M, EI>) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) => {
        entry.pending--
        if (entry.pending > 0 || entries.get(key) !== entry || !Number.isFinite(idleMillis)) return Effect.void
        entry.idleSince = now
        if (entry.timing) return Effect.void
        entry.timing = true
        return Effect.asVoid(FiberSet.run(timers, Effect.interruptible(expireLoop(key, entry))))
      })

    const acquire = (key: K) =>
      Effect.fiberIdWith((fiberId) =>
        Effect.suspend((): Effect.Effect<Entry<M, EI>, TooManyActors | ActorStopped> => {
          if (stopped !== undefined) return Effect.fail(actorStopped(path, stopped))
          const existing = entries.get(key)
          if (existing) {
            existing.pending++
            return Effect.succeed(existing)
          }
          if (entries.size >= maxActors) return Effect.fail(tooManyActors(path, maxActors))
          const entry: Entry<M, EI> = {
            cell: Deferred.unsafeMake(fiberId),
            scope: undefined,
            pending: 1,
            idleSince: 0,
            timing: false
          }
          entries.set(key, entry)
          return Effect.as(FiberSet.run(background, Effect.interruptible(spawn(key, entry))), entry)
        })
      )

    // The entry is held from `acquire` until the actor answers (its `done`), or
    // released here if the message never made it into the mailbox.
    const send = (key: K, message: M, reply: Deferred.Deferred<unknown, unknown> | undefined) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.flatMap(acquire(key), (entry) =>
          restore(Deferred.await(entry.cell)).pipe(
            Effect.flatMap((cell) => cell.enqueue(message, reply, release(key, entry))),
            Effect.tap(() =>
              Effect.sync(() => {
                handled++
              })
            ),
            Effect.onError(() => release(key, entry))
          )
        )
      )

    yield* tree.registerScoped(
      path,
      Effect.map(Clock.currentTimeMillis, (now) => {
        let pending = 0
        for (const entry of entries.values()) pending += entry.pending
        return {
          path,
          mailboxDepth: pending,
          handled,
          restarts: dropped,
          ageSeconds: Math.max(0, (now - startedAt) / 1000),
          kind: "registry" as const,
          children: entries.size
        }
      })
    )

    const registry: ActorRegistry<K, M, EI> = {
      path,
      ask: <Msg extends M>(key: K, message: Msg) =>
        Effect.flatMap(Deferred.make<unknown, unknown>(), (reply) =>
          Effect.zipRight(send(key, message, reply), Deferred.await(reply))
        ) as Effect.Effect<SuccessOf<Msg>, ErrorOf<Msg> | AskError | RegistryError | EI>,
      tell: (key, message) => send(key, message, undefined),
      live: Effect.sync(() => [...entries.keys()]),
      passivate: (key) =>
        Effect.suspend(() => {
          const entry = entries.get(key)
          return entry ? remove(key, entry) : Effect.void
        })
    }
    return registry
  })

