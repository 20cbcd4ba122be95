import * as FileSystem from "@effect/platform/FileSystem"
import * as HttpServer from "@effect/platform/HttpServer"
import type { HttpRouter } from "@effect/platform/HttpLayerRouter"
import type { Path } from "@effect/platform/Path"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import { Context, Duration, Effect, Layer, Schema } from "effect"
import { ActorTree } from "./actor-tree.js"
import { ConfigDir } from "./config.js"
import { Health } from "./health.js"
import { httpHostLayer, type ListenAddress, runtimeRoutes, serverUrl } from "./http-host.js"
import { Metrics } from "./metrics.js"
import { intensityOf, loadNodeProfile } from "./node-profile.js"
import { type ActorSupervisor, RestartIntensity, RootSupervisor } from "./supervisor.js"

// A node: the HTTP host, the runtime services every subsystem shares, and the subsystems of
// its roles (the role map is src/roles.ts).

/** Command-line settings of prolo-node that subsystems read: `--hfs 0,1` (the HFS ids this node runs). */
export class NodeFlags extends Context.Tag("prolo/NodeFlags")<NodeFlags, { readonly hfs: ReadonlyArray<number> }>() {
  static readonly defaults = { hfs: [0] } as const
}

/** What every node gives its subsystems; a subsystem provides anything else it needs itself. */
export type NodeServices = HttpRouter | ActorTree | Metrics | ActorSupervisor | ConfigDir | FileSystem.FileSystem | Path | NodeFlags

export interface Subsystem {
  readonly name: string
  /** A lazy import, so that `--help` and the roles that do not run it never load it. */
  readonly load: () => Promise<Layer.Layer<never, unknown, NodeServices>>
  /** Paths worth printing at start-up, e.g. a web UI's `/`. */
  readonly urls?: ReadonlyArray<string>
}

export class SubsystemLoadError extends Schema.TaggedError<SubsystemLoadError>()("SubsystemLoadError", {
  subsystem: Schema.String,
  message: Schema.String
}) {}

export interface NodeOptions {
  readonly subsystems: ReadonlyArray<Subsystem>
  readonly listen: ListenAddress
  readonly configDir: string
  /** The root of the actor tree; the default ends the process with code 70 on escalation. */
  readonly supervisor?: Layer.Layer<ActorSupervisor, never, ActorTree>
  /** Default `NodeFlags.defaults`. */
  readonly flags?: NodeFlags["Type"]
}

/** Where a started node answers, for the first log lines. */
export class NodeUrls extends Context.Tag("prolo/NodeUrls")<NodeUrls, { readonly base: string; readonly paths: ReadonlyArray<string> }>() {}

export const nodeLayer = (options: NodeOptions): Layer.Layer<NodeUrls, unknown> =>
  Layer.unwrapEffect(
    Effect.gen(function* () {
      const profile = yield* loadNodeProfile
      const layers = yield* Effect.forEach(options.subsystems, (sub) =>
        Effect.tryPromise({
          try: sub.load,
          catch: (e) => new SubsystemLoadError({ subsystem: sub.name, message: `cannot load subsystem ${sub.name}: ${String(e)}` })
        })
      )
      const subsystems = Layer.mergeAll(runtimeRoutes, ...layers).pipe(
        Layer.provide(Layer.succeed(RestartIntensity, intensityOf(profile)))
      )
      const host = httpHostLayer(subsystems, {
        listen: options.listen,
        drainTimeout: Duration.seconds(profile.drainTimeoutSeconds),
        limits: profile.http
      })
      const paths = ["/__ping", "/__actors", "/metrics", ...options.subsystems.flatMap((s) => s.urls ?? [])]
      return Layer.effect(
        NodeUrls,
        Effect.map(HttpServer.HttpServer, (server) => ({ base: serverUrl(server.address), paths }))
      ).pipe(Layer.provide(host))
    })
  ).pipe(
    Layer.provide(options.supervisor ?? RootSupervisor.layer),
    Layer.provide(Health.layer),
    Layer.provide(Layer.succeed(NodeFlags, options.flags ?? NodeFlags.defaults)),
    Layer.provide(ActorTree.layer),
    Layer.provide(Metrics.layer),
    Layer.provide(ConfigDir.layer(options.configDir)),
    Layer.provide(NodeFileSystem.layer),
    Layer.provide(NodePath.layer)
  )
