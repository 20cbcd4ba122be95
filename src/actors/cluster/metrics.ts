import { Effect } from "effect"
import * as Prom from "prom-client"
import { Metrics } from "../../runtime/metrics.js"

// The match cluster's metrics: the original masternode/workernode names (spec monitoring.md,
// counters with the `_total` its client library added) plus ours, whose names the alerts use:
// prolo_cluster_queue_depth{kind}, prolo_cluster_lease_expiries_total,
// prolo_cluster_late_results_dropped_total, prolo_cluster_redispatches_total,
// prolo_cluster_sandbox_kills_total{reason}.

const getOrCreate = <M extends Prom.Metric>(registry: Prom.Registry, name: string, create: (registers: Array<Prom.Registry>) => M): M =>
  (registry.getSingleMetric(name) as M | undefined) ?? create([registry])

const counter = (registry: Prom.Registry, name: string, help: string) =>
  getOrCreate(registry, name, (registers) => new Prom.Counter({ name, help, registers }))

export interface MasterMetrics {
  readonly workers: Prom.Gauge
  readonly tasks: Prom.Gauge
  readonly queueDepth: Prom.Gauge<"kind">
  readonly dispatched: Prom.Counter
  readonly redispatched: Prom.Counter
  readonly resubmitted: Prom.Counter
  readonly failed: Prom.Counter
  readonly badResults: Prom.Counter
  readonly workerTimeouts: Prom.Counter
  readonly zombies: Prom.Counter
  readonly exceptions: Prom.Counter
  readonly matchDoneFile: Prom.Summary
  readonly matchDoneDb: Prom.Summary
  readonly leaseExpiries: Prom.Counter
  readonly lateResults: Prom.Counter
  readonly redispatches: Prom.Counter
  readonly redispatchDelay: Prom.Histogram
  readonly dispatchRound: Prom.Summary
}

export const masterMetrics: Effect.Effect<MasterMetrics, never, Metrics> = Effect.map(Metrics, ({ registry }) => ({
  workers: getOrCreate(registry, "masternode_workers", (registers) => new Prom.Gauge({ name: "masternode_workers", help: "Workers connected to the master", registers })),
  tasks: getOrCreate(registry, "masternode_tasks", (registers) => new Prom.Gauge({ name: "masternode_tasks", help: "Tasks running on the workers", registers })),
  queueDepth: getOrCreate(registry, "prolo_cluster_queue_depth", (registers) =>
    new Prom.Gauge({ name: "prolo_cluster_queue_depth", help: "Tasks waiting for a worker (status new), by kind", labelNames: ["kind"], registers })
  ),
  dispatched: counter(registry, "masternode_task_dispatch_total", "Tasks handed to a worker"),
  redispatched: counter(registry, "masternode_task_redispatch_total", "Tasks taken back from a worker that was lost (connection dropped, no heartbeat, restarted)"),
  resubmitted: counter(registry, "masternode_task_resubmit_total", "Tasks queued again after their attempt timed out or the executor failed"),
  failed: counter(registry, "masternode_task_fail_total", "Tasks failed after max_task_tries dispatches"),
  badResults: counter(registry, "masternode_bad_result_total", "Match results whose players do not match the match's (recorded as failed)"),
  workerTimeouts: counter(registry, "masternode_worker_timeout_total", "Workers dropped for missing heartbeats"),
  zombies: counter(registry, "masternode_zombie_worker_total", "Calls from a worker session the master does not know (dropped, or before a master restart)"),
  exceptions: counter(registry, "masternode_exception_total", "Failures of the dispatcher and janitor rounds (database down), retried"),
  matchDoneFile: getOrCreate(registry, "masternode_match_done_file", (registers) =>
    new Prom.Summary({ name: "masternode_match_done_file", help: "Seconds to store a match's files", registers })
  ),
  matchDoneDb: getOrCreate(registry, "masternode_match_done_db", (registers) =>
    new Prom.Summary({ name: "masternode_match_done_db", help: "Seconds of the database transaction recording a match", registers })
  ),
  leaseExpiries: counter(registry, "prolo_cluster_lease_expiries_total", "Task attempts whose lease expired (timeout) before a result"),
  lateResults: counter(registry, "prolo_cluster_late_results_dropped_total", "Results for an attempt that was not the current lease, dropped"),
  redispatches: counter(registry, "prolo_cluster_redispatches_total", "Dispatches of a task that an earlier attempt had held (lost worker, timeout, executor failure)"),
  dispatchRound: getOrCreate(registry, "prolo_cluster_dispatch_round_seconds", (registers) =>
    new Prom.Summary({ name: "prolo_cluster_dispatch_round_seconds", help: "Seconds per matchmaker round that planned dispatches (the query and the plan; the claims run behind it)", percentiles: [0.5, 0.9, 0.99], registers })
  ),
  redispatchDelay: getOrCreate(registry, "prolo_cluster_redispatch_delay_seconds", (registers) =>
    new Prom.Histogram({
      name: "prolo_cluster_redispatch_delay_seconds",
      help: "From a task taken back from a worker to its next dispatch",
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30],
      registers
    })
  )
}))

export interface WorkerMetrics {
  readonly slots: Prom.Gauge
  readonly compile: Prom.Summary
  readonly match: Prom.Summary
  readonly sandboxKills: Prom.Counter<"reason">
}

export const workerMetrics: Effect.Effect<WorkerMetrics, never, Metrics> = Effect.map(Metrics, ({ registry }) => ({
  slots: getOrCreate(registry, "workernode_slots", (registers) => new Prom.Gauge({ name: "workernode_slots", help: "Free slots of this worker", registers })),
  compile: getOrCreate(registry, "workernode_compile_champion_summary", (registers) =>
    new Prom.Summary({ name: "workernode_compile_champion_summary", help: "Seconds per compilation", registers })
  ),
  match: getOrCreate(registry, "workernode_run_match_count", (registers) =>
    new Prom.Summary({ name: "workernode_run_match_count", help: "Seconds per match (the original's name)", registers })
  ),
  sandboxKills: getOrCreate(registry, "prolo_cluster_sandbox_kills_total", (registers) =>
    new Prom.Counter({ name: "prolo_cluster_sandbox_kills_total", help: "Programs the sandbox ended, by reason", labelNames: ["reason"], registers })
  )
}))
