import type { Redacted } from "effect"
import { Machine } from "../../protocols/mdb.js"
import type { SyncRecord } from "../../protocols/sync.js"
import { udbRecordFilter, USER_FIELD_ORDER } from "../../protocols/udb.js"
import { stableHasher } from "../../runtime/shadow-hash.js"

// The topics the gateway's hub serves, and who may do what on them.

/**
 * Which secret a subscriber proved: the subscriber secret (or the publisher's) reads what the
 * topic's filter lets through to the `public`; a topic's hash secret (udb: `udbsync-shadow.yml`)
 * reads what it lets through to `hashes` (password hashes for /etc/shadow, never clear text).
 */
export type Audience = "public" | "hashes"

/**
 * Shapes a record for an audience before it leaves the hub (e.g. the udb topic drops `password`
 * for public subscribers). Must keep the key field.
 */
export type RecordFilter = (audience: Audience, record: SyncRecord) => SyncRecord

export interface TopicSecrets {
  readonly publisher: Redacted.Redacted<string>
  readonly subscriber: Redacted.Redacted<string>
  /** The `hashes` audience's secret, for a topic that has one (`hashProfile`). */
  readonly hashes?: Redacted.Redacted<string>
}

export interface TopicDefinition {
  readonly name: string
  readonly keyField: string
  /** History in the PostgreSQL change log (survives restarts) rather than in memory. */
  readonly durable: boolean
  /** Profile prefix of the secrets: `<profile>-pub.yml`, `<profile>-sub.yml` (`shared_secret`). */
  readonly profile: string
  /** Profile of the `hashes` audience's secret (`shared_secret`), for a topic that has that audience. */
  readonly hashProfile?: string
  /** The record filter, built once per hub from the topic's secrets. */
  readonly filter?: (secrets: TopicSecrets) => RecordFilter
  /**
   * The only writer of the topic: the service that owns its records (mdb, udb: the service
   * appends to the change log in the transaction of each write) or the actor that owns its
   * invariants (presence: a user on one host). Set, the signed publish paths (rpc Publish,
   * `POST /update`) refuse every batch, whatever the token, and count it; only that writer
   * changes the topic. Anyone holding a publisher secret could otherwise inject made-up
   * machines or users (a root account with a password and an ssh key) that every machine installs.
   */
  readonly writer?: string
  /**
   * Field order of the records on the wire (the original model's `to_dict` order, which its
   * `/poll` lines showed): a durable topic's store (jsonb) does not keep the order records were
   * written in. Fields not listed follow, in the store's order.
   */
  readonly fieldOrder?: ReadonlyArray<string>
}

// A machine's `to_dict` order, then the stable id our records add.
export const MDB_TOPIC: TopicDefinition = {
  name: "mdb",
  keyField: "mac",
  durable: true,
  profile: "mdbsync",
  writer: "the MDB service",
  fieldOrder: [...Object.keys(Machine.fields), "id"]
}
// Public subscribers get users without `password`; the hash audience gets SHA-512-crypt hashes,
// salted from the publisher secret (which only the gateway holds), so stable across hub restarts.
export const UDB_TOPIC: TopicDefinition = {
  name: "udb",
  keyField: "login",
  durable: true,
  profile: "udbsync",
  hashProfile: "udbsync-shadow",
  filter: (secrets) => udbRecordFilter(stableHasher(secrets.publisher)),
  writer: "the UDB service",
  fieldOrder: USER_FIELD_ORDER
}
// As the original presencesync (which had no `/update`): only the PresenceActor writes it.
export const PRESENCE_TOPIC: TopicDefinition = { name: "presence", keyField: "login", durable: false, profile: "presencesync", writer: "the presence actor" }

export const DEFAULT_TOPICS: ReadonlyArray<TopicDefinition> = [MDB_TOPIC, UDB_TOPIC, PRESENCE_TOPIC]
