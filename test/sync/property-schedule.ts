import { type Context, Deferred, Effect, Stream } from "effect"
import type { Metadata } from "../../src/actors/sync/apply-updates.js"
import { type FrameInfo, makeSyncClient } from "../../src/actors/sync/client.js"
import type { SyncConnector } from "../../src/actors/sync/connection.js"
import type { HubTopic } from "../../src/actors/sync/hub.js"
import { makeMemorySource } from "../../src/actors/sync/memory-source.js"
import { Metrics } from "../../src/runtime/metrics.js"
import type { Frame, SyncRecord, Update } from "../../src/protocols/sync.js"
import { PUB, restartableHub, SUB } from "./harness.js"
import type { VirtualClock } from "./virtual-clock.js"
import { mulberry32 } from "../support/random.js"

// Random schedules of publishes, client disconnects, hub restarts (history kept, or lost as for
// the in-memory presence topic), stalled handlers and clock jumps. After quiescence every
// follower's state must equal the source's, no batch may be applied twice, and a resume that
// fell beyond retention must get exactly one snapshot (and only such resumes get one).
// SYNC_SCHEDULES=N runs more, SYNC_SEED=S replays one.

const TOPIC = "p"
const settle = Effect.repeatN(Effect.yieldNow(), 8)

interface Follower {
  readonly id: number
  state: ReadonlyMap<string, SyncRecord>
  last: { epoch: string; revision: number } | undefined
  applied: Array<string>
  stall: Deferred.Deferred<void> | undefined
  kills: Set<Deferred.Deferred<void>>
  violations: Array<string>
}

export const schedule = (seed: number, metrics: Context.Context<Metrics>, vclock: VirtualClock) =>
  Effect.gen(function* () {
    const rnd = mulberry32(seed)
    const int = (lo: number, hi: number) => lo + Math.floor(rnd() * (hi - lo + 1))
    const retention = int(1, 6)
    let epochNo = 0
    const newTopic = (): Effect.Effect<HubTopic> =>
      Effect.map(
        makeMemorySource({ topic: TOPIC, keyField: "login", retention, epoch: `e${epochNo++}` }),
        (source) => ({ definition: { name: TOPIC, keyField: "login", durable: false, profile: TOPIC }, secrets: { publisher: PUB, subscriber: SUB }, source })
      )
    let topic = yield* newTopic()
    const config = () => ({ topics: [topic], options: { bufferSize: int(1, 5), pageSize: int(1, 3), progressInterval: "10 seconds" as const } })
    const hub = yield* restartableHub(config(), metrics)
    yield* hub.start()
    let up = true

    const followers: Array<Follower> = []
    const nFollowers = int(1, 3)
    for (let id = 0; id < nFollowers; id++) {
      const f: Follower = { id, state: new Map(), last: undefined, applied: [], stall: undefined, kills: new Set(), violations: [] }
      followers.push(f)
      // Each connection can be cut by the test; it also checks the snapshot rule per connection.
      const connector: SyncConnector = Effect.map(hub.connector, (conn) => ({
        ...conn,
        subscribe: (request) =>
          Stream.unwrapScoped(
            Effect.gen(function* () {
              const kill = yield* Deferred.make<void>()
              f.kills.add(kill)
              yield* Effect.addFinalizer(() => Effect.sync(() => f.kills.delete(kill)))
              const source = topic.source
              const floorBefore = yield* Effect.orDie(source.floor)
              const since = request.since
              let frames = 0
              let snapshots = 0
              return conn.subscribe(request).pipe(
                Stream.interruptWhen(Deferred.await(kill)),
                Stream.tap((frame: Frame) =>
                  Effect.gen(function* () {
                    frames++
                    if (frame._tag !== "Snapshot") {
                      if (frames === 1 && since !== undefined && since.epoch === source.epoch && since.revision < floorBefore) {
                        f.violations.push(`resume from ${since.revision} < floor ${floorBefore} started without a snapshot`)
                      }
                      return
                    }
                    snapshots++
                    const floorNow = yield* Effect.orDie(source.floor)
                    if (snapshots > 1) f.violations.push("two snapshots on one connection")
                    if (frames !== 1) f.violations.push("snapshot not first")
                    if (since !== undefined && since.epoch === frame.epoch && since.revision >= floorNow && since.revision <= frame.revision) {
                      f.violations.push(`needless snapshot: since ${since.revision} >= floor ${floorNow}`)
                    }
                  })
                )
              )
            })
          )
      }))
      const client = makeSyncClient({
        connect: connector,
        credentials: () => ({ subscribe: SUB }),
        keyFields: { [TOPIC]: "login" },
        backoff: { initial: "100 millis", max: "2 seconds", idleTimeout: "35 seconds", stalenessInterval: "1 minute" }
      })
      const handler = (state: ReadonlyMap<string, SyncRecord>, _m: Metadata, info: FrameInfo) =>
        Effect.gen(function* () {
          const prev = f.last
          if (info.kind === "batch") {
            if (prev === undefined || prev.epoch !== info.epoch || info.revision !== prev.revision + 1) {
              f.violations.push(`batch ${info.epoch}/${info.revision} applied after ${JSON.stringify(prev)}`)
            }
          } else if (prev !== undefined && prev.epoch === info.epoch && info.revision < prev.revision) {
            f.violations.push(`snapshot went back from ${prev.revision} to ${info.revision}`)
          }
          f.applied.push(`${info.kind[0]}${info.epoch}/${info.revision}`)
          f.last = { epoch: info.epoch, revision: info.revision }
          f.state = state
          if (f.stall !== undefined) yield* Deferred.await(f.stall)
        })
      yield* Effect.forkScoped(client.follow(TOPIC, handler))
    }

    const publish = Effect.suspend(() => {
      const updates: Array<Update> = Array.from({ length: int(1, 3) }, () => {
        const login = `k${int(0, 5)}`
        return rnd() < 0.25 ? { type: "delete", data: { login } } : { type: "update", data: { login, v: int(0, 3) } }
      })
      // With the hub down, writers still append to the store (as mdb/udb do in their transactions).
      const target = up
        ? Effect.flatMap(hub.current, (h) => (h._tag === "Some" ? Effect.asVoid(h.value.publish(TOPIC, updates)) : Effect.void))
        : Effect.asVoid(topic.source.append(updates))
      return Effect.orDie(target)
    })

    const steps = int(8, 24)
    const log: Array<string> = []
    for (let step = 0; step < steps; step++) {
      const r = rnd()
      if (r < 0.45) {
        log.push("pub")
        yield* publish
      } else if (r < 0.55) {
        const f = followers[int(0, followers.length - 1)]!
        log.push(`cut${f.id}`)
        for (const k of f.kills) yield* Deferred.succeed(k, undefined)
      } else if (r < 0.65) {
        const f = followers[int(0, followers.length - 1)]!
        if (f.stall === undefined) {
          log.push(`stall${f.id}`)
          f.stall = yield* Deferred.make<void>()
        } else {
          log.push(`unstall${f.id}`)
          yield* Deferred.succeed(f.stall, undefined)
          f.stall = undefined
        }
      } else if (r < 0.72) {
        if (up) {
          log.push("hub-stop")
          yield* hub.stop
          up = false
        } else {
          const lose = rnd() < 0.3
          log.push(lose ? "hub-start-fresh" : "hub-start")
          if (lose) topic = yield* newTopic()
          yield* hub.start(config())
          up = true
        }
      } else {
        const ms = int(0, 3000)
        log.push(`+${ms}ms`)
        yield* vclock.advance(ms, settle)
      }
      yield* settle
    }

    // Quiescence: nothing stalled, hub up, time passes until everyone caught up.
    for (const f of followers) {
      if (f.stall !== undefined) yield* Deferred.succeed(f.stall, undefined)
      f.stall = undefined
    }
    if (!up) yield* hub.start(config())
    const snapshot = yield* Effect.orDie(topic.source.snapshot)
    const expected = JSON.stringify(Object.fromEntries([...snapshot.records].map((r) => [String(r["login"]), r]).sort()))
    const current = (f: Follower) => JSON.stringify(Object.fromEntries([...f.state].sort()))
    const done = () =>
      followers.every((f) => f.last?.epoch === topic.source.epoch && f.last.revision === snapshot.revision && current(f) === expected)
    let waited = 0
    for (; waited < 200 && !done(); waited++) {
      yield* vclock.advance(500, settle)
    }
    if (process.env["SYNC_VERBOSE"]) console.log(`seed ${seed}: ${steps} steps, quiescence after ${waited} half-seconds`)
    const failures: Array<string> = []
    for (const f of followers) {
      const where = `follower ${f.id} (applied ${f.applied.join(" ")})`
      failures.push(...f.violations.map((v) => `${where}: ${v}`))
      if (f.last?.epoch !== topic.source.epoch || f.last.revision !== snapshot.revision) {
        failures.push(`${where}: stopped at ${JSON.stringify(f.last)}, hub at ${topic.source.epoch}/${snapshot.revision}`)
      } else if (current(f) !== expected) {
        failures.push(`${where}: state ${current(f)} != hub ${expected}`)
      }
    }
    return {
      failures: failures.map((f) => `seed ${seed} (replay: SYNC_SEED=${seed}) ops=${log.join(",")}\n  ${f}`),
      snapshots: followers.reduce((n, f) => n + f.applied.filter((a) => a.startsWith("s")).length, 0)
    }
  }).pipe(Effect.scoped)

