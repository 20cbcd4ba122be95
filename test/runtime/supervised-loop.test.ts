import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, Layer, Queue, Scope, TestClock } from "effect"
import { ActorTree } from "../../src/runtime/actor-tree.js"
import { supervisedLoop } from "../../src/runtime/supervised-loop.js"
import { RestartIntensity, supervisorGroup } from "../../src/runtime/supervisor.js"
import { withRoot } from "./actor-fixtures.js"

// A loop that takes orders from a queue: "die" kills the current run, "end" returns. Every run
// counts itself and releases its scope, so a test sees restarts, kept state and fresh scopes.
const scripted = () =>
  Effect.gen(function* () {
    const orders = yield* Queue.unbounded<"die" | "end">()
    const seen = { runs: 0, released: 0, handled: 0 }
    const body = Effect.gen(function* () {
      seen.runs++
      yield* Effect.addFinalizer(() => Effect.sync(() => void seen.released++))
      while (true) {
        const order = yield* Queue.take(orders)
        seen.handled++
        if (order === "die") return yield* Effect.dieMessage("injected")
        return
      }
    })
    // Lets the forked loop take what was offered.
    const settle = Effect.repeatN(Effect.yieldNow(), 20)
    return { orders, seen, body, settle }
  })

const tree = Effect.flatMap(ActorTree, (t) => t.snapshot)

describe("supervisedLoop", () => {
  it.scoped("shows under its supervisor; a defect restarts only that loop, in a fresh scope, with the state it kept", () =>
    withRoot((exits) =>
      Effect.gen(function* () {
        const sync = yield* Layer.build(supervisorGroup("sync"))
        const a = yield* scripted()
        const b = yield* scripted()
        const ref = yield* supervisedLoop("mdb", a.body, {
          probe: Effect.sync(() => ({ mailboxDepth: 3, handled: a.seen.handled, children: 2 }))
        }).pipe(Effect.provide(sync))
        yield* supervisedLoop("udb", b.body).pipe(Effect.provide(sync))
        expect(ref.path).toBe("/root/sync/mdb")
        yield* a.settle
        expect((yield* tree).map((i) => [i.path, i.kind, i.restarts])).toEqual([
          ["/root", "supervisor", 0],
          ["/root/sync", "supervisor", 0],
          ["/root/sync/mdb", "loop", 0],
          ["/root/sync/udb", "loop", 0]
        ])

        yield* Queue.offer(a.orders, "die")
        yield* a.settle
        expect(a.seen).toEqual({ runs: 2, released: 1, handled: 1 })
        expect(b.seen.runs).toBe(1)
        const after = yield* tree
        expect(after.find((i) => i.path === "/root/sync/mdb")).toMatchObject({
          kind: "loop",
          restarts: 1,
          mailboxDepth: 3,
          handled: 1,
          children: 2
        })
        expect(after.find((i) => i.path === "/root/sync/udb")?.restarts).toBe(0)
        expect(yield* exits).toEqual([])
      })
    )
  )

  it.scoped("more than 5 restarts within 10 s escalates to the root (exit 70) and the loop leaves the tree", () =>
    withRoot((exits) =>
      Effect.gen(function* () {
        const a = yield* scripted()
        yield* supervisedLoop("flaky", a.body)
        for (let i = 0; i < 5; i++) {
          yield* Queue.offer(a.orders, "die")
          yield* a.settle
          yield* TestClock.adjust("1 second")
        }
        expect(yield* exits).toEqual([])
        expect((yield* tree).find((i) => i.path === "/root/flaky")?.restarts).toBe(5)
        yield* Queue.offer(a.orders, "die")
        yield* a.settle
        const recorded = yield* exits
        expect(recorded.map((e) => [e.code, e.escalation.path])).toEqual([[70, "/root/flaky"]])
        expect(Cause.pretty(recorded[0]!.escalation.cause)).toContain("injected")
        expect((yield* tree).map((i) => i.path)).toEqual(["/root"])
        expect(a.seen.runs).toBe(6) // not run again after escalating
      })
    )
  )

  it.scoped("restarts spread beyond the window never escalate; the intensity is a parameter", () =>
    withRoot((exits) =>
      Effect.gen(function* () {
        const spread = yield* scripted()
        yield* supervisedLoop("spread", spread.body)
        for (let i = 0; i < 12; i++) {
          yield* Queue.offer(spread.orders, "die")
          yield* spread.settle
          yield* TestClock.adjust("2500 millis")
        }
        expect(yield* exits).toEqual([])
        expect((yield* tree).find((i) => i.path === "/root/spread")?.restarts).toBe(12)

        const strict = yield* scripted()
        yield* supervisedLoop("strict", strict.body, { intensity: { maxRestarts: 1, within: "1 minute" } })
        yield* Queue.offer(strict.orders, "die")
        yield* strict.settle
        yield* TestClock.adjust("59 seconds")
        expect(yield* exits).toEqual([])
        yield* Queue.offer(strict.orders, "die")
        yield* strict.settle
        expect((yield* exits).map((e) => e.escalation.path)).toEqual(["/root/strict"])
      })
    )
  )

  it.scoped("without its own intensity a loop takes the node's (node.yml restarts / restartWindowSeconds)", () =>
    withRoot((exits) =>
      Effect.gen(function* () {
        const loop = yield* scripted()
        yield* supervisedLoop("configured", loop.body).pipe(Effect.provideService(RestartIntensity, { maxRestarts: 1, within: "1 minute" }))
        yield* Queue.offer(loop.orders, "die")
        yield* loop.settle
        yield* TestClock.adjust("59 seconds")
        expect(yield* exits).toEqual([])
        yield* Queue.offer(loop.orders, "die")
        yield* loop.settle
        expect((yield* exits).map((e) => e.escalation.path)).toEqual(["/root/configured"])
      })
    )
  )

  it.scoped("a typed failure counts as a crash, like a defect", () =>
    withRoot(() =>
      Effect.gen(function* () {
        let runs = 0
        const gate = yield* Queue.unbounded<void>()
        yield* supervisedLoop(
          "failing",
          Effect.zipRight(
            Queue.take(gate),
            Effect.suspend(() => (++runs === 1 ? Effect.fail("typed") : Effect.never))
          )
        )
        yield* Queue.offerAll(gate, [undefined, undefined])
        yield* Effect.repeatN(Effect.yieldNow(), 20)
        expect(runs).toBe(2)
        expect((yield* tree).find((i) => i.path === "/root/failing")?.restarts).toBe(1)
      })
    )
  )

  it.scoped("a body that returns has finished: it leaves the tree and is not run again", () =>
    withRoot((exits) =>
      Effect.gen(function* () {
        const a = yield* scripted()
        yield* supervisedLoop("once", a.body)
        yield* Queue.offer(a.orders, "end")
        yield* a.settle
        expect(a.seen.runs).toBe(1)
        expect((yield* tree).map((i) => i.path)).toEqual(["/root"])
        expect(yield* exits).toEqual([])
      })
    )
  )

  it.scoped("closing its scope stops the loop (its run's resources released) without escalating", () =>
    withRoot((exits) =>
      Effect.gen(function* () {
        const a = yield* scripted()
        const scope = yield* Scope.make()
        yield* supervisedLoop("scoped", a.body).pipe(Scope.extend(scope))
        yield* a.settle
        yield* Scope.close(scope, Exit.void)
        expect(a.seen).toMatchObject({ runs: 1, released: 1 })
        expect((yield* tree).map((i) => i.path)).toEqual(["/root"])
        expect(yield* exits).toEqual([])
      })
    )
  )

  it.scoped("a bad intensity is refused where it is given", () =>
    withRoot(() =>
      Effect.gen(function* () {
        const exit = yield* Effect.exit(supervisedLoop("bad", Effect.never, { intensity: { maxRestarts: 1, within: "0 millis" } }))
        expect(Exit.isFailure(exit) && Cause.pretty(exit.cause)).toContain("/root/bad: restart window must be a positive finite duration")
      })
    )
  )
})
