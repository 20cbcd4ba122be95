import { Rpc, RpcGroup } from "@effect/rpc"
import { Schema } from "effect"
import { Public, TimeAuth } from "../runtime/rpc-auth.js"
import { Filters, InvalidFilter } from "./query-filters.js"

export { Filters, InvalidFilter }

// Wire contract of the user database. Field names are the original's `to_dict` keys
// (`group`, `ssh_key`) so that `/call/query` answers stay byte-compatible.

export const LOGIN_PATTERN = /^[a-z_][a-z0-9_]{0,30}$/

export const Group = Schema.Literal("user", "orga", "root")
export type Group = typeof Group.Type
export const GROUPS: ReadonlyArray<Group> = ["user", "orga", "root"]

export const Login = Schema.String.pipe(
  Schema.pattern(LOGIN_PATTERN, {
    message: () => "a login of 1 to 31 characters a-z, 0-9, _ (not starting with a digit)"
  })
)

const bounded = (max: number) =>
  Schema.String.pipe(Schema.maxLength(max, { message: () => `at most ${max} characters` }))

/** A user as stored (clear-text password, as the original: the operator reads it back for password sheets). */
export const User = Schema.Struct({
  id: Schema.Int,
  login: Login,
  firstname: bounded(64),
  lastname: bounded(64),
  uid: Schema.Int,
  group: Group,
  password: bounded(64),
  shell: bounded(64),
  ssh_key: Schema.NullOr(bounded(4096))
})
export type User = typeof User.Type

/** The original `to_dict` order of a user's fields (`/poll` lines of the udb topic show it). */
export const USER_FIELD_ORDER: ReadonlyArray<string> = ["login", "firstname", "lastname", "uid", "group", "password", "shell", "ssh_key", "id"]

/** What `query` and public subscribers of the udb topic get: the user without `password`. */
export const PublicUser = User.pipe(Schema.omit("password"))
export type PublicUser = typeof PublicUser.Type

export const toPublic = ({ password: _password, ...rest }: User): PublicUser => rest

/** Fields an administrator sets when creating a user; uid and id are allocated by the server. */
export const NewUser = Schema.Struct({
  login: Login,
  firstname: bounded(64),
  lastname: bounded(64),
  group: Group,
  password: Schema.optional(bounded(64)),
  shell: Schema.optional(bounded(64)),
  ssh_key: Schema.optional(Schema.NullOr(bounded(4096)))
})
export type NewUser = typeof NewUser.Type

/** Partial update of an existing user, addressed by login (login and uid never change). */
export const UserChanges = Schema.Struct({
  firstname: Schema.optional(bounded(64)),
  lastname: Schema.optional(bounded(64)),
  group: Schema.optional(Group),
  password: Schema.optional(bounded(64)),
  shell: Schema.optional(bounded(64)),
  ssh_key: Schema.optional(Schema.NullOr(bounded(4096)))
})
export type UserChanges = typeof UserChanges.Type

export class UserNotFound extends Schema.TaggedError<UserNotFound>()("UserNotFound", {
  login: Schema.String,
  message: Schema.String
}) {}

export class UserExists extends Schema.TaggedError<UserExists>()("UserExists", {
  login: Schema.String,
  message: Schema.String
}) {}

/** A login that names a system account of the UDB node (uid < 1000 or 60000–65533). */
export class SystemLogin extends Schema.TaggedError<SystemLogin>()("SystemLogin", {
  login: Schema.String,
  uid: Schema.Int,
  message: Schema.String
}) {}

export class UidPoolExhausted extends Schema.TaggedError<UidPoolExhausted>()("UidPoolExhausted", {
  group: Group,
  first: Schema.Int,
  last: Schema.Int,
  message: Schema.String
}) {}

export class InvalidUser extends Schema.TaggedError<InvalidUser>()("InvalidUser", {
  login: Schema.String,
  field: Schema.String,
  message: Schema.String
}) {}

/** The database could not be reached; nothing was changed. */
export class UdbUnavailable extends Schema.TaggedError<UdbUnavailable>()("UdbUnavailable", {
  message: Schema.String
}) {}

/** A line of an import file (or an element of a JSON import) is wrong; nothing was imported. */
export class ImportFileError extends Schema.TaggedError<ImportFileError>()("ImportFileError", {
  file: Schema.String,
  /** 1-based line (or array index for JSON); 0 when the problem is not tied to one line. */
  line: Schema.Int,
  message: Schema.String
}) {}

export const UdbError = Schema.Union(
  InvalidFilter,
  UserNotFound,
  UserExists,
  SystemLogin,
  UidPoolExhausted,
  InvalidUser,
  UdbUnavailable,
  ImportFileError
)
export type UdbError = typeof UdbError.Type

/** Sync topic carrying users, keyed by login (the original udbsync). */
export const UDB_SYNC_TOPIC = "udb"

/**
 * Who reads the udb topic: `public` subscribers (subscriber secret) get users without any
 * password material; `hashes` subscribers (the shadow secret, passwd sync on every machine) get
 * `password_hash`, a SHA-512-crypt hash computed by the hub, in place of `password`. No
 * audience gets the clear password (the original sent it to every subscriber): it leaves UDB
 * only through `query_private` with the UDB secret and the operator's password sheet.
 */
export type UdbAudience = "public" | "hashes"

/** A user as the `hashes` audience of the udb topic sees it: what /etc/passwd and /etc/shadow need. */
export const HashedUser = Schema.Struct({
  ...User.omit("password").fields,
  password_hash: Schema.String.pipe(
    Schema.pattern(/^\$6\$[./0-9A-Za-z]{1,16}\$[./0-9A-Za-z]{86}$/, { message: () => "a SHA-512-crypt hash ($6$salt$hash)" })
  )
})
export type HashedUser = typeof HashedUser.Type

/**
 * The udb topic's record filter, given the hub's hasher (`hash(login, password)`, stable per
 * password). Keeps the field order: `password_hash` takes `password`'s place.
 */
export const udbRecordFilter =
  (hash: (login: string, password: string) => string) =>
  <R extends Readonly<Record<string, unknown>>>(audience: UdbAudience, record: R): R => {
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(record)) {
      if (k === "password_hash") continue
      if (k !== "password") out[k] = v
      else if (audience === "hashes" && typeof v === "string" && typeof record["login"] === "string") {
        out["password_hash"] = hash(record["login"], v)
      }
    }
    return out as R
  }

/** `prolo udb import`: the file travels whole; the server validates it all before writing. */
export const ImportRequest = Schema.Struct({
  file: Schema.String,
  text: Schema.String,
  format: Schema.Literal("names", "logins"),
  /** With `logins`: lines are `login:password`. */
  passwords: Schema.Boolean,
  group: Group,
  passwordLength: Schema.Int,
  update: Schema.Boolean,
  ignore: Schema.Boolean,
  /** With `update`: existing users get a fresh password instead of keeping theirs. */
  newPasswords: Schema.Boolean
})
export type ImportRequest = typeof ImportRequest.Type

export const ImportProgress = Schema.TaggedStruct("Progress", { done: Schema.Int, total: Schema.Int })
/** The original's output lines (`Added user … (login: …)`), sent once the import committed. */
export const ImportDone = Schema.TaggedStruct("Done", { lines: Schema.Array(Schema.String) })
export const ImportEvent = Schema.Union(ImportProgress, ImportDone)
export type ImportEvent = typeof ImportEvent.Type

export const JsonImportRequest = Schema.Struct({
  file: Schema.String,
  text: Schema.String,
  group: Group,
  passwordLength: Schema.Int
})
export type JsonImportRequest = typeof JsonImportRequest.Type

const ImportErrors = Schema.Union(ImportFileError, UserExists, UserNotFound, UidPoolExhausted, UdbUnavailable)
const WriteErrors = Schema.Union(InvalidUser, UserNotFound, UdbUnavailable)

/**
 * The UDB rpc group, mounted at `/rpc/udb`; every rpc but `query` needs a token made with
 * `udb-client-auth.yml: shared_secret`.
 */
export class UdbRpcs extends RpcGroup.make(
  Rpc.make("query", {
    payload: { filters: Filters },
    success: Schema.Array(PublicUser),
    error: Schema.Union(InvalidFilter, UdbUnavailable)
  }).annotate(Public, true),
  Rpc.make("query_private", {
    payload: { filters: Filters },
    success: Schema.Array(User),
    error: Schema.Union(InvalidFilter, UdbUnavailable)
  }),
  Rpc.make("createUser", {
    payload: NewUser,
    success: User,
    error: Schema.Union(InvalidUser, SystemLogin, UserExists, UidPoolExhausted, UdbUnavailable)
  }),
  Rpc.make("updateUser", { payload: { login: Schema.String, changes: UserChanges }, success: User, error: WriteErrors }),
  Rpc.make("deleteUser", { payload: { login: Schema.String }, success: User, error: Schema.Union(UserNotFound, UdbUnavailable) }),
  /** Without `password`, a fresh one of the default length. */
  Rpc.make("setPassword", { payload: { login: Schema.String, password: Schema.optional(Schema.String) }, success: User, error: WriteErrors }),
  Rpc.make("setSshKey", { payload: { login: Schema.String, ssh_key: Schema.NullOr(Schema.String) }, success: User, error: WriteErrors }),
  Rpc.make("importUsers", { payload: ImportRequest, success: ImportEvent, error: ImportErrors, stream: true }),
  Rpc.make("importJson", { payload: JsonImportRequest, success: Schema.Array(Schema.String), error: ImportErrors })
).middleware(TimeAuth) {}

/** The service name the group is mounted under (`/rpc/udb`) and the TimeAuth scope. */
export const UDB_SERVICE = "udb"
