import { Effect } from "effect"
import * as Prom from "prom-client"
import { Metrics, promCounter } from "../../runtime/metrics.js"

// The login helper's metrics (job prolo-login): how many stages, how they ended, how long they
// took. What the room sees at 9:00, machine by machine; the login is in the logs, not a label.

export const loginMetrics = Effect.gen(function* () {
  const { registry } = yield* Metrics
  const stages = yield* promCounter({
    name: "prolo_login_stages_total",
    help: "PAM stages the login helper answered, by stage and exit status (0 ok, 6 refused, 9 unreachable, 4 system error)",
    labelNames: ["stage", "status"]
  })
  const existing = registry.getSingleMetric("prolo_login_stage_seconds")
  const seconds =
    existing instanceof Prom.Histogram
      ? (existing as Prom.Histogram<"stage">)
      : new Prom.Histogram<"stage">({
          name: "prolo_login_stage_seconds",
          help: "Time from a stage's request to its status, by stage (account includes getHome, which may move the home)",
          labelNames: ["stage"],
          buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 120],
          registers: [registry]
        })
  return {
    record: (stage: string, status: number, elapsed: number) => {
      stages.inc({ stage, status: String(status) })
      seconds.observe({ stage }, elapsed)
    }
  }
})
