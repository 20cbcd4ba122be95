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
  /** Migrations: `hfs` is the HFS that observes (the destination, or the source for `migrateSend`). */
  readonly migrateReceive: Prom.Summary<"hfs">
  readonly migrateSend: Prom.Summary<"hfs">
  readonly migrationsInFlight: Prom.Gauge<"hfs">
  readonly migrationsFailed: Prom.Counter<"hfs" | "reason">
  readonly wireBytes: Prom.Counter<"hfs">
  readonly allocatedBytes: Prom.Counter<"hfs">
  readonly checksumFailures: Prom.Counter<"hfs">
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
  const migrateReceive = getOrCreate(registry, "hfs_migrate_remote_user_summary", () =>
    new Prom.Summary({
      name: "hfs_migrate_remote_user_summary",
      help: "Seconds to move a home here from another HFS (hand-over, transfer, commit)",
      labelNames: ["hfs"],
      registers
    })
  )
  const migrateSend = getOrCreate(registry, "hfs_migrate_user_summary", () =>
    new Prom.Summary({ name: "hfs_migrate_user_summary", help: "Seconds to send a home to another HFS (one transfer connection)", labelNames: ["hfs"], registers })
  )
  const migrationsInFlight = getOrCreate(registry, "prolo_hfs_migrations_in_flight", () =>
    new Prom.Gauge({ name: "prolo_hfs_migrations_in_flight", help: "Homes being moved to this HFS now", labelNames: ["hfs"], registers })
  )
  const migrationsFailed = yield* promCounter({
    name: "prolo_hfs_migrations_failed_total",
    help: "Migrations to this HFS that failed (the home stayed on its source), by reason",
    labelNames: ["hfs", "reason"]
  })
  const wireBytes = yield* promCounter({
    name: "prolo_hfs_migration_wire_bytes_total",
    help: "Bytes of home transfers received over the wire by this HFS",
    labelNames: ["hfs"]
  })
  const allocatedBytes = yield* promCounter({
    name: "prolo_hfs_migration_allocated_bytes_total",
    help: "Allocated bytes of the homes moved to this HFS (compare with the wire bytes)",
    labelNames: ["hfs"]
  })
  const checksumFailures = yield* promCounter({
    name: "prolo_hfs_transfer_checksum_failures_total",
    help: "Home transfer windows or whole images refused by this HFS because their checksum did not match",
    labelNames: ["hfs"]
  })
  return {
    getHome,
    newUser,
    grants,
    served,
    nbdRejected,
    getHomeFailed,
    migrateReceive,
    migrateSend,
    migrationsInFlight,
    migrationsFailed,
    wireBytes,
    allocatedBytes,
    checksumFailures
  }
})
