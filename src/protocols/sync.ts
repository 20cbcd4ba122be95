import { Rpc, RpcGroup } from "@effect/rpc"
import { Schema } from "effect"

// Wire contract of the sync hub (mdbsync, udbsync, presencesync): revisioned change streams.
//
// A topic is a keyed set of JSON records. Every published batch (the original's update message
// `[{"type":"update"|"delete","data":{…}}]`) gets the next revision of its topic. A subscriber
// names the last revision it applied; the hub answers with the batches it missed, or with one
// snapshot when they are no longer retained, then with live batches, and a progress frame every
// few seconds while idle.
//
// Auth is per topic (one group serves topics with different secrets), so the time-auth token is
// a payload field checked by the handler, not group middleware:
//   - Publish signs `publishMessage(topic, data)` (as `POST /update` does);
//   - Subscribe signs `subscribeMessage(topic)` (as `/follow` and `/poll` do).
// Either token is accepted once (the hub remembers it until its window closes).

/** A record on the bus: a JSON object holding at least the topic's key field. */
export const SyncRecord = Schema.Record({ key: Schema.String, value: Schema.Unknown })
export type SyncRecord = typeof SyncRecord.Type

export const UpdateType = Schema.Literal("update", "delete")
export type UpdateType = typeof UpdateType.Type

/** One element of the original's update message. */
export const Update = Schema.Struct({ type: UpdateType, data: SyncRecord })
export type Update = typeof Update.Type

export const Revision = Schema.NonNegativeInt
export type Revision = typeof Revision.Type

/**
 * Where a subscriber stands: `epoch` names the history its revision belongs to (an in-memory
 * topic starts a new history when its hub restarts), `revision` is the last batch it applied.
 */
export const Position = Schema.Struct({ epoch: Schema.String, revision: Revision })
export type Position = typeof Position.Type

/** Every record of the topic as of `revision`; replaces the subscriber's whole state. */
export const SnapshotFrame = Schema.TaggedStruct("Snapshot", {
  epoch: Schema.String,
  revision: Revision,
  records: Schema.Array(SyncRecord)
})
export type SnapshotFrame = typeof SnapshotFrame.Type

/** The batch published as `revision`; follows revision - 1 on the same stream. */
export const BatchFrame = Schema.TaggedStruct("Batch", {
  revision: Revision,
  updates: Schema.Array(Update)
})
export type BatchFrame = typeof BatchFrame.Type

/** Nothing new up to `revision`: keeps idle streams alive and tells the subscriber it is current. */
export const ProgressFrame = Schema.TaggedStruct("Progress", { revision: Revision })
export type ProgressFrame = typeof ProgressFrame.Type

export const Frame = Schema.Union(SnapshotFrame, BatchFrame, ProgressFrame)
export type Frame = typeof Frame.Type

export const TokenReason = Schema.Literal("missing", "malformed", "expired", "future", "bad_signature", "replayed", "busy")

export class SyncUnauthorized extends Schema.TaggedError<SyncUnauthorized>()("SyncUnauthorized", {
  topic: Schema.String,
  action: Schema.Literal("publish", "subscribe"),
  reason: TokenReason
}) {
  override get message(): string {
    return `sync ${this.action} on ${this.topic} refused: token ${this.reason}`
  }
}

export class UnknownTopic extends Schema.TaggedError<UnknownTopic>()("UnknownTopic", {
  topic: Schema.String,
  known: Schema.Array(Schema.String)
}) {
  override get message(): string {
    return `unknown sync topic ${JSON.stringify(this.topic)} (known: ${this.known.join(", ")})`
  }
}

export class InvalidBatch extends Schema.TaggedError<InvalidBatch>()("InvalidBatch", {
  topic: Schema.String,
  /** Index of the offending update, -1 when the message as a whole is wrong. */
  index: Schema.Int,
  reason: Schema.String
}) {
  override get message(): string {
    return `invalid update message for ${this.topic}${this.index >= 0 ? ` at [${this.index}]` : ""}: ${this.reason}`
  }
}

/** The subscriber fell a whole buffer behind; it resumes from the last revision it applied. */
export class SyncLagging extends Schema.TaggedError<SyncLagging>()("SyncLagging", {
  topic: Schema.String,
  buffered: Schema.Int
}) {
  override get message(): string {
    return `sync subscriber on ${this.topic} is lagging (${this.buffered} frames unread): stream ended, resume`
  }
}

/** The topic's store cannot be reached (database down); nothing was changed. */
export class SyncUnavailable extends Schema.TaggedError<SyncUnavailable>()("SyncUnavailable", {
  topic: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `sync topic ${this.topic} unavailable: ${this.reason}`
  }
}

/** The topic has a single writer inside the hub's node (presence): outside publishes are refused. */
export class TopicNotWritable extends Schema.TaggedError<TopicNotWritable>()("TopicNotWritable", {
  topic: Schema.String,
  writer: Schema.String
}) {
  override get message(): string {
    return `sync topic ${this.topic} is written only by ${this.writer}: outside publishes are refused`
  }
}

export const PublishResult = Schema.Struct({ revision: Revision })

export type PublishError = SyncUnauthorized | UnknownTopic | InvalidBatch | SyncUnavailable | TopicNotWritable
export type SubscribeError = SyncUnauthorized | UnknownTopic | SyncLagging | SyncUnavailable

export class SyncRpcs extends RpcGroup.make(
  Rpc.make("Publish", {
    payload: { topic: Schema.String, data: Schema.String, token: Schema.String },
    success: PublishResult,
    error: Schema.Union(SyncUnauthorized, UnknownTopic, InvalidBatch, SyncUnavailable, TopicNotWritable)
  }),
  Rpc.make("Subscribe", {
    payload: { topic: Schema.String, since: Schema.optional(Position), token: Schema.String },
    success: Frame,
    error: Schema.Union(SyncUnauthorized, UnknownTopic, SyncLagging, SyncUnavailable),
    stream: true
  })
) {}

/** What a Subscribe token signs: binds the token to its topic (the payload's `since` is harmless). */
export const subscribeMessage = (topic: string): string => `sync-subscribe:${topic}`

/**
 * What a Publish (or `POST /sync/<topic>/update`) token signs: the topic and the exact `data`
 * text, so that a token for one topic cannot publish on another (the original signed `data` only).
 */
export const publishMessage = (topic: string, data: string): string => `sync-publish:${topic}\n${data}`

/** The service name the group is mounted under (`/rpc/sync`). */
export const SYNC_SERVICE = "sync"

// Subscribe's fast path, `GET /sync/<topic>/follow` upgraded to a websocket: each frame is
// encoded once per batch and the same bytes go to every subscriber (the rpc encodes, and asks an
// acknowledgement for, every frame of every subscriber). The client's first message is a
// `FollowRequest`; the hub answers with one `FollowMessage` per websocket message. Backpressure
// is a credit window: the hub never has more than `FOLLOW_WINDOW` frames unacknowledged, and the
// client sends the count of frames it has consumed (a decimal number) at least every half window.

export const FollowRequest = Schema.Struct({ since: Schema.optional(Position), token: Schema.String })
export type FollowRequest = typeof FollowRequest.Type

export const SubscribeErrorSchema = Schema.Union(SyncUnauthorized, UnknownTopic, SyncLagging, SyncUnavailable)

/** The last message of a refused or ended subscription. */
export const FollowFailure = Schema.TaggedStruct("Failure", { error: SubscribeErrorSchema })

export const FollowMessage = Schema.Union(SnapshotFrame, BatchFrame, ProgressFrame, FollowFailure)
export type FollowMessage = typeof FollowMessage.Type

export const FOLLOW_WINDOW = 16

/** Path of the follow route for `topic`. */
export const followPath = (topic: string): string => `/sync/${encodeURIComponent(topic)}/follow`
