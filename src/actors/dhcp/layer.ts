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
import { dataPath } from "../dns/config.js"
import { machinesOf } from "../dns/generate.js"
import { countReloadFailure } from "../dns/reload.js"
import { validatedSwap } from "../dns/swap.js"
import { DhcpProfile } from "./config.js"
import { renderDhcpdConf } from "./render.js"

/**
 * The original mdbdhcp on the gateway: follows the node's `mdb` topic, writes dhcpd.conf
 * (checked by `dhcpd -t -cf` before the atomic swap) and restarts dhcpd only when the file
 * changed, at most once per window. In `/__actors`: `/root/dhcp` with `follow-mdb` and `restart`.
 */
export const DhcpLayer = Layer.scopedDiscard(
  Effect.gen(function* () {
    const profile = yield* loadProfile("dhcp", DhcpProfile)
    const file = profile.file === undefined ? path.join(yield* dataPath(undefined, "dhcp"), "dhcpd.conf") : path.resolve(profile.file)
    yield* Effect.promise(() => mkdir(path.dirname(file), { recursive: true }))
    const command = profile.restart
    const restarter = yield* makeCoalescer<"dhcpd">(`${profile.restart_window_ms} millis`, () =>
      command === undefined
        ? Effect.void
        : Effect.flatMap(runTool(command), (r) =>
            r.code === 0
              ? Effect.logInfo(`dhcp: ${command.join(" ")}: done`)
              : Effect.zipRight(countReloadFailure("dhcp"), Effect.logError(`dhcp: ${command.join(" ")} failed: ${r.output}`))
          )
    )
    const client = yield* SyncClient
    const follower = yield* client.follower(MDB_TOPIC, (state, _metadata, info) =>
      Effect.gen(function* () {
        const { machines, invalid } = machinesOf(state)
        if (invalid.length > 0) yield* Effect.logWarning(`dhcp: revision ${info.revision}: ${invalid.length} undecodable record(s) left out`)
        const rendered = renderDhcpdConf(machines)
        for (const s of rendered.skipped) yield* Effect.logWarning(`dhcp: machine ${s.hostname}: ${s.reason}; no host block`)
        const outcome = yield* validatedSwap({
          target: file,
          content: rendered.text,
          validate: (candidate) => runTool([...profile.dhcpd, "-t", "-q", "-cf", candidate]),
          service: "dhcp"
        })
        if (outcome._tag === "Written") yield* restarter.mark(["dhcpd"])
      })
    )
    yield* supervisedLoop("follow-mdb", follower.run)
    yield* supervisedLoop("restart", restarter.run, {
      probe: Effect.zipWith(restarter.pending, restarter.handled, (mailboxDepth, handled) => ({ mailboxDepth, handled }))
    })
    yield* Effect.logInfo(`dhcp: ${file}${command === undefined ? " (no restart command configured: dhcpd not restarted)" : ""}`)
  })
).pipe(Layer.provide(supervisorGroup("dhcp")), Layer.provide(inProcessSyncClient), Layer.provide(SyncHubLive))
