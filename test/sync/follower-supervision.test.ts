import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Layer, TestClock } from "effect"
import { type FrameInfo, makeSyncClient } from "../../src/actors/sync/client.js"
import { ActorTree } from "../../src/runtime/actor-tree.js"
import { Metrics } from "../../src/runtime/metrics.js"
import { supervisedLoop } from "../../src/runtime/supervised-loop.js"
import { supervisorGroup } from "../../src/runtime/supervisor.js"
import { withRoot } from "../runtime/actor-fixtures.js"
import { memoryTopic, PUB, restartableHub, SUB } from "./harness.js"

// A follower run as a supervised loop: a handler that dies restarts that follower only, from the
// revision it held (no second snapshot), and the handler sees the state it died on again. Past
// the intensity the follower escalates. Time is TestClock's.

const settle = Effect.repeatN(Effect.yieldNow(), 60)

interface Call {
  readonly kind: string
  readonly revision: number
  readonly logins: ReadonlyArray<string>
}

// `dieAt` sees the frame and every handler call so far, this one last.
const setup = (dieAt: (info: FrameInfo, calls: ReadonlyArray<Call>) => boolean) =>
  Effect.gen(function* () {
    const metrics = yield* Layer.build(Metrics.layer)
    const t = yield* memoryTopic("presence", 50)
    const hub = yield* restartableHub({ topics: [t], options: { bufferSize: 16, progressInterval: "10 seconds" } }, metrics)
    yield* hub.start()
    const client = makeSyncClient({ connect: hub.connector, credentials: () => ({ subscribe: SUB, publish: PUB }) })
    const calls: Array<Call> = []
    const follower = yield* client.follower("presence", (state, _metadata, info) =>
      Effect.suspend(() => {
        calls.push({ kind: info.kind, revision: info.revision, logins: [...state.keys()].sort() })
        return dieAt(info, calls) ? Effect.dieMessage(`handler bug at revision ${info.revision}`) : Effect.void
      })
    )
    const group = yield* Layer.build(supervisorGroup("udbsync-passwd"))
    yield* supervisedLoop("follow-presence", follower.run).pipe(Effect.provide(group))
    yield* settle
    const publish = (login: string) => client.publish("presence", [{ type: "update", data: { login, hostname: "h" } }])
    const entry = Effect.map(
      Effect.flatMap(ActorTree, (tree) => tree.snapshot),
      (all) => all.find((i) => i.path === "/root/udbsync-passwd/follow-presence")
    )
    return { calls, publish, entry }
  })

describe("a supervised follower", () => {
  it.scoped("a handler defect restarts it once, from its revision, and the handler sees that state again", () =>
    withRoot((exits) =>
      Effect.gen(function* () {
        const { calls, publish, entry } = yield* setup((info, calls) => info.revision === 2 && calls.length === 3)
        yield* publish("alice")
        yield* publish("bob")
        yield* settle
        yield* publish("carol")
        yield* settle
        expect(calls).toEqual([
          { kind: "snapshot", revision: 0, logins: [] },
          { kind: "batch", revision: 1, logins: ["alice"] },
          { kind: "batch", revision: 2, logins: ["alice", "bob"] }, // dies here
          { kind: "batch", revision: 2, logins: ["alice", "bob"] }, // the restarted follower's first act
          { kind: "batch", revision: 3, logins: ["alice", "bob", "carol"] } // resumed, not re-snapshotted
        ])
        expect(yield* entry).toMatchObject({ kind: "loop", restarts: 1 })
        expect(yield* exits).toEqual([])
      })
    )
  )

  it.scoped("more than 5 handler deaths within 10 s escalate to the root (exit 70); spread out they do not", () =>
    withRoot((exits) =>
      Effect.gen(function* () {
        // Dies on every call from revision 1 on: each restart re-delivers revision 1 and dies.
        const { calls, publish, entry } = yield* setup((info) => info.revision >= 1)
        yield* publish("alice")
        yield* settle
        const recorded = yield* exits
        expect(recorded.map((e) => [e.code, e.escalation.path])).toEqual([[70, "/root/udbsync-passwd/follow-presence"]])
        expect(Cause.pretty(recorded[0]!.escalation.cause)).toContain("handler bug at revision 1")
        expect(calls.filter((c) => c.revision === 1)).toHaveLength(6) // the first death and 5 restarts
        expect(yield* entry).toBeUndefined() // it left the tree
      })
    )
  )

  it.scoped("handler deaths spread beyond the restart window never escalate", () =>
    withRoot((exits) =>
      Effect.gen(function* () {
        const { calls, publish, entry } = yield* setup((info, calls) => info.kind === "batch" && calls.at(-2)?.revision !== info.revision)
        // Each new revision's first delivery dies, its re-delivery succeeds: one restart per revision.
        for (let i = 0; i < 8; i++) {
          yield* publish(`user${i}`)
          yield* settle
          yield* TestClock.adjust("2500 millis")
          yield* settle
        }
        expect(yield* exits).toEqual([])
        expect(yield* entry).toMatchObject({ restarts: 8 })
        expect(calls.at(-1)).toMatchObject({ revision: 8 })
      })
    )
  )
})
