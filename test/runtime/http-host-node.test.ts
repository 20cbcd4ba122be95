import { describe, expect, it } from "@effect/vitest"
import { Deferred, type Duration, Effect, Layer, TestClock } from "effect"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import * as path from "node:path"
import * as Actor from "../../src/runtime/actor.js"
import { nodeLayer, NodeUrls } from "../../src/runtime/http-host-node.js"
import { RootSupervisor } from "../../src/runtime/supervisor.js"
import { Boom, counter, type CounterMsg, makeProbe } from "./actor-fixtures.js"

const listen = { host: "127.0.0.1", port: 0 }

const withConfigDir = <A, E>(nodeYml: string | undefined, f: (dir: string) => Effect.Effect<A, E>) =>
  Effect.acquireUseRelease(
    Effect.promise(() => mkdtemp(path.join(tmpdir(), "prolo-node-cfg-"))),
    (dir) =>
      Effect.promise(() => (nodeYml === undefined ? Promise.resolve() : writeFile(path.join(dir, "node.yml"), nodeYml))).pipe(
        Effect.zipRight(f(dir))
      ),
    (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
  )

const start = (configDir: string) =>
  Layer.build(nodeLayer({ subsystems: [], listen, configDir })).pipe(
    Effect.map((ctx) => ctx.unsafeMap.get(NodeUrls.key) as typeof NodeUrls.Service),
    Effect.scoped
  )

describe("nodeLayer", () => {
  it.live("starts with the runtime endpoints when node.yml is absent", () =>
    withConfigDir(undefined, (dir) =>
      Effect.gen(function* () {
        const urls = yield* start(dir)
        expect(urls.base).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
        expect(urls.paths).toEqual(["/__ping", "/__actors", "/metrics"])
      })
    )
  )

  it.live("a missing configuration directory is a ConfigError naming it", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(start("/nonexistent/prolo-config"))
      expect(error).toMatchObject({
        _tag: "ConfigError",
        message: "/nonexistent/prolo-config: expected a configuration directory (set --config or PROLO_CONFIG_DIR), got no such directory"
      })
    })
  )

  it.live("a wrong-typed node.yml value is a ConfigError naming file, key and value", () =>
    withConfigDir("database: {}\nrestarts: 5\ndrainTimeoutSeconds: -1\n", (dir) =>
      Effect.gen(function* () {
        const error = yield* Effect.flip(start(dir))
        expect(error).toMatchObject({ _tag: "ConfigError", keyPath: "drainTimeoutSeconds" })
        expect((error as { message: string }).message).toBe(
          `${path.join(dir, "node.yml")}: drainTimeoutSeconds: expected a positive number of seconds, got -1`
        )
      })
    )
  )

  it.live("a subsystem that cannot be loaded fails the start with its name", () =>
    withConfigDir(undefined, (dir) =>
      Effect.gen(function* () {
        const broken = { name: "broken", load: () => Promise.reject(new Error("no such module")) }
        const error = yield* Effect.flip(
          Layer.build(nodeLayer({ subsystems: [broken], listen, configDir: dir })).pipe(Effect.scoped)
        )
        expect(error).toMatchObject({ _tag: "SubsystemLoadError", subsystem: "broken" })
      })
    )
  )

  // Issue 16 item 8: node.yml was read by two partial schemas that ignored every other key, so a
  // misspelt or wrongly typed setting started the node with its default.
  it.live("an unknown node.yml key and a quoted number are ConfigErrors, one line each", () =>
    Effect.gen(function* () {
      const typo = yield* withConfigDir("drainTimeoutSecond: 5\n", (dir) =>
        Effect.map(Effect.flip(start(dir)), (e) => [dir, (e as { message: string }).message] as const)
      )
      expect(typo[1]).toBe(
        `${path.join(typo[0], "node.yml")}: drainTimeoutSecond: expected one of the keys restarts, restartWindowSeconds, ` +
          "drainTimeoutSeconds, database, http, got an unknown key"
      )
      const quoted = yield* withConfigDir('restarts: "5"\n', (dir) =>
        Effect.map(Effect.flip(start(dir)), (e) => [dir, (e as { message: string }).message] as const)
      )
      expect(quoted[1]).toBe(`${path.join(quoted[0], "node.yml")}: restarts: expected a non-negative integer, got "5"`)
    })
  )

  // node.yml's `restarts` within `restartWindowSeconds` was read by nothing: every actor had 5 in 10 s.
  const crashTwice = (nodeYml: string | undefined, between: Duration.DurationInput) =>
    withConfigDir(nodeYml, (dir) =>
      Effect.gen(function* () {
        const spawned = yield* Deferred.make<Actor.ActorRef<CounterMsg>>()
        const subsystem = {
          name: "flaky",
          load: () =>
            Promise.resolve(
              Layer.scopedDiscard(Effect.flatMap(Actor.make("flaky", counter(makeProbe())), (ref) => Deferred.succeed(spawned, ref)))
            )
        }
        const exits: Array<string> = []
        const supervisor = RootSupervisor.layerWithExit((_code, e) => Effect.sync(() => void exits.push(e.path)))
        yield* Layer.build(nodeLayer({ subsystems: [subsystem], listen, configDir: dir, supervisor }))
        const ref = yield* Deferred.await(spawned)
        yield* ref.ask(new Boom()).pipe(Effect.flip)
        yield* TestClock.adjust(between)
        yield* ref.ask(new Boom()).pipe(Effect.flip)
        return exits
      }).pipe(Effect.scoped)
    )

  it.effect("the restart intensity of node.yml is the one every actor gets (TestClock)", () =>
    Effect.gen(function* () {
      // restarts: 1 → the second crash within 60 s escalates to the root
      expect(yield* crashTwice("restarts: 1\nrestartWindowSeconds: 60\n", "59 seconds")).toEqual(["/root/flaky"])
      // ... but not once the first one is out of the window
      expect(yield* crashTwice("restarts: 1\nrestartWindowSeconds: 60\n", "61 seconds")).toEqual([])
      // without node.yml: 5 restarts in 10 s
      expect(yield* crashTwice(undefined, "1 second")).toEqual([])
    })
  )
})
