import { Effect, Layer, Redacted, Schema } from "effect"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { HfsServerProfile } from "../../../src/actors/hfs/config.js"
import { HfsDirectory, type HfsMachine, type HfsUser } from "../../../src/actors/hfs/directory.js"
import { Locations } from "../../../src/actors/hfs/locations.js"
import { Hfs, type HfsOptions } from "../../../src/actors/hfs/service.js"
import { ActorTree } from "../../../src/runtime/actor-tree.js"
import { Metrics } from "../../../src/runtime/metrics.js"
import { RootSupervisor } from "../../../src/runtime/supervisor.js"
import { PgTest } from "../../support/pg.js"
import { makeSkeleton, tempDir } from "./images.js"

// An HFS service in process: HFS 0 on 127.0.0.1 (ports picked by the kernel), a real
// database, fixed MDB/UDB facts, homes in a temporary directory.

export const machines: ReadonlyArray<HfsMachine> = [
  { hostname: "rhfs0", ip: "127.0.0.1", hfs: 0, aliases: ["rfs0", "hfs0"] },
  { hostname: "rhfs1", ip: "127.0.0.5", hfs: 1, aliases: ["rfs1", "hfs1"] },
  { hostname: "rhfs10", ip: "127.0.0.6", hfs: 10, aliases: ["hfs10"] },
  // the client machine of the tests: nbdinfo, nbdfuse connect from 127.0.0.1
  { hostname: "pasteur-r01p01", ip: "127.0.0.1", hfs: 0, aliases: [] },
  { hostname: "pasteur-r01p02", ip: "127.0.0.2", hfs: 0, aliases: [] },
  { hostname: "alt-r01p01", ip: "127.0.0.3", hfs: 1, aliases: [] }
]

export const users: ReadonlyArray<HfsUser> = [
  { login: "alice", uid: 10001, group: "user" },
  { login: "bob", uid: 11001, group: "orga" },
  ...Array.from({ length: 100 }, (_, i): HfsUser => ({ login: `user${i}`, uid: 10100 + i, group: "user" }))
]

export const hfsWork = Effect.acquireRelease(
  Effect.promise(async () => {
    const root = await tempDir("hfs-svc-")
    const skeleton = await makeSkeleton(root)
    return { root, skeleton, exportBase: path.join(root, "export") }
  }),
  ({ root }) => Effect.promise(() => fs.rm(root, { recursive: true, force: true }))
)

export const profileOf = (over: Record<string, unknown>) =>
  Schema.decodeUnknownSync(HfsServerProfile)({ bind: { "0": "127.0.0.1" }, nbd_port: 0, rpc_port: 0, transfer_port: 0, free_reserve: 0, quota: { user: "256M", orga: "512M" }, ...over })

export const runtimeServices = RootSupervisor.layerWithExit(() => Effect.void).pipe(
  Layer.provideMerge(Layer.mergeAll(ActorTree.layer, Metrics.layer))
)

/** The HFS secret of the tests (hfs-client.yml's). */
export const hfsSecret = Redacted.make("hfs-test-secret")

export const hfsLayer = (options: {
  readonly exportBase: string
  readonly skeleton: string
  readonly ids?: ReadonlyArray<number>
  readonly profile?: Record<string, unknown>
  readonly transferRoute?: HfsOptions["transferRoute"]
  readonly machines?: ReadonlyArray<HfsMachine>
}) =>
  Hfs.layer({
    ids: options.ids ?? [0],
    profile: profileOf({ export_base: options.exportBase, skeleton: options.skeleton, ...options.profile }),
    secret: hfsSecret,
    ...(options.transferRoute === undefined ? {} : { transferRoute: options.transferRoute })
  }).pipe(
    Layer.provideMerge(runtimeServices),
    Layer.provide(HfsDirectory.fromRecords(options.machines ?? machines, users)),
    Layer.provideMerge(Locations.sql({ contest: false }))
  )

export { PgTest }
