import { describe, expect, it } from "@effect/vitest"
import { Clock, Effect, Fiber, Layer, TestClock } from "effect"
import type * as Prom from "prom-client"
import { HeartbeatFailed, HeartbeatRejected, HeartbeatSender, runHeartbeats } from "../../src/actors/presenced/heartbeat.js"
import { SessionSource, SessionSourceError } from "../../src/actors/presenced/sessions.js"
import { ActorTree } from "../../src/runtime/actor-tree.js"
import { Metrics } from "../../src/runtime/metrics.js"
import { supervisedLoop } from "../../src/runtime/supervised-loop.js"
import { supervisorGroup } from "../../src/runtime/supervisor.js"
import { withRoot } from "../runtime/actor-fixtures.js"

// presenced's loop on virtual time, fed by a scripted session source and a recording sender.

interface Script {
  users: ReadonlyArray<string> | "fail"
  send: "ok" | "fail" | "refuse" | "hang" | "die"
  readonly calls: Array<{ readonly at: number; readonly login: string; readonly hostname: string }>
}

const setup = () => {
  const script: Script = { users: [], send: "ok", calls: [] }
  const layer = Layer.mergeAll(
    Layer.succeed(SessionSource, {
      users: Effect.suspend(() =>
        script.users === "fail" ? Effect.fail(new SessionSourceError({ message: "loginctl and who both failed" })) : Effect.succeed(script.users)
      )
    }),
    Layer.succeed(HeartbeatSender, {
      send: (login, hostname) =>
        Effect.gen(function* () {
          script.calls.push({ at: yield* Clock.currentTimeMillis, login, hostname })
          if (script.send === "fail") return yield* new HeartbeatFailed({ login, message: "connection refused" })
          if (script.send === "refuse") return yield* new HeartbeatRejected({ login, message: `${login} is already logged somewhere else` })
          if (script.send === "hang") return yield* Effect.never
          if (script.send === "die") {
            script.send = "ok"
            return yield* Effect.dieMessage("injected heartbeat defect")
          }
        })
    }),
    Metrics.layer
  )
  return { script, layer }
}

const gauge = (name: string) =>
  Effect.flatMap(Metrics, ({ registry }) =>
    Effect.promise(async () => {
      const m = registry.getSingleMetric(name) as Prom.Metric | undefined
      return m === undefined ? undefined : (await m.get()).values[0]?.value
    })
  )

const PERIOD = 2000

describe("presenced heartbeat loop", () => {
  it.scoped("sends one heartbeat per logged-in user every period, none when nobody is logged in", () => {
    const { script, layer } = setup()
    return Effect.gen(function* () {
      script.users = ["alice", "bob"]
      const fiber = yield* Effect.fork(runHeartbeats({ period: PERIOD, hostname: "pas-r01p01" }))
      yield* TestClock.adjust(0)
      yield* TestClock.adjust(PERIOD)
      yield* TestClock.adjust(PERIOD)
      expect(script.calls.map((c) => [c.at, c.login, c.hostname])).toEqual([
        [0, "alice", "pas-r01p01"],
        [0, "bob", "pas-r01p01"],
        [2000, "alice", "pas-r01p01"],
        [2000, "bob", "pas-r01p01"],
        [4000, "alice", "pas-r01p01"],
        [4000, "bob", "pas-r01p01"]
      ])
      expect(yield* gauge("prolo_presenced_last_ok_seconds")).toBe(4)
      script.users = []
      yield* TestClock.adjust(PERIOD * 3)
      expect(script.calls.length).toBe(6)
      expect(yield* gauge("prolo_presenced_last_ok_seconds")).toBe(10)
      yield* Fiber.interrupt(fiber)
    }).pipe(Effect.provide(layer))
  })

  it.scoped("never exits: failures are retried with a growing delay capped at the period, then it recovers", () => {
    const { script, layer } = setup()
    return Effect.gen(function* () {
      script.users = ["alice"]
      script.send = "fail"
      const fiber = yield* Effect.fork(runHeartbeats({ period: PERIOD, hostname: "h", retryInitial: 250 }))
      yield* TestClock.adjust(0)
      for (let i = 0; i < 8; i++) yield* TestClock.adjust(250)
      // attempts at 0, 250, 750 (250+500), 1750 (+1000), then every 2000 (capped)
      expect(script.calls.map((c) => c.at)).toEqual([0, 250, 750, 1750])
      yield* TestClock.adjust(PERIOD * 2)
      expect(script.calls.map((c) => c.at)).toEqual([0, 250, 750, 1750, 3750, 5750])
      expect(yield* gauge("prolo_presenced_last_ok_seconds")).toBe(0)
      // the session source failing is the same story
      script.users = "fail"
      script.send = "ok"
      yield* TestClock.adjust(PERIOD * 2)
      expect(fiber.unsafePoll()).toBeNull()
      script.users = ["alice"]
      yield* TestClock.adjust(PERIOD)
      const okAt = script.calls.at(-1)!.at
      expect(yield* gauge("prolo_presenced_last_ok_seconds")).toBe(Math.floor(okAt / 1000))
      // back to the normal period, first retry delay reset
      const before = script.calls.length
      yield* TestClock.adjust(PERIOD)
      expect(script.calls.length).toBe(before + 1)
      expect(yield* gauge("prolo_presenced_round_failed_total")).toBeGreaterThan(3)
      yield* Fiber.interrupt(fiber)
    }).pipe(Effect.provide(layer))
  })

  it.scoped("a refused heartbeat is answered, logged and counted, not retried early", () => {
    const { script, layer } = setup()
    return Effect.gen(function* () {
      script.users = ["alice"]
      script.send = "refuse"
      const fiber = yield* Effect.fork(runHeartbeats({ period: PERIOD, hostname: "h" }))
      yield* TestClock.adjust(0)
      yield* TestClock.adjust(PERIOD)
      expect(script.calls.map((c) => c.at)).toEqual([0, 2000])
      expect(yield* gauge("prolo_presenced_heartbeat_refused_total")).toBe(2)
      expect(yield* gauge("prolo_presenced_last_ok_seconds")).toBe(2)
      yield* Fiber.interrupt(fiber)
    }).pipe(Effect.provide(layer))
  })

  it.scoped("a gateway that never answers: the heartbeat gives up after one period, the round is retried", () => {
    const { script, layer } = setup()
    return Effect.gen(function* () {
      script.users = ["alice"]
      script.send = "hang"
      const fiber = yield* Effect.fork(runHeartbeats({ period: PERIOD, hostname: "h", retryInitial: 250 }))
      yield* TestClock.adjust(0)
      expect(script.calls.map((c) => c.at)).toEqual([0])
      yield* TestClock.adjust(PERIOD - 1)
      expect(yield* gauge("prolo_presenced_round_failed_total")).toBe(0)
      yield* TestClock.adjust(1)
      expect(yield* gauge("prolo_presenced_round_failed_total")).toBe(1)
      // answered again: the retry 250 ms later succeeds
      script.send = "ok"
      yield* TestClock.adjust(250)
      expect(script.calls.map((c) => c.at)).toEqual([0, PERIOD + 250])
      expect(yield* gauge("prolo_presenced_last_ok_seconds")).toBe(Math.floor((PERIOD + 250) / 1000))
      yield* Fiber.interrupt(fiber)
    }).pipe(Effect.provide(layer))
  })

  it.scoped("a defect in a round restarts only the supervised heartbeat loop, which goes on at once", () => {
    const { script, layer } = setup()
    return withRoot((exits) =>
      Effect.gen(function* () {
        script.users = ["alice"]
        const group = yield* Layer.build(supervisorGroup("presenced"))
        yield* supervisedLoop("heartbeat", runHeartbeats({ period: PERIOD, hostname: "h" })).pipe(Effect.provide(group))
        yield* TestClock.adjust(0)
        script.send = "die"
        yield* TestClock.adjust(PERIOD)
        yield* TestClock.adjust(PERIOD)
        // the round at 2000 died; the restarted loop sent again at once, then kept its period
        expect(script.calls.map((c) => c.at)).toEqual([0, 2000, 2000, 4000])
        const tree = yield* Effect.flatMap(ActorTree, (t) => t.snapshot)
        expect(tree.find((i) => i.path === "/root/presenced/heartbeat")).toMatchObject({ kind: "loop", restarts: 1 })
        expect(yield* exits).toEqual([])
      })
    ).pipe(Effect.provide(layer))
  })
})
