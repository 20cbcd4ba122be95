import { Metric } from "effect"

// Firewall metrics (names fixed with the ops lane's alerts and dashboards).

export const allowedHostsGauge = Metric.gauge("prolo_firewall_allowed_hosts", {
  description: "Addresses in the allowed-internet-access set after the last successful rebuild (computed only when no ipset is configured)"
})
export const swaps = Metric.counter("prolo_firewall_swaps_total", {
  description: "Atomic swaps of the allowed set (ipset swap) that succeeded",
  incremental: true
})
export const swapFailures = Metric.counter("prolo_firewall_swap_failures_total", {
  description: "Rebuilds of the allowed set that failed (the live set was left as it was; retried)",
  incremental: true
})
