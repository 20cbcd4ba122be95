import { Effect } from "effect"
import * as Prom from "prom-client"
import { Metrics, promCounter } from "../../runtime/metrics.js"

// HFS metrics. The original's names where they exist (hfs_get_hfs_summary, hfs_new_user);
// no per-user label (the original's `user` label made one series per contestant): the
// login is in the logs.

export interface HfsMetrics {
  readonly getHome: Prom.Summary<"hfs" | "user_type">
  readonly newUser: Prom.Summary<"hfs" | "user_type">
  readonly grants: Prom.Counter<"hfs">
  readonly served: Prom.Gauge<"hfs">
  readonly nbdRejected: Prom.Counter<"hfs" | "reason">
  readonly getHomeFailed: Prom.Counter<"hfs" | "error">
}

const getOrCreate = <M extends Prom.Metric>(registry: Prom.Registry, name: string, create: () => M): M =>
  (registry.getSingleMetric(name) as M | undefined) ?? create()

export const hfsMetrics: Effect.Effect<HfsMetrics, never, Metrics> = Effect.gen(function* () {
  const { registry } = yield* Metrics
  const registers = [registry]
  const getHome = getOrCreate(registry, "hfs_get_hfs_summary", () =>
    new Prom.Summary({ name: "hfs_get_hfs_summary", help: "Seconds per successful getHome (new homes included)", labelNames: ["hfs", "user_type"], registers })
  )
  const newUser = getOrCreate(registry, "hfs_new_user", () =>
    new Prom.Summary({ name: "hfs_new_user", help: "Seconds to create a new home image", labelNames: ["hfs", "user_type"], registers })
  )
  const served = getOrCreate(registry, "prolo_hfs_homes_served", () =>
    new Prom.Gauge({ name: "prolo_hfs_homes_served", help: "Homes granted (exported) by this HFS now", labelNames: ["hfs"], registers })
  )
  const grants = yield* promCounter({ name: "prolo_hfs_grants_total", help: "Grants (generation bumps) of homes by this HFS", labelNames: ["hfs"] })
  const nbdRejected = yield* promCounter({
    name: "prolo_hfs_nbd_rejected_total",
    help: "NBD attach attempts refused by the home gate (wrong machine, stale generation, bad secret, ...)",
    labelNames: ["hfs", "reason"]
  })
  const getHomeFailed = yield* promCounter({ name: "prolo_hfs_get_home_failed_total", help: "getHome requests refused, by error", labelNames: ["hfs", "error"] })
  return { getHome, newUser, grants, served, nbdRejected, getHomeFailed }
})
