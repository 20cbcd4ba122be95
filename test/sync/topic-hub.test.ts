import { describe, expect, it } from "@effect/vitest"
import { Chunk, Effect, Fiber, Option, Queue, Stream, TestClock } from "effect"
import { makeMemorySource } from "../../src/actors/sync/memory-source.js"
import { makeTopicHub, type StartKind, type TopicHubOptions } from "../../src/actors/sync/topic-hub.js"
import type { Frame, Update } from "../../src/protocols/sync.js"
import { ActorTree } from "../../src/runtime/actor-tree.js"
import { testSupervision } from "../support/supervision.js"
import { withRoot } from "../runtime/actor-fixtures.js"

const opts: TopicHubOptions = { bufferSize: 8, progressInterval: "10 seconds", pageSize: 3, pollInterval: "5 seconds" }
const up = (login: string, v: number): ReadonlyArray<Update> => [{ type: "update", data: { login, v } }]

const setup = (retention = 100, options = opts) =>
  Effect.gen(function* () {
    const source = yield* makeMemorySource({ topic: "t", keyField: "login", retention, epoch: "e1" })
    const hub = yield* makeTopicHub(source, options).pipe(Effect.provide(testSupervision))
    return { source, hub }
  })

const tag = (f: Frame) => (f._tag === "Snapshot" ? `S${f.revision}:${f.records.length}` : `${f._tag[0]}${f.revision}`)
const tags = (frames: Chunk.Chunk<Frame>) => Chunk.toReadonlyArray(frames).map(tag)
const settle = Effect.repeatN(Effect.yieldNow(), 20)

describe("topic hub", () => {
  it.scoped("a defect in the fan-out restarts only that topic's loop; attached subscribers get every batch after it", () =>
    withRoot((exits) =>
      Effect.gen(function* () {
        const source = yield* makeMemorySource({ topic: "t", keyField: "login", retention: 100, epoch: "e1" })
        let armed = false
        const faulty = {
          ...source,
          readSince: (after: number, limit: number) =>
            Effect.suspend(() => {
              if (!armed) return source.readSince(after, limit)
              armed = false
              return Effect.dieMessage("injected pump defect")
            })
        }
        const hub = yield* makeTopicHub(faulty, opts)
        yield* makeTopicHub(yield* makeMemorySource({ topic: "other", keyField: "login", retention: 10, epoch: "e2" }), opts)
        const frames = yield* Queue.unbounded<string>()
        yield* Effect.forkScoped(Stream.runForEach(hub.subscribe(Option.none()), (f) => Queue.offer(frames, tag(f))))
        expect([yield* Queue.take(frames), yield* Queue.take(frames)]).toEqual(["S0:0", "P0"])
        armed = true
        yield* hub.publish(up("a", 1)) // stored; the pump dies reading it, its restart delivers it
        expect(yield* Queue.take(frames)).toBe("B1")
        yield* hub.publish(up("b", 1))
        expect(yield* Queue.take(frames)).toBe("B2")
        const tree = yield* Effect.flatMap(ActorTree, (t) => t.snapshot)
        expect(tree.map((i) => [i.path, i.kind, i.restarts, i.children])).toEqual([
          ["/root", "supervisor", 0, undefined],
          ["/root/other", "loop", 0, 0],
          ["/root/t", "loop", 1, 1]
        ])
        expect(yield* exits).toEqual([])
      })
    )
  )

  it.scoped("a new subscriber gets one snapshot, a progress mark, then live batches in order", () =>
    Effect.gen(function* () {
      const { hub } = yield* setup()
      yield* hub.publish(up("a", 1))
      yield* hub.publish(up("b", 1))
      yield* settle
      const frames = yield* Queue.unbounded<string>()
      yield* Effect.forkScoped(Stream.runForEach(hub.subscribe(Option.none()), (f) => Queue.offer(frames, tag(f))))
      // Publish only once it is live (its snapshot fixes what it holds).
      expect([yield* Queue.take(frames), yield* Queue.take(frames)]).toEqual(["S2:2", "P2"])
      yield* hub.publish(up("a", 2))
      yield* hub.publish(up("c", 1))
      expect([yield* Queue.take(frames), yield* Queue.take(frames)]).toEqual(["B3", "B4"])
    })
  )

  it.scoped("a resume within retention gets only the missed batches (paged), no snapshot", () =>
    Effect.gen(function* () {
      const { hub } = yield* setup()
      for (let i = 1; i <= 7; i++) yield* hub.publish(up(`u${i}`, i))
      yield* settle
      const kinds: Array<StartKind> = []
      const frames = yield* Stream.runCollect(
        Stream.take(hub.subscribe(Option.some({ epoch: "e1", revision: 2 }), (k) => kinds.push(k)), 6)
      )
      expect(tags(frames)).toEqual(["B3", "B4", "B5", "B6", "B7", "P7"])
      expect(kinds).toEqual(["resume"])
    })
  )

  it.scoped("a resume beyond retention, from another epoch or from the future gets exactly one snapshot", () =>
    Effect.gen(function* () {
      const { hub, source } = yield* setup(3)
      for (let i = 1; i <= 7; i++) yield* hub.publish(up(`u${i % 4}`, i))
      yield* settle
      expect(yield* source.floor).toBe(4)
      const start = (revision: number, epoch = "e1") =>
        Effect.gen(function* () {
          const kinds: Array<StartKind> = []
          const frames = yield* Stream.runCollect(Stream.take(hub.subscribe(Option.some({ epoch, revision }), (k) => kinds.push(k)), 2))
          return [kinds[0], ...tags(frames)]
        })
      expect(yield* start(3)).toEqual(["snapshot-retention", "S7:4", "P7"])
      expect(yield* start(4)).toEqual(["resume", "B5", "B6"])
      expect(yield* start(5, "other")).toEqual(["snapshot-epoch", "S7:4", "P7"])
      expect(yield* start(9)).toEqual(["snapshot-ahead", "S7:4", "P7"])
    })
  )

  it.scoped("a subscriber that stops reading is detached as lagging; the others get everything", () =>
    Effect.gen(function* () {
      const { hub } = yield* setup()
      const stalled = yield* Stream.toPull(hub.subscribe(Option.none()))
      expect(tags(yield* stalled)).toEqual(["S0:0"])
      const readerFrames = yield* Queue.unbounded<Frame>()
      const reader = yield* Effect.fork(
        Stream.runCollect(Stream.take(Stream.tap(hub.subscribe(Option.none()), (f) => Queue.offer(readerFrames, f)), 23))
      )
      expect(tag(yield* Queue.take(readerFrames))).toBe("S0:0") // registered
      for (let i = 1; i <= 20; i++) {
        yield* hub.publish(up("a", i))
        yield* settle
      }
      // Only the reader is still attached.
      expect((yield* hub.subscribers).length).toBe(1)
      yield* hub.publish(up("a", 21))
      const read = tags(yield* Fiber.join(reader))
      expect(read.slice(0, 2)).toEqual(["S0:0", "P0"])
      expect(read.slice(2)).toEqual(Array.from({ length: 21 }, (_, i) => `B${i + 1}`))
      // The stalled one still gets what was buffered, then the lagging failure.
      const rest: Array<string> = []
      let failure: unknown
      while (failure === undefined) {
        const pulled = yield* Effect.either(stalled)
        if (pulled._tag === "Right") rest.push(...tags(pulled.right))
        else failure = pulled.left
      }
      // The progress mark, then exactly one buffer's worth of batches.
      expect(rest).toEqual(["P0", ...Array.from({ length: opts.bufferSize }, (_, i) => `B${i + 1}`)])
      expect(failure).toMatchObject({ _tag: "Some", value: { _tag: "SyncLagging", topic: "t" } })
    })
  )

  it.scoped("idle subscribers get a progress frame every interval", () =>
    Effect.gen(function* () {
      const { hub } = yield* setup()
      yield* hub.publish(up("a", 1))
      yield* settle
      const seen: Array<string> = []
      yield* Effect.fork(Stream.runForEach(hub.subscribe(Option.none()), (f) => Effect.sync(() => seen.push(tag(f)))))
      yield* settle
      expect(seen).toEqual(["S1:1", "P1"])
      yield* TestClock.adjust("9 seconds")
      yield* settle
      expect(seen.length).toBe(2)
      yield* TestClock.adjust("1 second")
      yield* settle
      expect(seen).toEqual(["S1:1", "P1", "P1"])
      yield* hub.publish(up("a", 2))
      yield* settle
      yield* TestClock.adjust("10 seconds")
      yield* settle
      expect(seen).toEqual(["S1:1", "P1", "P1", "B2", "P2"])
    })
  )
})
