import { Effect, Metric } from "effect"
import { runTool } from "../../runtime/run-tool.js"
import type { ZoneSpec } from "./render.js"

// `rndc reload <zone> IN <view>`: BIND rereads that one zone, no restart (its PID and its other
// zones untouched). A failed reload is logged and counted; the zone stays as BIND last loaded it.

const failures = Metric.counter("prolo_gw_reload_failures_total", {
  description: "Reloads (rndc reload, dhcpd restart) that failed",
  incremental: true
})

export const reloadZones = (rndc: ReadonlyArray<string>, zones: ReadonlySet<ZoneSpec>): Effect.Effect<void> =>
  Effect.forEach(
    zones,
    (zone) =>
      Effect.flatMap(runTool([...rndc, "reload", zone.origin, "IN", zone.view]), (r) =>
        r.code === 0
          ? Effect.logDebug(`dns: reloaded ${zone.origin} (view ${zone.view})`)
          : Effect.zipRight(
              countReloadFailure("dns"),
              Effect.logError(`dns: rndc reload ${zone.origin} IN ${zone.view} failed: ${r.output}`)
            )
      ),
    { discard: true }
  )

export const countReloadFailure = (service: string) => Metric.increment(Metric.tagged(failures, "service", service))
