import { Rpc, RpcGroup } from "@effect/rpc"
import { Schema } from "effect"
import { Public, TimeAuth } from "../runtime/rpc-auth.js"
import { Filters, InvalidFilter } from "./query-filters.js"

export { Filters, InvalidFilter }

// Wire contract of the machine database. A machine on the wire is the original's `to_dict`
// (aliases comma-joined); the change log record adds the machine's stable `id`.
// Input payloads are loose (plain strings and ints): the server validates them and answers
// a typed error naming the field, which a client-side schema failure could not do.

export const MTYPES = ["user", "orga", "cluster", "service"] as const
export const Mtype = Schema.Literal(...MTYPES)
export type Mtype = typeof Mtype.Type

export const ROOMS = ["pasteur", "alt", "cluster", "other"] as const
export const Room = Schema.Literal(...ROOMS)
export type Room = typeof Room.Type

/** `to_dict` of a machine, as `query` returns it and `curl http://mdb/call/query` shows it. */
export const Machine = Schema.Struct({
  hostname: Schema.String,
  aliases: Schema.String,
  ip: Schema.String,
  mac: Schema.String,
  rfs: Schema.Int,
  hfs: Schema.Int,
  mtype: Mtype,
  room: Room,
  is_faulty: Schema.Boolean,
  is_faulty_details: Schema.String
})
export type Machine = typeof Machine.Type

/** What the `mdb` change-log topic carries (key: `mac`): the wire form plus the stable id. */
export const MachineRecord = Schema.Struct({ id: Schema.Int, ...Machine.fields })
export type MachineRecord = typeof MachineRecord.Type

export const MDB_TOPIC = "mdb"

/** Where a node serves `MdbRpcs` (`/rpc/mdb`), and the TimeAuth scope of `mdb-server.yml`'s secret. */
export const MDB_SERVICE = "mdb"

export const Switch = Schema.Struct({
  name: Schema.String,
  chassis: Schema.String,
  room: Room,
  rfs: Schema.Int,
  hfs: Schema.Int
})
export type Switch = typeof Switch.Type

/** Changes to one machine; it keeps its id whatever changes (MAC, IP, even hostname). `ip: "auto"` re-allocates. */
export const MachineChanges = Schema.Struct({
  hostname: Schema.optional(Schema.String),
  mac: Schema.optional(Schema.String),
  ip: Schema.optional(Schema.String),
  aliases: Schema.optional(Schema.String),
  rfs: Schema.optional(Schema.Int),
  hfs: Schema.optional(Schema.Int),
  mtype: Schema.optional(Schema.String),
  room: Schema.optional(Schema.String),
  is_faulty: Schema.optional(Schema.Boolean),
  is_faulty_details: Schema.optional(Schema.String)
})
export type MachineChanges = typeof MachineChanges.Type

/** A new machine; omitted `ip` is allocated from the pool of its mtype (orga: the user pool). */
export const NewMachine = Schema.Struct({ ...MachineChanges.fields, hostname: Schema.String, mac: Schema.String })
export type NewMachine = typeof NewMachine.Type

/** Self-registration from the netboot menu (all fields required, as the original). */
export const Registration = Schema.Struct({
  hostname: Schema.String,
  mac: Schema.String,
  rfs: Schema.Int,
  hfs: Schema.Int,
  room: Schema.String,
  mtype: Schema.String
})
export type Registration = typeof Registration.Type

export const NewSwitch = Schema.Struct({
  name: Schema.String,
  chassis: Schema.String,
  room: Schema.optional(Schema.String),
  rfs: Schema.optional(Schema.Int),
  hfs: Schema.optional(Schema.Int)
})
export type NewSwitch = typeof NewSwitch.Type

export const SettingValue = Schema.Union(Schema.Boolean, Schema.Int, Schema.String)
export type SettingValue = typeof SettingValue.Type

export const Setting = Schema.Struct({ key: Schema.String, value: Schema.NullOr(SettingValue) })
export type Setting = typeof Setting.Type

/** The Ansible dynamic inventory (`{"user": {"hosts": [...]}, ..., "_meta": {"hostvars": {...}}}`). */
export const Inventory = Schema.Record({ key: Schema.String, value: Schema.Unknown })
export type Inventory = typeof Inventory.Type

// ---- errors ----------------------------------------------------------------------------

/** A field of a machine or switch is malformed (bad name, MAC, IP outside its pool, …). */
export class InvalidField extends Schema.TaggedError<InvalidField>()("InvalidField", {
  field: Schema.String,
  value: Schema.String,
  message: Schema.String
}) {}

/** A unique value (hostname, alias, ip, mac, switch name or chassis) belongs to another entry. */
export class AlreadyTaken extends Schema.TaggedError<AlreadyTaken>()("AlreadyTaken", {
  field: Schema.String,
  value: Schema.String,
  /** Hostname (or switch name) of the holder, when known. */
  holder: Schema.optional(Schema.String),
  message: Schema.String
}) {}

export class MachineNotFound extends Schema.TaggedError<MachineNotFound>()("MachineNotFound", {
  hostname: Schema.String,
  message: Schema.String
}) {}

export class SwitchNotFound extends Schema.TaggedError<SwitchNotFound>()("SwitchNotFound", {
  name: Schema.String,
  message: Schema.String
}) {}

export class PoolExhausted extends Schema.TaggedError<PoolExhausted>()("PoolExhausted", {
  pool: Schema.String,
  network: Schema.String,
  message: Schema.String
}) {}

export class RegistrationDisabled extends Schema.TaggedError<RegistrationDisabled>()("RegistrationDisabled", {
  message: Schema.String
}) {}

/** Too many self-registrations: from this source (`source`) or from everyone (`global`). Nothing was changed. */
export class RegistrationRateLimited extends Schema.TaggedError<RegistrationRateLimited>()("RegistrationRateLimited", {
  limit: Schema.Literal("source", "global"),
  source: Schema.optional(Schema.String),
  perMinute: Schema.Int,
  retryAfterSeconds: Schema.Int,
  message: Schema.String
}) {}

export class UnknownSetting extends Schema.TaggedError<UnknownSetting>()("UnknownSetting", {
  key: Schema.String,
  message: Schema.String
}) {}

/** The machine database cannot be reached (down, or no answer within the query timeout); retry. */
export class MdbUnavailable extends Schema.TaggedError<MdbUnavailable>()("MdbUnavailable", {
  message: Schema.String
}) {}

const WriteErrors = Schema.Union(InvalidField, AlreadyTaken, PoolExhausted, MdbUnavailable)

export class MdbRpcs extends RpcGroup.make(
  Rpc.make("query", { payload: { filters: Filters }, success: Schema.Array(Machine), error: Schema.Union(InvalidFilter, MdbUnavailable) }).annotate(
    Public,
    true
  ),
  Rpc.make("switches", { payload: { filters: Filters }, success: Schema.Array(Switch), error: Schema.Union(InvalidFilter, MdbUnavailable) }).annotate(
    Public,
    true
  ),
  Rpc.make("ansible", { success: Inventory, error: MdbUnavailable }).annotate(Public, true),
  Rpc.make("register", {
    payload: Registration,
    success: Schema.String,
    error: Schema.Union(RegistrationDisabled, RegistrationRateLimited, WriteErrors)
  }).annotate(Public, true),
  Rpc.make("settings", { success: Schema.Array(Setting), error: MdbUnavailable }).annotate(Public, true),
  Rpc.make("addMachine", { payload: NewMachine, success: Machine, error: WriteErrors }),
  Rpc.make("updateMachine", {
    payload: { hostname: Schema.String, changes: MachineChanges },
    success: Machine,
    error: Schema.Union(MachineNotFound, WriteErrors)
  }),
  Rpc.make("deleteMachine", { payload: { hostname: Schema.String }, success: Machine, error: Schema.Union(MachineNotFound, MdbUnavailable) }),
  Rpc.make("addSwitch", { payload: NewSwitch, success: Switch, error: Schema.Union(InvalidField, AlreadyTaken, MdbUnavailable) }),
  Rpc.make("deleteSwitch", { payload: { name: Schema.String }, success: Switch, error: Schema.Union(SwitchNotFound, MdbUnavailable) }),
  Rpc.make("setSetting", {
    payload: { key: Schema.String, value: SettingValue },
    success: Setting,
    error: Schema.Union(UnknownSetting, InvalidField, MdbUnavailable)
  })
).middleware(TimeAuth) {}
