import { Metric, MetricLabel } from "effect"
import type { RequestResult } from "./server.js"

// SSO metrics (rendered on /metrics by the runtime's bridge; names fixed with the ops lane's
// alerts and dashboards). Counted from the synchronous request handler with `unsafeUpdate`.

export const ssoStaleness = Metric.gauge("prolo_sso_staleness_seconds", {
  description: "Seconds since the least recently heard of the mdb and presence topics last spoke to the SSO whois"
})

const requests = Metric.counter("prolo_sso_requests_total", {
  description: "Whois requests, by result (user, unknown, stale, bad_request, refused)",
  incremental: true
})

const RESULTS: ReadonlyArray<RequestResult> = ["user", "unknown", "stale", "bad_request", "refused"]
const labels = new Map(RESULTS.map((r) => [r, [MetricLabel.make("result", r)]] as const))

export const countRequest = (result: RequestResult): void => requests.unsafeUpdate(1, labels.get(result) ?? [])
