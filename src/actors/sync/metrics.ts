import { Metric } from "effect"

// Effect metrics of the sync hub and its followers, per topic (rendered on /metrics by the
// runtime's bridge). The per-subscriber buffer depth is a prom-client gauge filled at scrape
// time (hub.ts), so that departed subscribers leave no stale series.

const perTopic = <Type, In, Out>(metric: Metric.Metric<Type, In, Out>, topic: string): Metric.Metric<Type, In, Out> =>
  Metric.tagged(metric, "topic", topic)

const revision = Metric.gauge("prolo_sync_revision", { description: "Last revision the hub fanned out" })
const published = Metric.counter("prolo_sync_published_batches_total", {
  description: "Batches published through the hub",
  incremental: true
})
const snapshots = Metric.counter("prolo_sync_snapshots_sent_total", {
  description: "Snapshots sent to subscribers (new subscribers, resumes beyond retention)",
  incremental: true
})
const lagging = Metric.counter("prolo_sync_lagging_total", {
  description: "Subscribers detached because their buffer was full",
  incremental: true
})
const staleness = Metric.gauge("prolo_sync_staleness_seconds", {
  description: "Seconds since the follower last received a frame"
})
const resyncs = Metric.counter("prolo_sync_resyncs_total", {
  description: "Snapshots a follower had to apply over a state it already held",
  incremental: true
})

const outsidePublishes = Metric.counter("prolo_sync_outside_publishes_refused_total", {
  description: "Publishes refused on a topic that has a single writer (rpc Publish, POST /update), whatever their token",
  incremental: true
})
export const outsidePublishesRefused = (topic: string) => perTopic(outsidePublishes, topic)

/** Frames the follow route serialised: once per batch and audience, whatever the subscribers. */
export const followEncodes = Metric.counter("prolo_sync_follow_encodes_total", {
  description: "Frames the follow route encoded (each encoding is shared by every subscriber sent that frame)",
  incremental: true
})

export const hubMetrics = (topic: string) => ({
  revision: perTopic(revision, topic),
  published: perTopic(published, topic),
  snapshots: perTopic(snapshots, topic),
  lagging: perTopic(lagging, topic)
})

export const followerMetrics = (topic: string) => ({
  staleness: perTopic(staleness, topic),
  resyncs: perTopic(resyncs, topic)
})
