/**
 * Actors: one fiber owns a piece of state and handles one message at a time.
 *
 * Why this shape:
 * - Messages are Effect `Request`s (`Schema.TaggedRequest`, `Request.TaggedClass` or
 *   `Request.tagged`), so each message type carries its reply and error types and
 *   `ask(msg)` is typed per message with no casts at call sites. A TaggedRequest is
 *   also serialisable, so the same type can later travel over rpc unchanged.
 * - Handlers are a record keyed by `_tag`: the compiler checks every message has
 *   one, and each handler sees its own message type. A handler returns
 *   `{ reply, state? }`; leaving `state` out keeps it. A typed failure answers the
 *   asker and keeps the state, because a domain error is not a reason to forget.
 * - State is committed only when a handler succeeds, so a defect can never leave a
 *   half-updated state behind. On a defect the failing `ask` gets `ActorDefect`
 *   (typed, so an HTTP handler can turn it into a 500 instead of dying itself), the
 *   actor restarts and the messages queued behind it are kept and answered.
 *   `onDefect` decides the state to restart from: "resume" (default, the last
 *   committed state: the design's rule), "reinit" (run `init` again) or a function
 *   of the last state and the cause (e.g. reload from the database).
 * - More than `intensity.maxRestarts` restarts within `intensity.within` (default 5
 *   in 10 s, measured with `Clock`) means restarting does not help: the actor stops,
 *   answers whatever it still holds with `ActorStopped`, and escalates to the
 *   `ActorSupervisor` it was made under. At the root that ends the process (code 70).
 * - The mailbox is bounded and offers fail fast with `MailboxFull`: a caller that
 *   blocks on a wedged actor would hide the problem, an error names it.
 *   `tell` only enqueues; a typed failure of a told message is logged, since nobody
 *   waits for it.
 * - The actor lives in the `Scope` it was made in; closing the scope stops it and
 *   answers pending messages with `ActorStopped`. `init` runs in that same scope, so
 *   resources it acquires live as long as the actor (across restarts).
 * - Every actor appears in `ActorTree` (`/__actors`) at `<parent path>/<name>`.
 *
 * Usage:
 *   class Get extends Schema.TaggedRequest<Get>()("Get", { failure: NotFound, success: Schema.Number, payload: { key: Schema.String } }) {}
 *   const counter = Actor.behaviour<Get | Put>()({
 *     init: Effect.succeed(new Map<string, number>()),
 *     receive: {
 *       Get: (s, m) => s.has(m.key) ? Effect.succeed({ reply: s.get(m.key)! }) : Effect.fail(new NotFound({ key: m.key })),
 *       Put: (s, m) => Effect.succeed({ state: new Map(s).set(m.key, m.value) })
 *     }
 *   })
 *   const ref = yield* Actor.make("counter", counter)   // needs ActorTree, ActorSupervisor, Scope
 *   const n = yield* ref.ask(new Get({ key: "a" }))      // Effect<number, NotFound | AskError>
 */
import { Cause, Clock, Deferred, Effect, Exit, Mailbox, Option, Request, Scope } from "effect"
import { actorDefect, actorStopped, mailboxFull } from "./actor-errors.js"
import type { ActorDefect, ActorStopped, MailboxFull } from "./actor-errors.js"
import { ActorTree, type ActorInfo } from "./actor-tree.js"
import {
  ActorSupervisor,
  childPath,
  decodeIntensity,
  makeRestartWindow,
  RestartIntensity,
  type Intensity
} from "./supervisor.js"

export type AnyMessage = Request.Request<unknown, unknown> & { readonly _tag: string }

// The reply and error types a message carries.
export type SuccessOf<Msg extends AnyMessage> = Request.Request.Success<Msg>
export type ErrorOf<Msg extends AnyMessage> = Request.Request.Error<Msg>

type Tagged<M extends AnyMessage, T> = Extract<M, { readonly _tag: T }>

// What a handler returns. `reply` may be left out when the message replies void.
export type Reply<Msg extends AnyMessage, S> = [SuccessOf<Msg>] extends [void]
  ? { readonly reply?: SuccessOf<Msg>; readonly state?: S }
  : { readonly reply: SuccessOf<Msg>; readonly state?: S }

export type Handlers<S, M extends AnyMessage, R> = {
  readonly [T in M["_tag"]]: (
    state: S,
    message: Tagged<M, T>
  ) => Effect.Effect<Reply<Tagged<M, T>, S>, ErrorOf<Tagged<M, T>>, R>
}

export type OnDefect<S, R> =
  | "resume"
  | "reinit"
  | ((lastCommitted: S, cause: Cause.Cause<unknown>) => Effect.Effect<S, unknown, R>)

export interface Behaviour<S, M extends AnyMessage, EI = never, R = never> {
  readonly init: Effect.Effect<S, EI, R | Scope.Scope>
  readonly receive: Handlers<S, M, R>
  readonly onDefect?: OnDefect<S, R>
  readonly mailboxCapacity?: number
  readonly intensity?: Intensity
}

export type TellError = MailboxFull | ActorStopped
export type AskError = TellError | ActorDefect

export interface ActorRef<M extends AnyMessage> {
  readonly path: string
  readonly ask: <Msg extends M>(
    message: Msg
  ) => Effect.Effect<SuccessOf<Msg>, ErrorOf<Msg> | AskError>
  readonly tell: (message: M) => Effect.Effect<void, TellError>
  readonly info: Effect.Effect<ActorInfo>
}

export const defaultMailboxCapacity = 1024

// Fixes the message type and lets the compiler infer state, init error and requirements.
export const behaviour =
  <M extends AnyMessage>() =>
  <S, EI = never, R = never>(b: Behaviour<S, M, EI, R>): Behaviour<S, M, EI, R> =>
    b

interface Envelope {
  readonly message: AnyMessage
  readonly reply: Deferred.Deferred<unknown, unknown> | undefined
  // Runs once the message is answered (or refused at stop); the registry counts
  // in-flight work with it so an actor is never passivated with messages pending.
  readonly done: Effect.Effect<void>
}

// The actor plus the low-level enqueue the keyed registry needs. Prefer `make`.
export interface ActorCell<M extends AnyMessage> {
  readonly ref: ActorRef<M>
  readonly enqueue: (
    message: M,
    reply: Deferred.Deferred<unknown, unknown> | undefined,
    done: Effect.Effect<void>
  ) => Effect.Effect<void, TellError>
}

type Restore = <A, E, R2>(e: Effect.Effect<A, E, R2>) => Effect.Effect<A, E, R2>
type Outcome<S> = { readonly reply?: unknown; readonly state?: S }
type AnyHandler<S, R> = (state: S, message: AnyMessage) => Effect.Effect<Outcome<S>, unknown, R>

export const makeCell = <S, M extends AnyMessage, EI, R>(
  name: string,
  b: Behaviour<S, M, EI, R>
): Effect.Effect<ActorCell<M>, EI, R | Scope.Scope | ActorTree | ActorSupervisor> =>
  Effect.gen(function* () {
    const parent = yield* ActorSupervisor
    const tree = yield* ActorTree
    const scope = yield* Effect.scope
    const path = childPath(parent.path, name)
    const capacity = b.mailboxCapacity ?? defaultMailboxCapacity
    if (!Number.isInteger(capacity) || capacity < 1) {
      return yield* Effect.dieMessage(`${path}: mailboxCapacity must be a positive integer, got ${capacity}`)
    }
    const intensity = yield* decodeIntensity(path, b.intensity ?? (yield* RestartIntensity))
    const window = makeRestartWindow(intensity)
    const handlers = b.receive as unknown as Readonly<Record<string, AnyHandler<S, R>>>
    const init = Effect.provideService(b.init, Scope.Scope, scope)
    const onDefect = b.onDefect ?? "resume"
    const recover = (last: S, cause: Cause.Cause<unknown>): Effect.Effect<S, unknown, R> =>
      onDefect === "resume" ? Effect.succeed(last) : onDefect === "reinit" ? init : onDefect(last, cause)

    const mailbox = yield* Mailbox.make<Envelope>(capacity)
    const startedAt = yield* Clock.currentTimeMillis
    let state: S = yield* init
    let handled = 0
    let restarts = 0
    let stopped: "stopped" | "escalated" | undefined
    let leaveTree: Effect.Effect<void> = Effect.void

    const refuse = (env: Envelope) =>
      env.reply ? Deferred.fail(env.reply, actorStopped(path, stopped ?? "stopped")) : Effect.void
    const answerStopped = (env: Envelope) => Effect.zipRight(refuse(env), env.done)

    // Refuses new messages, answers every queued one, leaves the tree; safe to run twice.
    const stop = (reason: "stopped" | "escalated") =>
      Effect.suspend(() => {
        stopped ??= reason
        return leaveTree.pipe(
          Effect.zipRight(mailbox.end),
          Effect.zipRight(mailbox.clear),
          Effect.flatMap((queued) => Effect.forEach(queued, answerStopped, { discard: true }))
        )
      })

    const invoke = (message: AnyMessage): Effect.Effect<Outcome<S>, unknown, R> =>
      Effect.suspend(() =>
        Object.hasOwn(handlers, message._tag) && typeof handlers[message._tag] === "function"
          ? handlers[message._tag]!(state, message)
          : Effect.dieMessage(`${path}: no handler for message ${String(message._tag)}`)
      )

    // Restarts from the state `onDefect` gives; a recover that fails is one more
    // crash. Returns false when the intensity is exceeded and the actor escalated.
    const restart = (cause: Cause.Cause<unknown>, restore: Restore) =>
      Effect.gen(function* () {
        let last = cause
        while (true) {
          const { exceeded } = yield* window.record
          if (exceeded) {
            yield* Effect.logError(`actor ${path}: more than ${intensity.maxRestarts} restarts, escalating`)
            yield* stop("escalated")
            yield* parent.escalate({ path, restarts: intensity.maxRestarts, within: intensity.within, cause: last })
            return false
          }
          restarts++
          const next = yield* Effect.exit(restore(recover(state, last)))
          if (Exit.isSuccess(next)) {
            state = next.value
            return true
          }
          yield* Effect.logError(`actor ${path}: restart failed`, next.cause)
          last = next.cause
        }
      })

    const settle = (
      env: Envelope,
      exit: Exit.Exit<Outcome<S>, unknown>,
      restore: Restore
    ): Effect.Effect<boolean, never, R> =>
      Effect.suspend((): Effect.Effect<boolean, never, R> => {
        handled++
        if (Exit.isSuccess(exit)) {
          if ("state" in exit.value) state = exit.value.state as S
          return env.reply ? Effect.as(Deferred.succeed(env.reply, exit.value.reply), true) : Effect.succeed(true)
        }
        const cause = exit.cause
        const failure = Cause.failureOption(cause)
        // A domain failure is any typed failure without a defect; interruption-only
        // (the handler interrupted itself) or a die is a defect.
        if (Option.isSome(failure) && !Cause.isDie(cause)) {
          return env.reply
            ? Effect.as(Deferred.fail(env.reply, failure.value), true)
            : Effect.as(Effect.logWarning(`actor ${path}: told ${env.message._tag} failed`, cause), true)
        }
        const defect = actorDefect(path, env.message._tag, Cause.pretty(cause))
        return Effect.logError(`actor ${path}: defect handling ${env.message._tag}, restarting`, cause).pipe(
          Effect.zipRight(env.reply ? Deferred.fail(env.reply, defect) : Effect.void),
          Effect.zipRight(restart(cause, restore))
        )
      })

    const handle = (env: Envelope) =>
      Effect.uninterruptibleMask((restore) =>
        restore(Effect.exit(invoke(env.message))).pipe(
          Effect.onInterrupt(() => refuse(env)),
          Effect.flatMap((exit) => settle(env, exit, restore)),
          Effect.ensuring(env.done)
        )
      )

    const loop = Effect.gen(function* () {
      while (true) {
        const env = yield* mailbox.take
        if (!(yield* handle(env))) return
      }
    }).pipe(Effect.catchTag("NoSuchElementException", () => Effect.void))

    yield* Effect.addFinalizer(() => stop("stopped"))
    // Forked fibers inherit interruptibility; a caller inside an uninterruptible region
    // must not make the actor unstoppable.
    yield* Effect.forkIn(Effect.interruptible(loop), scope)

    const info: Effect.Effect<ActorInfo> = Effect.map(Clock.currentTimeMillis, (now) => ({
      path,
      mailboxDepth: Option.getOrElse(mailbox.unsafeSize(), () => 0),
      handled,
      restarts,
      ageSeconds: Math.max(0, (now - startedAt) / 1000),
      kind: "actor" as const
    }))
    leaveTree = yield* tree.registerScoped(path, info)

    const enqueue = (
      message: M,
      reply: Deferred.Deferred<unknown, unknown> | undefined,
      done: Effect.Effect<void>
    ): Effect.Effect<void, TellError> =>
      Effect.suspend(() => {
        if (stopped !== undefined) return Effect.fail(actorStopped(path, stopped))
        if (mailbox.unsafeOffer({ message, reply, done })) return Effect.void
        return Effect.fail(stopped === undefined ? mailboxFull(path, capacity) : actorStopped(path, stopped))
      })

    const ref: ActorRef<M> = {
      path,
      info,
      tell: (message) => enqueue(message, undefined, Effect.void),
      ask: <Msg extends M>(message: Msg) =>
        Effect.flatMap(Deferred.make<unknown, unknown>(), (reply) =>
          Effect.zipRight(enqueue(message, reply, Effect.void), Deferred.await(reply))
        ) as Effect.Effect<SuccessOf<Msg>, ErrorOf<Msg> | AskError>
    }
    return { ref, enqueue }
  })

// Starts an actor named `name` under the current `ActorSupervisor`, living as long as
// the current scope. Fails with the behaviour's init error if `init` fails.
export const make = <S, M extends AnyMessage, EI, R>(
  name: string,
  b: Behaviour<S, M, EI, R>
): Effect.Effect<ActorRef<M>, EI, R | Scope.Scope | ActorTree | ActorSupervisor> =>
  Effect.map(makeCell(name, b), (cell) => cell.ref)
