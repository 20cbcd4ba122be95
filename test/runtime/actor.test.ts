import { describe, expect, it } from "@effect/vitest"
import { Cause, Context, Deferred, Effect, Exit, Fiber, Layer, Logger, Option, Schema, Scope, TestClock } from "effect"
import * as Actor from "../../src/runtime/actor.js"
import { ActorTree } from "../../src/runtime/actor-tree.js"
import { supervisorGroup, type ActorSupervisor } from "../../src/runtime/supervisor.js"
import {
  Add,
  Boom,
  counter,
  Get,
  History,
  Hold,
  holdActor,
  Log,
  makeProbe,
  Nap,
  Reject,
  withRoot
} from "./actor-fixtures.js"

describe("actor", () => {
  it.scoped("answers ask with the typed reply; a typed failure answers the asker and keeps the state", () =>
    withRoot(() =>
      Effect.gen(function* () {
        const ref = yield* Actor.make("counter", counter(makeProbe()))
        expect(ref.path).toBe("/root/counter")
        expect(yield* ref.ask(new Add({ n: 2 }))).toBe(2)
        const rejected = yield* ref.ask(new Reject({ reason: "no" })).pipe(Effect.flip)
        expect(rejected._tag).toBe("Rejected")
        expect(yield* ref.ask(new Get())).toBe(2)
      })
    )
  )

  it.scoped("100 concurrent asks are handled one at a time, none lost", () =>
    withRoot(() =>
      Effect.gen(function* () {
        const probe = makeProbe()
        const ref = yield* Actor.make("serial", counter(probe))
        const replies = yield* Effect.forEach(
          Array.from({ length: 100 }, (_, i) => i),
          (i) => ref.ask(new Log({ sender: i % 10, seq: Math.floor(i / 10) })),
          { concurrency: "unbounded" }
        )
        expect(probe.maxInFlight).toBe(1)
        // Each Log replies with the log length before it: 0..99 exactly once means no lost update.
        expect([...replies].sort((a, b) => a - b)).toEqual(Array.from({ length: 100 }, (_, i) => i))
      })
    )
  )

  it.scoped("keeps each sender's order among concurrent senders", () =>
    withRoot(() =>
      Effect.gen(function* () {
        const probe = makeProbe()
        const ref = yield* Actor.make("ordered", counter(probe))
        // 10 senders interleave: each tells 5 messages without waiting, then asks 5 more.
        yield* Effect.forEach(
          Array.from({ length: 10 }, (_, s) => s),
          (sender) =>
            Effect.gen(function* () {
              for (let seq = 0; seq < 5; seq++) {
                yield* ref.tell(new Log({ sender, seq }))
                yield* Effect.yieldNow()
              }
              for (let seq = 5; seq < 10; seq++) yield* ref.ask(new Log({ sender, seq }))
            }),
          { concurrency: "unbounded" }
        )
        const history = yield* ref.ask(new History())
        expect(history).toHaveLength(100)
        expect(probe.maxInFlight).toBe(1)
        const senders = new Set(history.slice(0, 20).map(([s]) => s))
        expect(senders.size).toBeGreaterThan(1) // senders really interleaved
        for (let sender = 0; sender < 10; sender++) {
          const seqs = history.filter(([s]) => s === sender).map(([, q]) => q)
          expect(seqs).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
        }
      })
    )
  )

  it.scoped("tell returns without waiting for the handler", () =>
    withRoot(() =>
      Effect.gen(function* () {
        const ref = yield* Actor.make("teller", counter(makeProbe()))
        const gate = yield* holdActor(ref)
        // The handler is parked on the gate and Nap sleeps on a TestClock never advanced:
        // tells still return at once.
        yield* ref.tell(new Nap({ millis: 60_000 }))
        yield* ref.tell(new Add({ n: 1 }))
        const info = yield* ref.info
        expect(info.mailboxDepth).toBe(2)
        expect(info.handled).toBe(0)
        yield* Deferred.succeed(gate, undefined)
        const total = yield* Effect.fork(ref.ask(new Get()))
        yield* TestClock.adjust("60 seconds")
        expect(yield* Fiber.join(total)).toBe(1)
      })
    )
  )

  it.scoped("a full mailbox fails ask and tell fast with MailboxFull, then recovers", () =>
    withRoot(() =>
      Effect.gen(function* () {
        const ref = yield* Actor.make("small", counter(makeProbe(), { mailboxCapacity: 2 }))
        const gate = yield* holdActor(ref) // the actor is busy; two more fit in the mailbox
        yield* ref.tell(new Add({ n: 1 }))
        const a = yield* Effect.fork(ref.ask(new Add({ n: 1 })))
        while ((yield* ref.info).mailboxDepth < 2) yield* Effect.yieldNow()
        expect((yield* ref.info).mailboxDepth).toBe(2)
        const tellErr = yield* ref.tell(new Add({ n: 100 })).pipe(Effect.flip)
        const askErr = yield* ref.ask(new Add({ n: 100 })).pipe(Effect.flip)
        for (const err of [tellErr, askErr]) {
          expect(err._tag).toBe("MailboxFull")
          if (err._tag === "MailboxFull") {
            expect(err.path).toBe("/root/small")
            expect(err.capacity).toBe(2)
          }
        }
        yield* Deferred.succeed(gate, undefined)
        expect(yield* Fiber.join(a)).toBe(2)
        // The refused messages changed nothing; the mailbox takes messages again.
        expect(yield* ref.ask(new Get())).toBe(2)
      })
    )
  )

  it.scoped("a defect fails only its ask, restarts from the last committed state, queued messages are answered", () =>
    withRoot((exits) =>
      Effect.gen(function* () {
        const probe = makeProbe()
        const ref = yield* Actor.make("resumer", counter(probe))
        const gate = yield* Deferred.make<void>()
        yield* ref.tell(new Add({ n: 1 }))
        yield* ref.tell(new Hold({ gate }))
        const boom = yield* Effect.fork(ref.ask(new Boom()))
        const after = yield* Effect.fork(Effect.all([ref.ask(new Add({ n: 1 })), ref.ask(new Add({ n: 1 }))]))
        yield* Deferred.succeed(gate, undefined)
        const defect = yield* Fiber.join(boom).pipe(Effect.flip)
        expect(defect._tag).toBe("ActorDefect")
        if (defect._tag === "ActorDefect") {
          expect(defect.path).toBe("/root/resumer")
          expect(defect.messageTag).toBe("Boom")
          expect(defect.defect).toContain("boom")
        }
        expect(yield* Fiber.join(after)).toEqual([2, 3])
        const info = yield* ref.info
        expect(info.restarts).toBe(1)
        expect(info.handled).toBe(5)
        expect(probe.inits).toBe(1)
        expect(yield* exits).toEqual([])
      })
    )
  )

  it.scoped("onDefect 'reinit' runs init again; a function picks the state", () =>
    withRoot(() =>
      Effect.gen(function* () {
        const probe = makeProbe()
        const fresh = yield* Actor.make("fresh", counter(probe, { onDefect: "reinit" }))
        yield* fresh.ask(new Add({ n: 5 }))
        yield* fresh.ask(new Boom()).pipe(Effect.ignore)
        expect(yield* fresh.ask(new Add({ n: 1 }))).toBe(1)
        expect(probe.inits).toBe(2)

        const custom = yield* Actor.make(
          "custom",
          counter(makeProbe(), { onDefect: (last) => Effect.succeed({ ...last, total: last.total * 10 }) })
        )
        yield* custom.ask(new Add({ n: 4 }))
        yield* custom.ask(new Boom()).pipe(Effect.ignore)
        expect(yield* custom.ask(new Get())).toBe(40)
      })
    )
  )

  it.scoped("more than 5 restarts within 10 s escalates to the root, which exits with 70", () =>
    withRoot((exits) =>
      Effect.gen(function* () {
        const ref = yield* Actor.make("flaky", counter(makeProbe()))
        for (let i = 0; i < 5; i++) {
          expect((yield* ref.ask(new Boom()).pipe(Effect.flip))._tag).toBe("ActorDefect")
          yield* TestClock.adjust("1 second")
        }
        expect(yield* exits).toEqual([])
        expect((yield* ref.info).restarts).toBe(5)
        // The sixth crash within the window: answered as a defect, then escalation.
        const gate = yield* Deferred.make<void>()
        yield* ref.tell(new Hold({ gate }))
        const sixth = yield* Effect.fork(ref.ask(new Boom()))
        const queued = yield* Effect.fork(ref.ask(new Add({ n: 1 })))
        yield* Deferred.succeed(gate, undefined)
        expect((yield* Fiber.join(sixth).pipe(Effect.flip))._tag).toBe("ActorDefect")
        const stopped = yield* Fiber.join(queued).pipe(Effect.flip)
        expect(stopped).toMatchObject({ _tag: "ActorStopped", path: "/root/flaky", reason: "escalated" })
        const recorded = yield* exits
        expect(recorded).toHaveLength(1)
        expect(recorded[0]?.code).toBe(70)
        expect(recorded[0]?.escalation.path).toBe("/root/flaky")
        expect(Cause.pretty(recorded[0]!.escalation.cause)).toContain("boom")
        expect(yield* ref.tell(new Add({ n: 1 })).pipe(Effect.flip)).toMatchObject({ _tag: "ActorStopped" })
        // The stopped actor left the tree; the root counts the escalation.
        const snapshot = yield* (yield* ActorTree).snapshot
        expect(snapshot.map((i) => i.path)).toEqual(["/root"])
        expect(snapshot[0]?.handled).toBe(1)
      })
    )
  )

  it.scoped("the root supervisor logs the escalation at error level, then calls the exit hook", () => {
    const lines: Array<string> = []
    const logger = Logger.make(({ logLevel, message }) => {
      lines.push(`${logLevel.label} ${Array.isArray(message) ? message.join(" ") : String(message)}`)
    })
    return withRoot((exits) =>
      Effect.gen(function* () {
        const ref = yield* Actor.make(
          "doomed",
          counter(makeProbe(), { intensity: { maxRestarts: 0, within: "1 second" } })
        )
        yield* ref.ask(new Boom()).pipe(Effect.flip)
        expect((yield* exits).map((e) => e.code)).toEqual([70])
        const rootLine = lines.find((l) => l.includes("root supervisor"))
        expect(rootLine).toMatch(/^ERROR root supervisor: \/root\/doomed exceeded 0 restarts within 1s; ending the process with code 70/)
      })
    ).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
  })

  it.scoped("restarts spread beyond the window never escalate", () =>
    withRoot((exits) =>
      Effect.gen(function* () {
        const ref = yield* Actor.make("spread", counter(makeProbe()))
        // 12 crashes, one every 2.5 s: never more than 4 inside any 10 s window.
        for (let i = 0; i < 12; i++) {
          yield* ref.ask(new Boom()).pipe(Effect.flip)
          yield* TestClock.adjust("2500 millis")
        }
        expect(yield* exits).toEqual([])
        expect((yield* ref.info).restarts).toBe(12)
        expect(yield* ref.ask(new Add({ n: 1 }))).toBe(1)
      })
    )
  )

  it.scoped("intensity is configurable", () =>
    withRoot((exits) =>
      Effect.gen(function* () {
        const ref = yield* Actor.make(
          "strict",
          counter(makeProbe(), { intensity: { maxRestarts: 1, within: "1 minute" } })
        )
        yield* ref.ask(new Boom()).pipe(Effect.flip)
        yield* TestClock.adjust("59 seconds")
        expect(yield* exits).toEqual([])
        yield* ref.ask(new Boom()).pipe(Effect.flip)
        expect((yield* exits).map((e) => e.escalation.path)).toEqual(["/root/strict"])
      })
    )
  )

  it.scoped("closing the actor's scope answers what it still holds with ActorStopped", () =>
    withRoot(() =>
      Effect.gen(function* () {
        const scope = yield* Scope.make()
        const ref = yield* Actor.make("short", counter(makeProbe())).pipe(Scope.extend(scope))
        const gate = yield* Deferred.make<void>()
        const entered = yield* Deferred.make<void>()
        const inFlight = yield* Effect.fork(ref.ask(new Hold({ gate, entered })))
        yield* Deferred.await(entered)
        const queued = yield* Effect.fork(ref.ask(new Get()))
        while ((yield* ref.info).mailboxDepth < 1) yield* Effect.yieldNow()
        yield* Scope.close(scope, Exit.void)
        const stopped = { _tag: "ActorStopped", path: "/root/short", reason: "stopped" }
        expect(yield* Fiber.join(inFlight).pipe(Effect.flip)).toMatchObject(stopped)
        expect(yield* Fiber.join(queued).pipe(Effect.flip)).toMatchObject(stopped)
        expect(yield* ref.tell(new Add({ n: 1 })).pipe(Effect.flip)).toMatchObject({ _tag: "ActorStopped" })
        expect((yield* (yield* ActorTree).snapshot).map((i) => i.path)).toEqual(["/root"])
      })
    )
  )

  it.scoped("ActorTree shows root and actors with depth, handled, restarts, age", () =>
    withRoot(() =>
      Effect.gen(function* () {
        const tree = yield* ActorTree
        const a = yield* Actor.make("a", counter(makeProbe()))
        const b = yield* Actor.make("b/weird name", counter(makeProbe()))
        yield* a.ask(new Add({ n: 1 }))
        yield* a.ask(new Boom()).pipe(Effect.flip)
        const gate = yield* holdActor(b)
        yield* b.tell(new Add({ n: 1 }))
        yield* b.tell(new Add({ n: 1 }))
        yield* TestClock.adjust("30 seconds")
        const snapshot = yield* tree.snapshot
        expect(snapshot).toEqual([
          { path: "/root", mailboxDepth: 0, handled: 0, restarts: 0, ageSeconds: 30, kind: "supervisor" },
          { path: "/root/a", mailboxDepth: 0, handled: 2, restarts: 1, ageSeconds: 30, kind: "actor" },
          { path: "/root/b%2Fweird%20name", mailboxDepth: 2, handled: 0, restarts: 0, ageSeconds: 30, kind: "actor" }
        ])
        yield* Deferred.succeed(gate, undefined)
      })
    )
  )

  it.scoped("bad settings and unknown messages get precise errors", () =>
    withRoot(() =>
      Effect.gen(function* () {
        const badCapacity = yield* Effect.exit(Actor.make("x", counter(makeProbe(), { mailboxCapacity: 0 })))
        expect(Exit.isFailure(badCapacity) && Cause.pretty(badCapacity.cause)).toContain(
          "/root/x: mailboxCapacity must be a positive integer, got 0"
        )
        const badIntensity = yield* Effect.exit(
          Actor.make("y", counter(makeProbe(), { intensity: { maxRestarts: -1, within: "1 second" } }))
        )
        expect(Exit.isFailure(badIntensity) && Cause.pretty(badIntensity.cause)).toContain(
          "maxRestarts must be a non-negative integer"
        )
        const badWindow = yield* Effect.exit(
          Actor.make("z", counter(makeProbe(), { intensity: { maxRestarts: 1, within: "0 millis" } }))
        )
        expect(Exit.isFailure(badWindow) && Cause.pretty(badWindow.cause)).toContain(
          "restart window must be a positive finite duration"
        )
        // A message no handler knows (only possible by lying to the compiler) is a defect, not a hang.
        const ref = yield* Actor.make("strict", counter(makeProbe()))
        const stray = Object.assign(new Get(), { _tag: "toString" }) as unknown as Get
        const err = yield* ref.ask(stray).pipe(Effect.flip)
        expect(err).toMatchObject({ _tag: "ActorDefect", messageTag: "toString" })
        if (err._tag === "ActorDefect") expect(err.defect).toContain("no handler for message toString")
        expect(Option.some(yield* ref.ask(new Get()))).toEqual(Option.some(0))
      })
    )
  )
})

class Greeting extends Context.Tag("test/Greeting")<Greeting, string>() {}
class Hello extends Schema.TaggedRequest<Hello>()("Hello", {
  failure: Schema.Never,
  success: Schema.String,
  payload: { name: Schema.String }
}) {}
const greeter = Actor.behaviour<Hello>()({
  init: Effect.succeed(0),
  receive: {
    Hello: (count, m) => Effect.map(Greeting, (g) => ({ reply: `${g} ${m.name} #${count + 1}`, state: count + 1 }))
  }
})

describe("actor requirements", () => {
  it.scoped("handlers use services from where the actor was made, checked by the compiler", () =>
    withRoot(() =>
      Effect.gen(function* () {
        // @ts-expect-error Greeting is required by the handlers and not provided
        const missing: Effect.Effect<unknown, unknown, Scope.Scope | ActorTree | ActorSupervisor> = Actor.make(
          "g",
          greeter
        )
        expect(missing).toBeDefined()
        const ref = yield* Actor.make("greeter", greeter).pipe(Effect.provideService(Greeting, "hi"))
        expect(yield* ref.ask(new Hello({ name: "alice" }))).toBe("hi alice #1")
        expect(yield* ref.ask(new Hello({ name: "bob" }))).toBe("hi bob #2")
      })
    )
  )
})

describe("supervisor groups", () => {
  it.scoped("a group nests paths, shows in the tree and passes escalations up to the root", () =>
    withRoot((exits) =>
      Effect.gen(function* () {
        const mdb = yield* Layer.build(supervisorGroup("mdb")) // lives as long as the test's scope
        const ref = yield* Actor.make(
          "sync",
          counter(makeProbe(), { intensity: { maxRestarts: 0, within: "1 second" } })
        ).pipe(Effect.provide(mdb))
        expect(ref.path).toBe("/root/mdb/sync")
        expect((yield* (yield* ActorTree).snapshot).map((i) => [i.path, i.kind])).toEqual([
          ["/root", "supervisor"],
          ["/root/mdb", "supervisor"],
          ["/root/mdb/sync", "actor"]
        ])
        yield* ref.ask(new Boom()).pipe(Effect.flip)
        expect((yield* exits).map((e) => [e.code, e.escalation.path])).toEqual([[70, "/root/mdb/sync"]])
      })
    )
  )
})
