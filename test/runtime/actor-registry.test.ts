import { describe, expect, it } from "@effect/vitest"
import { Cause, Deferred, Duration, Effect, Exit, Fiber, Schema, TestClock } from "effect"
import * as Actor from "../../src/runtime/actor.js"
import * as ActorRegistry from "../../src/runtime/actor-registry.js"
import { ActorTree } from "../../src/runtime/actor-tree.js"
import { Add, Boom, counter, Get, Hold, Log, makeProbe, Nap, withRoot, type Probe } from "./actor-fixtures.js"

const hfs = (
  probe: Probe,
  options: { readonly idleTimeToLive?: Duration.DurationInput; readonly maxActors?: number } = {}
) =>
  ActorRegistry.make({
    name: "hfs",
    behaviour: () => counter(probe),
    idleTimeToLive: options.idleTimeToLive ?? "1 minute",
    maxActors: options.maxActors ?? 10
  })

const paths = Effect.flatMap(ActorTree, (tree) => tree.snapshot).pipe(Effect.map((s) => s.map((i) => i.path)))

describe("actor registry", () => {
  it.scoped("serialises per key under 100 concurrent asks and runs keys in parallel", () =>
    withRoot(() =>
      Effect.gen(function* () {
        const probe = makeProbe()
        const registry = yield* hfs(probe)
        const replies = yield* Effect.forEach(
          Array.from({ length: 100 }, (_, i) => i),
          (i) => registry.ask("alice", new Log({ sender: i, seq: 0 })),
          { concurrency: "unbounded" }
        )
        expect(probe.maxInFlight).toBe(1)
        expect([...replies].sort((a, b) => a - b)).toEqual(Array.from({ length: 100 }, (_, i) => i))
        expect(probe.inits).toBe(1)

        // While alice is held inside a handler, bob is answered and alice's next message waits.
        const gate = yield* Deferred.make<void>()
        const entered = yield* Deferred.make<void>()
        const held = yield* Effect.fork(registry.ask("alice", new Hold({ gate, entered })))
        yield* Deferred.await(entered)
        const next = yield* Effect.fork(registry.ask("alice", new Add({ n: 1 })))
        expect(yield* registry.ask("bob", new Add({ n: 5 }))).toBe(5)
        for (let i = 0; i < 20; i++) yield* Effect.yieldNow()
        expect(next.unsafePoll()).toBeNull()
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(held)
        expect(yield* Fiber.join(next)).toBe(1)
        expect(probe.inits).toBe(2)
      })
    )
  )

  it.scoped("passivates an actor idle for idleTimeToLive, and a new message spawns a fresh one", () =>
    withRoot(() =>
      Effect.gen(function* () {
        const probe = makeProbe()
        const registry = yield* hfs(probe, { idleTimeToLive: "30 seconds" })
        expect(yield* registry.ask("alice", new Add({ n: 5 }))).toBe(5)
        yield* TestClock.adjust("20 seconds")
        expect(yield* registry.ask("alice", new Add({ n: 1 }))).toBe(6) // resets the idle time
        yield* TestClock.adjust("29 seconds")
        expect(yield* registry.live).toEqual(["alice"])
        expect(yield* paths).toContain("/root/hfs/alice")
        yield* TestClock.adjust("1 second")
        expect(yield* registry.live).toEqual([])
        expect(yield* paths).toEqual(["/root", "/root/hfs"])
        expect(yield* registry.ask("alice", new Get())).toBe(0)
        expect(probe.inits).toBe(2)
      })
    )
  )

  it.scoped("never passivates an actor that still holds messages", () =>
    withRoot(() =>
      Effect.gen(function* () {
        const registry = yield* hfs(makeProbe(), { idleTimeToLive: "10 seconds" })
        // A told message that takes longer than the idle time to handle.
        yield* registry.tell("alice", new Nap({ millis: 25_000 }))
        yield* registry.tell("alice", new Add({ n: 1 }))
        yield* TestClock.adjust("20 seconds")
        expect(yield* registry.live).toEqual(["alice"])
        yield* TestClock.adjust("5 seconds") // Nap and Add done; idle from now
        expect(yield* registry.live).toEqual(["alice"])
        yield* TestClock.adjust("9 seconds")
        expect(yield* registry.ask("alice", new Get())).toBe(1)
        yield* TestClock.adjust("10 seconds")
        expect(yield* registry.live).toEqual([])
      })
    )
  )

  it.scoped("caps live actors with TooManyActors, until one is passivated", () =>
    withRoot(() =>
      Effect.gen(function* () {
        const registry = yield* hfs(makeProbe(), { maxActors: 2, idleTimeToLive: "1 minute" })
        yield* registry.ask("alice", new Add({ n: 1 }))
        yield* TestClock.adjust("30 seconds")
        yield* registry.ask("bob", new Add({ n: 1 }))
        const refused = yield* registry.ask("carol", new Add({ n: 1 })).pipe(Effect.flip)
        expect(refused).toMatchObject({ _tag: "TooManyActors", path: "/root/hfs", cap: 2 })
        expect(yield* registry.tell("carol", new Add({ n: 1 })).pipe(Effect.flip)).toMatchObject({
          _tag: "TooManyActors"
        })
        // Refusing carol changed nothing for the others.
        expect([...(yield* registry.live)].sort()).toEqual(["alice", "bob"])
        yield* TestClock.adjust("30 seconds") // alice (last used at 0 s) is passivated; bob stays until 90 s
        expect(yield* registry.live).toEqual(["bob"])
        expect(yield* registry.ask("carol", new Add({ n: 1 }))).toBe(1)
      })
    )
  )

  it.scoped("a full mailbox of one key fails fast without touching the others", () =>
    withRoot(() =>
      Effect.gen(function* () {
        const registry = yield* ActorRegistry.make({
          name: "small",
          behaviour: () => counter(makeProbe(), { mailboxCapacity: 1 }),
          idleTimeToLive: "1 minute",
          maxActors: 5
        })
        const gate = yield* Deferred.make<void>()
        const entered = yield* Deferred.make<void>()
        yield* registry.tell("alice", new Hold({ gate, entered }))
        yield* Deferred.await(entered)
        yield* registry.tell("alice", new Add({ n: 1 }))
        const full = yield* registry.tell("alice", new Add({ n: 1 })).pipe(Effect.flip)
        expect(full).toMatchObject({ _tag: "MailboxFull", path: "/root/small/alice", capacity: 1 })
        expect(yield* registry.ask("bob", new Add({ n: 3 }))).toBe(3)
        yield* Deferred.succeed(gate, undefined)
        // Fail-fast means the caller waits for room itself: here, until alice drained her mailbox.
        const depth = Effect.flatMap(ActorTree, (t) => t.snapshot).pipe(
          Effect.map((s) => s.find((i) => i.path === "/root/small/alice")?.mailboxDepth ?? 0)
        )
        for (let i = 0; i < 100 && (yield* depth) > 0; i++) yield* Effect.yieldNow()
        expect(yield* registry.ask("alice", new Get())).toBe(1)
      })
    )
  )

  it.scoped("a failed init reaches the caller and is retried on the next message", () =>
    withRoot(() =>
      Effect.gen(function* () {
        class Unavailable extends Schema.TaggedError<Unavailable>()("Unavailable", { key: Schema.String }) {}
        let attempts = 0
        const registry = yield* ActorRegistry.make({
          name: "db",
          behaviour: (key: string) => ({
            ...counter(makeProbe()),
            init: Effect.suspend(() =>
              ++attempts === 1 ? Effect.fail(new Unavailable({ key })) : Effect.succeed({ total: 7, log: [] })
            )
          }),
          idleTimeToLive: "1 minute",
          maxActors: 5
        })
        const err = yield* registry.ask("alice", new Get()).pipe(Effect.flip)
        expect(err).toMatchObject({ _tag: "Unavailable", key: "alice" })
        expect(yield* registry.live).toEqual([])
        expect(yield* registry.ask("alice", new Get())).toBe(7)
      })
    )
  )

  it.scoped("a child that escalates is dropped and respawned; too many escalate the registry to the root", () =>
    withRoot((exits) =>
      Effect.gen(function* () {
        const probe = makeProbe()
        const registry = yield* ActorRegistry.make({
          name: "hfs",
          behaviour: () => counter(probe, { intensity: { maxRestarts: 0, within: "10 seconds" } }),
          idleTimeToLive: "1 minute",
          maxActors: 5,
          intensity: { maxRestarts: 1, within: "1 minute" }
        })
        yield* registry.ask("alice", new Add({ n: 1 }))
        expect(yield* registry.ask("alice", new Boom()).pipe(Effect.flip)).toMatchObject({ _tag: "ActorDefect" })
        // alice escalated: the registry drops her (in the background), the next message
        // gets a fresh actor.
        for (let i = 0; i < 100 && (yield* registry.live).includes("alice"); i++) yield* Effect.yieldNow()
        expect(yield* registry.ask("alice", new Get())).toBe(0)
        expect(yield* exits).toEqual([])
        const info = (yield* (yield* ActorTree).snapshot).find((i) => i.path === "/root/hfs")
        expect(info).toMatchObject({ kind: "registry", restarts: 1, children: 1 })

        yield* registry.ask("bob", new Boom()).pipe(Effect.flip)
        for (let i = 0; i < 100 && (yield* exits).length === 0; i++) yield* Effect.yieldNow()
        const recorded = yield* exits
        expect(recorded.map((e) => [e.code, e.escalation.path])).toEqual([[70, "/root/hfs"]])
        expect(yield* registry.ask("carol", new Get()).pipe(Effect.flip)).toMatchObject({
          _tag: "ActorStopped",
          path: "/root/hfs",
          reason: "escalated"
        })
        expect(yield* paths).toEqual(["/root", "/root/hfs"])
      })
    )
  )

  it.scoped("shows itself and its children in ActorTree; keys become safe path segments", () =>
    withRoot(() =>
      Effect.gen(function* () {
        const registry = yield* hfs(makeProbe())
        yield* registry.ask("alice", new Add({ n: 1 }))
        yield* registry.ask("../bob", new Add({ n: 1 }))
        yield* registry.ask("", new Add({ n: 1 }))
        yield* TestClock.adjust("10 seconds")
        const snapshot = yield* (yield* ActorTree).snapshot
        expect(snapshot.map((i) => i.path)).toEqual([
          "/root",
          "/root/hfs",
          "/root/hfs/%22%22",
          "/root/hfs/..%2Fbob",
          "/root/hfs/alice"
        ])
        expect(snapshot.find((i) => i.path === "/root/hfs")).toEqual({
          path: "/root/hfs",
          mailboxDepth: 0,
          handled: 3,
          restarts: 0,
          ageSeconds: 10,
          kind: "registry",
          children: 3
        })
        expect(snapshot.find((i) => i.path === "/root/hfs/alice")).toMatchObject({ handled: 1, ageSeconds: 10 })
      })
    )
  )

  it.scoped("explicit passivation answers held messages with ActorStopped", () =>
    withRoot(() =>
      Effect.gen(function* () {
        const registry = yield* hfs(makeProbe())
        const gate = yield* Deferred.make<void>()
        const entered = yield* Deferred.make<void>()
        const held = yield* Effect.fork(registry.ask("alice", new Hold({ gate, entered })))
        yield* Deferred.await(entered)
        yield* registry.passivate("alice")
        expect(yield* Fiber.join(held).pipe(Effect.flip)).toMatchObject({
          _tag: "ActorStopped",
          path: "/root/hfs/alice"
        })
        expect(yield* registry.live).toEqual([])
        expect(yield* registry.ask("alice", new Get())).toBe(0)
      })
    )
  )

  it.scoped("bad settings get precise errors", () =>
    withRoot(() =>
      Effect.gen(function* () {
        const cap = yield* Effect.exit(hfs(makeProbe(), { maxActors: 0 }))
        expect(Exit.isFailure(cap) && Cause.pretty(cap.cause)).toContain("/root/hfs: maxActors must be a positive integer, got 0")
        const ttl = yield* Effect.exit(hfs(makeProbe(), { idleTimeToLive: "0 seconds" }))
        expect(Exit.isFailure(ttl) && Cause.pretty(ttl.cause)).toContain("idleTimeToLive must be a positive duration")
      })
    )
  )
})

// Keeps the type-level contract honest: replies and errors are typed per message.
export const typed = Effect.gen(function* () {
  const registry = yield* hfs(makeProbe())
  const n: number = yield* registry.ask("alice", new Get())
  const ref = yield* Actor.make("typed", counter(makeProbe()))
  const m: number = yield* ref.ask(new Add({ n }))
  return m
})
