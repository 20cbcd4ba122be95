import { Effect } from "effect"
import * as Prom from "prom-client"
import { Metrics, promCounter } from "../../runtime/metrics.js"

// Presence metrics. No per-user label (the original's `user` label made one series per
// contestant and reason): the login is in the logs, the counters stay small.

export interface PresenceMetrics {
  readonly loginFailed: Prom.Counter<"reason">
  readonly heartbeatRefused: Prom.Counter<"reason">
  readonly loggedUsers: Prom.Gauge
  readonly leaseAge: Prom.Histogram
}

const getOrCreate = <M extends Prom.Metric>(registry: Prom.Registry, name: string, create: () => M, is: (m: unknown) => m is M): M => {
  const existing = registry.getSingleMetric(name)
  return existing !== undefined && is(existing) ? existing : create()
}

/** `leaseSeconds` sets the age histogram's buckets: fractions of one lease period. */
export const presenceMetrics = (leaseSeconds: number): Effect.Effect<PresenceMetrics, never, Metrics> =>
  Effect.gen(function* () {
    const { registry } = yield* Metrics
    const loginFailed = yield* promCounter({
      name: "presencesync_login_failed_total",
      help: "Login requests refused, by reason",
      labelNames: ["reason"]
    })
    const heartbeatRefused = yield* promCounter({
      name: "prolo_presence_heartbeat_refused_total",
      help: "Heartbeats refused (login leased on another host, or no lease and the login rules refuse one), by reason",
      labelNames: ["reason"]
    })
    const loggedUsers = getOrCreate(
      registry,
      "prolo_presence_logged_users",
      () => new Prom.Gauge({ name: "prolo_presence_logged_users", help: "Live presence leases (logged-in users)", registers: [registry] }),
      (m): m is Prom.Gauge => m instanceof Prom.Gauge
    )
    const leaseAge = getOrCreate(
      registry,
      "prolo_presence_lease_age_seconds",
      () =>
        new Prom.Histogram({
          name: "prolo_presence_lease_age_seconds",
          help: "Age of a lease (time since its last login or heartbeat) when it is refreshed or expires; near the lease period means heartbeats are late",
          buckets: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1].map((f) => Math.round(f * leaseSeconds * 1000) / 1000),
          registers: [registry]
        }),
      (m): m is Prom.Histogram => m instanceof Prom.Histogram
    )
    return { loginFailed, heartbeatRefused, loggedUsers, leaseAge }
  })
