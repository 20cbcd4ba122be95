// Messages, behaviours and the root-supervisor wiring shared by the actor tests.
import { Deferred, Effect, Layer, Ref, Request, Schema } from "effect"
import * as Actor from "../../src/runtime/actor.js"
import { ActorTree } from "../../src/runtime/actor-tree.js"
import { RootSupervisor, type Escalation } from "../../src/runtime/supervisor.js"

export class Rejected extends Schema.TaggedError<Rejected>()("Rejected", { reason: Schema.String }) {}

// Schema.TaggedRequest messages: serialisable, reply and error in the type.
export class Add extends Schema.TaggedRequest<Add>()("Add", {
  failure: Schema.Never,
  success: Schema.Number,
  payload: { n: Schema.Number }
}) {}
export class Get extends Schema.TaggedRequest<Get>()("Get", {
  failure: Schema.Never,
  success: Schema.Number,
  payload: {}
}) {}
export class Reject extends Schema.TaggedRequest<Reject>()("Reject", {
  failure: Rejected,
  success: Schema.Number,
  payload: { reason: Schema.String }
}) {}
export class Boom extends Schema.TaggedRequest<Boom>()("Boom", {
  failure: Schema.Never,
  success: Schema.Void,
  payload: {}
}) {}
export class Nap extends Schema.TaggedRequest<Nap>()("Nap", {
  failure: Schema.Never,
  success: Schema.Number,
  payload: { millis: Schema.Number }
}) {}
export class Log extends Schema.TaggedRequest<Log>()("Log", {
  failure: Schema.Never,
  success: Schema.Number,
  payload: { sender: Schema.Number, seq: Schema.Number }
}) {}
export class History extends Schema.TaggedRequest<History>()("History", {
  failure: Schema.Never,
  success: Schema.Array(Schema.Tuple(Schema.Number, Schema.Number)),
  payload: {}
}) {}

// A Request.TaggedClass message, for what cannot be serialised (a gate to hold the actor).
// `entered` is completed when the handler starts, so a test knows the actor is busy.
export class Hold extends Request.TaggedClass("Hold")<
  void,
  never,
  { readonly gate: Deferred.Deferred<void>; readonly entered?: Deferred.Deferred<void> }
> {}

// Holds `ref` inside a Hold handler until the returned gate is opened.
export const holdActor = (ref: { readonly tell: (m: Hold) => Effect.Effect<void, unknown> }) =>
  Effect.gen(function* () {
    const gate = yield* Deferred.make<void>()
    const entered = yield* Deferred.make<void>()
    yield* ref.tell(new Hold({ gate, entered }))
    yield* Deferred.await(entered)
    return gate
  })

export type CounterMsg = Add | Get | Reject | Boom | Nap | Log | History | Hold

export interface CounterState {
  readonly total: number
  readonly log: ReadonlyArray<readonly [number, number]>
}

// Counts in-flight handlers across every actor made with it, to catch interleaving.
export const makeProbe = () => {
  const probe = { inFlight: 0, maxInFlight: 0, inits: 0 }
  return probe
}
export type Probe = ReturnType<typeof makeProbe>

export const counter = (
  probe: Probe,
  options: Partial<Pick<Actor.Behaviour<CounterState, CounterMsg>, "onDefect" | "mailboxCapacity" | "intensity">> = {}
) =>
  Actor.behaviour<CounterMsg>()({
    ...options,
    init: Effect.sync((): CounterState => {
      probe.inits++
      return { total: 0, log: [] }
    }),
    receive: {
      Add: (s, m) => Effect.succeed({ reply: s.total + m.n, state: { ...s, total: s.total + m.n } }),
      Get: (s) => Effect.succeed({ reply: s.total }),
      Reject: (_s, m) => Effect.fail(new Rejected({ reason: m.reason })),
      Boom: () => Effect.die(new Error("boom")),
      Nap: (s, m) => Effect.as(Effect.sleep(m.millis), { reply: s.total }),
      Hold: (_s, m) =>
        Effect.as(Effect.zipRight(m.entered ? Deferred.succeed(m.entered, undefined) : Effect.void, Deferred.await(m.gate)), {}),
      History: (s) => Effect.succeed({ reply: s.log }),
      // Yields several times mid-handler: if two messages could run at once they would interleave here.
      Log: (s, m) =>
        Effect.gen(function* () {
          probe.inFlight++
          probe.maxInFlight = Math.max(probe.maxInFlight, probe.inFlight)
          for (let i = 0; i < 3; i++) yield* Effect.yieldNow()
          probe.inFlight--
          return { reply: s.log.length, state: { ...s, log: [...s.log, [m.sender, m.seq] as const] } }
        })
    }
  })

// ActorTree plus a root supervisor whose exit hook records instead of exiting.
export const withRoot = <A, E, R>(
  body: (exits: Ref.Ref<ReadonlyArray<{ readonly code: number; readonly escalation: Escalation }>>) => Effect.Effect<A, E, R>
) =>
  Effect.gen(function* () {
    const exits = yield* Ref.make<ReadonlyArray<{ readonly code: number; readonly escalation: Escalation }>>([])
    const root = RootSupervisor.layerWithExit((code, escalation) =>
      Ref.update(exits, (xs) => [...xs, { code, escalation }])
    ).pipe(Layer.provideMerge(ActorTree.layer))
    return yield* Effect.provide(body(exits), root)
  })
