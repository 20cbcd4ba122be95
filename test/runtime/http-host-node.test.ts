import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { nodeLayer, NodeUrls } from "../../src/runtime/http-host-node.js"

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

  it.live("a wrong-typed node.yml value is a ConfigError naming file, key and value; other keys are left alone", () =>
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
})
