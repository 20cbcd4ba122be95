import { Context, Effect, Layer, Redacted, type Scope } from "effect"
import { SqlClient } from "@effect/sql"
import { rpcPorts } from "../../../src/actors/hfs/layer.js"
import type { HfsMachine } from "../../../src/actors/hfs/directory.js"
import { Hfs, type HfsOptions } from "../../../src/actors/hfs/service.js"
import { Metrics } from "../../../src/runtime/metrics.js"
import { hfsLayer, hfsSecret, hfsWork } from "./hfs.js"

// Two HFS in one process, as on one RHFS box: hfs0 on 127.0.10.1, hfs1 on 127.0.10.2 (their
// MDB addresses, lane hfs-migrate's loopback range), each with its own rpc port (the server →
// server calls really go over TCP) and transfer listener. Client machines: `pas-a` (hfs0) and
// `alt-b` (hfs1) are 127.0.0.1, the source address of nbdfuse/nbdinfo, so a real mount works
// on both sides; `race-a`/`race-b` are 127.0.10.11/12 for raw NBD clients that pick their
// source address.

export const pairMachines: ReadonlyArray<HfsMachine> = [
  { hostname: "rhfs0", ip: "127.0.10.1", hfs: 0, aliases: ["hfs0"] },
  { hostname: "rhfs1", ip: "127.0.10.2", hfs: 1, aliases: ["hfs1"] },
  // an HFS known to MDB whose process is down (nothing listens on 127.0.10.3)
  { hostname: "rhfs2", ip: "127.0.10.3", hfs: 2, aliases: ["hfs2"] },
  { hostname: "pas-a", ip: "127.0.0.1", hfs: 0, aliases: [] },
  { hostname: "alt-b", ip: "127.0.0.1", hfs: 1, aliases: [] },
  { hostname: "race-a", ip: "127.0.10.11", hfs: 0, aliases: [] },
  { hostname: "race-b", ip: "127.0.10.12", hfs: 1, aliases: [] },
  { hostname: "far-c", ip: "127.0.10.13", hfs: 2, aliases: [] }
]

export const startPair = (
  options: {
    readonly profile?: Record<string, unknown>
    readonly transferRoute?: HfsOptions["transferRoute"]
    /** Runs in the test's scope before the HFS start (released after they stop): a small file system under hfs1. */
    readonly before?: (work: Effect.Effect.Success<typeof hfsWork>) => Effect.Effect<void, never, Scope.Scope>
  } = {}
) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    yield* sql`TRUNCATE hfs_location`
    const work = yield* hfsWork
    if (options.before !== undefined) yield* options.before(work)
    const layer = rpcPorts({ ids: [0, 1], port: 0, client: hfsSecret, status: Redacted.make("hfs-status-test-secret") }).pipe(
      Layer.provideMerge(
        hfsLayer({
          exportBase: work.exportBase,
          skeleton: work.skeleton,
          ids: [0, 1],
          machines: pairMachines,
          // rpc_port: the port of an HFS that is not in this process (hfs2: nothing listens there)
          profile: { bind: { "0": "127.0.10.1", "1": "127.0.10.2" }, rpc_port: 9, ...options.profile },
          ...(options.transferRoute === undefined ? {} : { transferRoute: options.transferRoute })
        })
      )
    )
    const ctx = yield* Layer.build(layer)
    const hfs = Context.get(ctx, Hfs)
    const a = yield* hfs.instance(0)
    const b = yield* hfs.instance(1)
    // the rpc ports are open once `status` shows them
    for (let i = 0; i < 200; i++) {
      const s = yield* hfs.status
      if (s.every((x) => x.rpcPort !== null)) break
      yield* Effect.promise(() => new Promise((r) => setTimeout(r, 10)))
    }
    return { hfs, a, b, work, metrics: Context.get(ctx, Metrics) }
  })

export const metricValue = async (metrics: Metrics["Type"], name: string, labels = "") => {
  const { body } = await Effect.runPromise(metrics.render)
  const line = body.split("\n").find((l) => (l.startsWith(`${name}{`) || l.startsWith(`${name} `)) && l.includes(labels))
  return line === undefined ? 0 : Number(line.split(" ").pop())
}
