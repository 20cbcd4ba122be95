import { Rpc, RpcGroup } from "@effect/rpc"
import { Schema } from "effect"
import { TimeAuth } from "../runtime/rpc-auth.js"

// Wire contract of the home file servers (the original `/get_hfs`, now authenticated: the
// original's endpoints were open, and trusted the HFS id and user type sent by the client).
//
// `getHome(login, hostname)`: the HFS derives everything else itself (the machine's HFS and
// IP from MDB, the user's group, uid and quota from UDB) and answers where to attach the
// home over NBD. The export name is `<login>@<generation>:<secret>` (src/actors/hfs/README.md):
// only that machine's IP, with that secret, at that generation, may attach it.

/** `getHome` (PAM, other HFS): signed with `hfs-client.yml`'s secret. */
export const HFS_SERVICE = "hfs"
/** `where`, `list`, `status` (operators, the web map): signed with `hfs-status.yml`'s secret. */
export const HFS_STATUS_SERVICE = "hfs-status"
/** Change-log topic of the normal home set; the contest set uses `hfscontest`. */
export const HFS_TOPIC = "hfs"
export const HFS_CONTEST_TOPIC = "hfscontest"

export const LocationState = Schema.Literal("ready", "migrating")
export type LocationState = typeof LocationState.Type

/** One row of `hfs_location`: where a home lives, and its fencing generation. */
export const Location = Schema.Struct({
  login: Schema.String,
  hfs: Schema.Int,
  generation: Schema.Int,
  state: LocationState,
  /** The destination HFS while `state` is `migrating`. */
  migrate_to: Schema.NullOr(Schema.Int),
  contest: Schema.Boolean
})
export type Location = typeof Location.Type

/** What `getHome` answers: attach `export` on `host:port` with an NBD client. */
export const HomeGrant = Schema.Struct({
  host: Schema.String,
  port: Schema.Int,
  export: Schema.String,
  generation: Schema.Int
})
export type HomeGrant = typeof HomeGrant.Type

/** A home currently granted by an HFS (operator view). */
export const ServedHome = Schema.Struct({
  login: Schema.String,
  hostname: Schema.String,
  ip: Schema.String,
  generation: Schema.Int,
  connections: Schema.Int
})

/** One HFS instance of a node (`prolo hfs status`). */
export const HfsStatus = Schema.Struct({
  hfs: Schema.Int,
  /** `null` while the HFS still waits for its `hfs<id>` alias in MDB. */
  host: Schema.NullOr(Schema.String),
  rpcPort: Schema.NullOr(Schema.Int),
  nbdPort: Schema.NullOr(Schema.Int),
  contest: Schema.Boolean,
  served: Schema.Array(ServedHome)
})
export type HfsStatus = typeof HfsStatus.Type

// ---- errors: each names what an operator or PAM needs; none changed anything -------------

/** A login or hostname that cannot name anything (`/`, `..`, empty, too long). */
export class InvalidHfsRequest extends Schema.TaggedError<InvalidHfsRequest>()("InvalidHfsRequest", {
  field: Schema.String,
  value: Schema.String,
  message: Schema.String
}) {}

export class UnknownUser extends Schema.TaggedError<UnknownUser>()("UnknownUser", {
  login: Schema.String,
  message: Schema.String
}) {}

export class UnknownMachine extends Schema.TaggedError<UnknownMachine>()("UnknownMachine", {
  hostname: Schema.String,
  message: Schema.String
}) {}

/** The machine belongs to another HFS (its MDB `hfs` field): ask that one. */
export class WrongHfs extends Schema.TaggedError<WrongHfs>()("WrongHfs", {
  hostname: Schema.String,
  machineHfs: Schema.Int,
  message: Schema.String
}) {}

/** The home lives on another HFS and moving it is not possible here (yet, or in progress). */
export class HomeElsewhere extends Schema.TaggedError<HomeElsewhere>()("HomeElsewhere", {
  login: Schema.String,
  hfs: Schema.Int,
  message: Schema.String
}) {}

export class HomeNotFound extends Schema.TaggedError<HomeNotFound>()("HomeNotFound", {
  login: Schema.String,
  message: Schema.String
}) {}

/** Not enough free space for a new home (sparse-aware, with the configured reserve). */
export class OutOfSpace extends Schema.TaggedError<OutOfSpace>()("OutOfSpace", {
  hfs: Schema.Int,
  neededBytes: Schema.Number,
  availableBytes: Schema.Number,
  message: Schema.String
}) {}

/** Creating a new home failed (mke2fs, the skeleton, the file system); nothing was kept. */
export class HomeCreationFailed extends Schema.TaggedError<HomeCreationFailed>()("HomeCreationFailed", {
  login: Schema.String,
  message: Schema.String
}) {}

/** The HFS cannot decide now (database down, MDB/UDB not loaded yet, overloaded). Nothing changed; retry. */
export class HfsUnavailable extends Schema.TaggedError<HfsUnavailable>()("HfsUnavailable", {
  message: Schema.String
}) {}

/**
 * The home is attached (or was just granted) on a machine: it is not moved under a live client
 * (spec hfs.md weakness 16). The user logs out there first, or the grant expires.
 */
export class HomeInUse extends Schema.TaggedError<HomeInUse>()("HomeInUse", {
  login: Schema.String,
  hfs: Schema.Int,
  hostname: Schema.String,
  message: Schema.String
}) {}

export const GetHomeError = Schema.Union(
  InvalidHfsRequest,
  HomeNotFound,
  UnknownUser,
  UnknownMachine,
  WrongHfs,
  HomeElsewhere,
  OutOfSpace,
  HomeCreationFailed,
  HomeInUse,
  HfsUnavailable
)
export type GetHomeError = typeof GetHomeError.Type

/** What the source HFS answers a destination that asked to move a home (see src/actors/hfs/README.md, Migration). */
export const Handover = Schema.Struct({
  /** The generation the home is fenced at; the transfer token and the commit are bound to it. */
  generation: Schema.Int,
  /** The source's transfer listener (its own address, `transfer_port`). */
  host: Schema.String,
  port: Schema.Int
})
export type Handover = typeof Handover.Type

export const MigrateError = Schema.Union(
  InvalidHfsRequest,
  HomeNotFound,
  UnknownUser,
  WrongHfs,
  HomeElsewhere,
  HomeInUse,
  OutOfSpace,
  HfsUnavailable
)
export type MigrateError = typeof MigrateError.Type

/** Changes homes: every rpc needs a token made with `hfs-client.yml`'s secret. */
export class HfsRpcs extends RpcGroup.make(
  Rpc.make("getHome", {
    payload: { login: Schema.String, hostname: Schema.String },
    success: HomeGrant,
    error: GetHomeError
  }),
  /** HFS `to` → the home's HFS: fence the home and open it to `to`'s transfer (server → server). */
  Rpc.make("handOver", {
    payload: { login: Schema.String, to: Schema.Int },
    success: Handover,
    error: MigrateError
  }),
  /** The new HFS → the old one: the row now names the new HFS; retire the old copy. */
  Rpc.make("movedAway", {
    payload: { login: Schema.String },
    success: Schema.Void,
    error: Schema.Union(InvalidHfsRequest, HfsUnavailable)
  }),
  /** Operators (`prolo hfs migrate LOGIN --to ID`): move a home to HFS `to` now, without granting it. */
  Rpc.make("migrate", {
    payload: { login: Schema.String, to: Schema.Int },
    success: Location,
    error: MigrateError
  })
).middleware(TimeAuth) {}

/** Reads only: every rpc needs a token made with `hfs-status.yml`'s secret. */
export class HfsStatusRpcs extends RpcGroup.make(
  Rpc.make("where", {
    payload: { login: Schema.String },
    success: Location,
    error: Schema.Union(InvalidHfsRequest, HomeNotFound, HfsUnavailable)
  }),
  Rpc.make("list", { success: Schema.Array(Location), error: HfsUnavailable }),
  Rpc.make("status", { success: Schema.Array(HfsStatus) })
).middleware(TimeAuth) {}
