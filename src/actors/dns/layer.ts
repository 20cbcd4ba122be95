import { mkdir } from "node:fs/promises"
import * as path from "node:path"
import { Effect, Layer } from "effect"
import { MDB_TOPIC } from "../../protocols/mdb.js"
import { loadProfile } from "../../runtime/config.js"
import { runTool } from "../../runtime/run-tool.js"
import { supervisedLoop } from "../../runtime/supervised-loop.js"
import { supervisorGroup } from "../../runtime/supervisor.js"
import { inProcessSyncClient } from "../presence/layer.js"
import { SyncClient } from "../sync/client.js"
import { SyncHubLive } from "../sync/layer.js"
import { makeCoalescer } from "../../runtime/coalesce.js"
import { dataPath, DnsProfile } from "./config.js"
import { machinesOf, makeZoneWriter } from "./generate.js"
import { reloadZones } from "./reload.js"
import { namedViews, type ZoneSpec } from "./render.js"
import { validatedSwap } from "./swap.js"

/** The views file BIND includes (`include "<dir>/named-prolo.conf";`). */
export const VIEWS_FILE = "named-prolo.conf"

/**
 * The original mdbdns on the gateway: follows the node's `mdb` topic, writes the six zones
 * (validated, swapped atomically, each serial bumped only when its zone changed) and reloads
 * the changed zones in BIND, at most once per window. In `/__actors`: `/root/dns` with
 * `follow-mdb` and `reload`.
 */
export const DnsLayer = Layer.scopedDiscard(
  Effect.gen(function* () {
    const profile = yield* loadProfile("dns", DnsProfile)
    const dir = yield* dataPath(profile.dir, "dns")
    yield* Effect.promise(() => mkdir(dir, { recursive: true }))
    yield* validatedSwap({
      target: path.join(dir, VIEWS_FILE),
      content: namedViews(dir),
      validate: (file) => runTool([...profile.named_checkconf, file]),
      service: "dns"
    })
    const rndc = profile.rndc
    const reloader = yield* makeCoalescer<ZoneSpec>(`${profile.reload_window_ms} millis`, (zones) =>
      rndc === undefined ? Effect.void : reloadZones(rndc, zones)
    )
    const writeZones = makeZoneWriter({
      dir,
      checkZone: (origin, file) => runTool([...profile.named_checkzone, "-k", "fail", origin, file])
    })
    const client = yield* SyncClient
    const follower = yield* client.follower(MDB_TOPIC, (state, _metadata, info) =>
      Effect.gen(function* () {
        const { machines, invalid } = machinesOf(state)
        if (invalid.length > 0) yield* Effect.logWarning(`dns: revision ${info.revision}: ${invalid.length} undecodable record(s) left out`)
        const changed = yield* writeZones(machines)
        yield* reloader.mark(changed)
      })
    )
    yield* supervisedLoop("follow-mdb", follower.run)
    yield* supervisedLoop("reload", reloader.run, {
      probe: Effect.zipWith(reloader.pending, reloader.handled, (mailboxDepth, handled) => ({ mailboxDepth, handled }))
    })
    yield* Effect.logInfo(`dns: zones in ${dir}${rndc === undefined ? " (no rndc configured: BIND not reloaded)" : ""}`)
  })
).pipe(Layer.provide(supervisorGroup("dns")), Layer.provide(inProcessSyncClient), Layer.provide(SyncHubLive))
