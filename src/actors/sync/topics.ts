import type { Redacted } from "effect"
import { Machine } from "../../protocols/mdb.js"
import type { SyncRecord } from "../../protocols/sync.js"
import { udbRecordFilter, USER_FIELD_ORDER } from "../../protocols/udb.js"

// The topics the gateway's hub serves, and who may do what on them.

/**
 * Which secret a subscriber proved: the publisher secret reads everything (`private`), the
 * subscriber secret reads what the topic's filter lets through (`public`).
 */
export type Audience = "private" | "public"

/**
 * Shapes a record for an audience before it leaves the hub (e.g. the udb topic drops `password`
 * for public subscribers). Must keep the key field.
 */
export type RecordFilter = (audience: Audience, record: SyncRecord) => SyncRecord

export interface TopicDefinition {
  readonly name: string
  readonly keyField: string
  /** History in the PostgreSQL change log (survives restarts) rather than in memory. */
  readonly durable: boolean
  /** Profile prefix of the secrets: `<profile>-pub.yml`, `<profile>-sub.yml` (`shared_secret`). */
  readonly profile: string
  readonly filter?: RecordFilter
  /**
   * The only writer of a topic whose invariants live in one actor (presence: a user on one
   * host). Set, the signed publish paths (rpc Publish, `POST /update`) refuse every batch and
   * only the in-process `publish` of that writer changes the topic.
   */
  readonly writer?: string
  /**
   * Field order of the records on the wire (the original model's `to_dict` order, which its
   * `/poll` lines showed): a durable topic's store (jsonb) does not keep the order records were
   * written in. Fields not listed follow, in the store's order.
   */
  readonly fieldOrder?: ReadonlyArray<string>
}

export interface TopicSecrets {
  readonly publisher: Redacted.Redacted<string>
  readonly subscriber: Redacted.Redacted<string>
}

// A machine's `to_dict` order, then the stable id our records add.
export const MDB_TOPIC: TopicDefinition = {
  name: "mdb",
  keyField: "mac",
  durable: true,
  profile: "mdbsync",
  fieldOrder: [...Object.keys(Machine.fields), "id"]
}
// Public subscribers (subscriber secret) get users without `password`.
export const UDB_TOPIC: TopicDefinition = {
  name: "udb",
  keyField: "login",
  durable: true,
  profile: "udbsync",
  filter: udbRecordFilter,
  fieldOrder: USER_FIELD_ORDER
}
// As the original presencesync (which had no `/update`): only the PresenceActor writes it.
export const PRESENCE_TOPIC: TopicDefinition = { name: "presence", keyField: "login", durable: false, profile: "presencesync", writer: "the presence actor" }

export const DEFAULT_TOPICS: ReadonlyArray<TopicDefinition> = [MDB_TOPIC, UDB_TOPIC, PRESENCE_TOPIC]
