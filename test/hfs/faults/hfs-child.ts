// One HFS as a real process, for the migration fault suite (migration-faults.test.ts): the
// node's HFS subsystem (Hfs.layer, its rpc port, transfer listener and NBD listener on the
// HFS's own address, locations in the real PostgreSQL), with machines and users given as
// records instead of followed from a hub. The test SIGKILLs it and starts it again.
//   hfs-child.ts <id> <database url> <export base> <skeleton> [standby]
// Prints `ready` once its rpc port is open. With `standby` it loads, prints `loaded` and waits
// for a line on stdin before it starts: the suite keeps one loaded spare per HFS so a restart
// after a kill costs the layer's start, not node's start and the bundle's load.
import { Effect, Layer, Redacted } from "effect"
import { rpcPorts } from "../../../src/actors/hfs/layer.js"
import { Hfs } from "../../../src/actors/hfs/service.js"
import { connect } from "../../../src/store/database.js"
import { faultMachines, faultProfile, faultUsers, statusSecret } from "./setup.js"
import { HfsDirectory } from "../../../src/actors/hfs/directory.js"
import { Locations } from "../../../src/actors/hfs/locations.js"
import { ActorTree } from "../../../src/runtime/actor-tree.js"
import { Metrics } from "../../../src/runtime/metrics.js"
import { RootSupervisor } from "../../../src/runtime/supervisor.js"
import { hfsSecret } from "./setup.js"

const [idArg, url, exportBase, skeleton, mode] = process.argv.slice(2) as [string, string, string, string, string | undefined]
const id = Number(idArg)

const layer = rpcPorts({ ids: [id], port: faultProfile.rpc_port, client: hfsSecret, status: statusSecret }).pipe(
  Layer.provideMerge(Hfs.layer({ ids: [id], profile: { ...faultProfile, export_base: exportBase, skeleton }, secret: hfsSecret })),
  Layer.provideMerge(RootSupervisor.layerWithExit(() => Effect.void).pipe(Layer.provideMerge(Layer.mergeAll(ActorTree.layer, Metrics.layer)))),
  Layer.provide(HfsDirectory.fromRecords(faultMachines, faultUsers)),
  Layer.provide(Locations.sql({ contest: false })),
  Layer.provide(connect(Redacted.make(url)))
)

const program = Effect.gen(function* () {
  const hfs = yield* Hfs
  for (;;) {
    const s = yield* hfs.status
    if (s.every((x) => x.rpcPort !== null)) break
    yield* Effect.sleep("10 millis")
  }
  process.stderr.write("ready\n")
  return yield* Effect.never
}).pipe(Effect.provide(layer), Effect.scoped)

const go =
  mode === "standby"
    ? new Promise<void>((resolve) => {
        process.stdin.once("data", () => resolve())
        process.stderr.write("loaded\n")
      })
    : Promise.resolve()

go.then(() => Effect.runPromise(program)).catch((e: unknown) => {
  process.stderr.write(`failed ${String(e)}\n`)
  process.exit(1)
})
