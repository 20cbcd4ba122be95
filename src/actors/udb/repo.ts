import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Context, Effect, Either, Layer, Option, Schema } from "effect"
import {
  type Filters,
  type Group,
  GROUPS,
  InvalidFilter,
  UDB_SYNC_TOPIC,
  UidPoolExhausted,
  type User,
  UserExists,
  UserNotFound
} from "../../protocols/udb.js"
import { ChangeLog } from "../../store/change-log.js"
import { compileFilters, type FieldSpec, refusedFilter } from "../../store/filters.js"

// SQL access to the user table. Every write appends the user to the `udb` change log in the
// same transaction, so subscribers see exactly the committed changes, in commit order.

const Row = Schema.Struct({
  id: Schema.Int,
  login: Schema.String,
  firstname: Schema.String,
  lastname: Schema.String,
  uid: Schema.Int,
  user_group: Schema.Literal("user", "orga", "root"),
  password: Schema.String,
  shell: Schema.String,
  ssh_key: Schema.NullOr(Schema.String)
})
const decodeRows = Schema.decodeUnknown(Schema.Array(Row))

const INSERT_CHUNK = 100

/**
 * Fields `query` filters on: the original's whitelist, where `ssh_key` is usable (the original
 * split at the first `_`, which made it unusable).
 */
export const USER_FIELDS: Readonly<Record<string, FieldSpec>> = {
  login: { kind: "text", column: "login" },
  uid: { kind: "int", column: "uid" },
  group: { kind: "text", column: "user_group" },
  shell: { kind: "text", column: "shell" },
  ssh_key: { kind: "text", column: "ssh_key" },
  id: { kind: "int", column: "id" }
}

const toUser = ({ user_group, ...r }: typeof Row.Type): User => ({
  id: r.id,
  login: r.login,
  firstname: r.firstname,
  lastname: r.lastname,
  uid: r.uid,
  group: user_group,
  password: r.password,
  shell: r.shell,
  ssh_key: r.ssh_key
})

/** Everything stored about a user but the allocated uid (and the id, unless imported with one). */
export interface UserFields {
  readonly login: string
  readonly firstname: string
  readonly lastname: string
  readonly group: Group
  readonly password: string
  readonly shell: string
  readonly ssh_key: string | null
}

export interface WriteOptions {
  readonly publish?: boolean
}

export interface UdbRepoService {
  /** Users matching the original's Django-style `filters`, ordered by group, then login. */
  readonly query: (filters: Filters) => Effect.Effect<ReadonlyArray<User>, InvalidFilter | SqlError>
  /** `lock` takes the row lock until the end of the caller's transaction (read-modify-write). */
  readonly byLogin: (login: string, lock?: "lock") => Effect.Effect<Option.Option<User>, SqlError>
  /**
   * Allocates the next uid of the group's pool; `id` only for imports that keep their ids.
   * `publish: false` leaves the change-log entry to a later `publishUsers` (one revision per import).
   */
  readonly insert: (fields: UserFields, options?: WriteOptions & { readonly id?: number }) => Effect.Effect<User, UserExists | UidPoolExhausted | SqlError>
  /** Inserts users in one transaction (file order kept), allocating each group's uids in one go. */
  readonly insertMany: (
    entries: ReadonlyArray<{ readonly fields: UserFields; readonly id?: number }>,
    options?: WriteOptions
  ) => Effect.Effect<ReadonlyArray<User>, UserExists | UidPoolExhausted | SqlError>
  /** Replaces the mutable fields of `login` (uid, id and login never change). */
  readonly update: (login: string, fields: Omit<UserFields, "login">, options?: WriteOptions) => Effect.Effect<User, UserNotFound | SqlError>
  /** Appends these users to the change log as one revision. */
  readonly publishUsers: (users: ReadonlyArray<User>) => Effect.Effect<void, SqlError>
  readonly remove: (login: string) => Effect.Effect<User, UserNotFound | SqlError>
  /** Runs `effect` in one transaction (nested calls join it). */
  readonly transaction: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E | SqlError, R>
}

export class UdbRepo extends Context.Tag("prolo/udb/UdbRepo")<UdbRepo, UdbRepoService>() {}

const pgCode = (e: SqlError): string | undefined => {
  const cause = e.cause
  return typeof cause === "object" && cause !== null && "code" in cause ? String(cause.code) : undefined
}
const pgConstraint = (e: SqlError): string | undefined => {
  const cause = e.cause
  return typeof cause === "object" && cause !== null && "constraint" in cause ? String(cause.constraint) : undefined
}

// Rows we wrote ourselves failing their schema is a bug, not an input error.
const rows = <E, R>(query: Effect.Effect<ReadonlyArray<unknown>, E, R>) =>
  query.pipe(
    Effect.flatMap((r) => decodeRows(r)),
    Effect.catchTag("ParseError", (e) => Effect.die(e)),
    Effect.map((r) => r.map(toUser))
  )

export const make = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const changes = yield* ChangeLog

  const publish = (op: "update" | "delete", user: User) =>
    changes.append(UDB_SYNC_TOPIC, [{ op, key: user.login, record: user }])

  const query: UdbRepoService["query"] = (filters) =>
    Either.match(compileFilters(sql, USER_FIELDS, filters), {
      onLeft: (e): Effect.Effect<ReadonlyArray<User>, InvalidFilter | SqlError> =>
        Effect.fail(new InvalidFilter({ key: e.key, message: e.message })),
      onRight: (where) =>
        rows(sql`SELECT * FROM udb_user WHERE ${where} ORDER BY user_group, login`).pipe(
          // PostgreSQL may still refuse a value JS accepted (a regex dialect difference).
          Effect.catchTag("SqlError", (e): Effect.Effect<never, SqlError | InvalidFilter> =>
            Option.match(refusedFilter(filters, e.cause), {
              onNone: () => Effect.fail(e),
              onSome: (r) => Effect.fail(new InvalidFilter({ key: r.key, message: r.message }))
            })
          )
        )
    })

  const byLogin: UdbRepoService["byLogin"] = (login, lock) =>
    Effect.map(
      rows(sql`SELECT * FROM udb_user WHERE login = ${login} ${sql.literal(lock === undefined ? "" : "FOR UPDATE")}`),
      (r) => Option.fromNullable(r[0])
    )

  const publishUsers: UdbRepoService["publishUsers"] = (users) =>
    users.length === 0
      ? Effect.void
      : Effect.asVoid(changes.append(UDB_SYNC_TOPIC, users.map((u) => ({ op: "update" as const, key: u.login, record: u }))))

  // Takes `count` consecutive uids of the group's pool (the row lock serialises allocators).
  const allocateUids = (group: Group, count: number) =>
    Effect.gen(function* () {
      const [got] = yield* sql<{ first: number }>`
        UPDATE udb_uid_pool SET last = last + ${count}
        WHERE user_group = ${group} AND base + last + ${count} <= max_uid
        RETURNING base + last - ${count} + 1 AS first`
      if (got !== undefined) return got.first
      const [pool] = yield* sql<{ base: number; max_uid: number; last: number }>`
        SELECT base, max_uid, last FROM udb_uid_pool WHERE user_group = ${group}`
      const first = (pool?.base ?? 0) + 1
      const last = pool?.max_uid ?? 0
      const free = pool === undefined ? 0 : pool.max_uid - pool.base - pool.last
      return yield* new UidPoolExhausted({
        group,
        first,
        last,
        message:
          count === 1 || free === 0
            ? `no uid left for group ${group}: its pool ${first}-${last} is used up (uids of deleted users are not reused)`
            : `not enough uids left for group ${group}: ${count} needed, ${free} free in its pool ${first}-${last} (uids of deleted users are not reused)`
      })
    })

  // Two concurrent creates of one login: the loser hits the unique index.
  const loginTaken = (e: SqlError): string | undefined => {
    if (pgCode(e) !== "23505" || pgConstraint(e) !== "udb_user_login_key") return undefined
    const cause = e.cause
    const detail = typeof cause === "object" && cause !== null && "detail" in cause ? String(cause.detail) : ""
    return /\(login\)=\((.*)\)/.exec(detail)?.[1] ?? ""
  }

  const insertMany: UdbRepoService["insertMany"] = (entries, options = {}) =>
    sql.withTransaction(
      Effect.gen(function* () {
        const uids = new Map<Group, number>()
        for (const group of GROUPS) {
          const count = entries.filter((e) => e.fields.group === group).length
          if (count > 0) uids.set(group, yield* allocateUids(group, count))
        }
        const values = entries.map(({ fields: f, id }) => {
          const uid = uids.get(f.group)!
          uids.set(f.group, uid + 1)
          return {
            ...(id === undefined ? {} : { id }),
            login: f.login,
            firstname: f.firstname,
            lastname: f.lastname,
            uid,
            user_group: f.group,
            password: f.password,
            shell: f.shell,
            ssh_key: f.ssh_key
          }
        })
        const byLogin = new Map<string, User>()
        // Bounded statements: a 1000-user import is 10 inserts, not 1000 and not one giant one.
        for (let i = 0; i < values.length; i += INSERT_CHUNK) {
          const chunk = values.slice(i, i + INSERT_CHUNK)
          for (const u of yield* rows(sql`INSERT INTO udb_user ${sql.insert(chunk)} RETURNING *`)) byLogin.set(u.login, u)
        }
        if (entries.some((e) => e.id !== undefined)) {
          yield* sql`SELECT setval(pg_get_serial_sequence('udb_user', 'id'), GREATEST((SELECT max(id) FROM udb_user), 1))`
        }
        const users = entries.map((e) => byLogin.get(e.fields.login)!)
        if (options.publish !== false) yield* publishUsers(users)
        return users
      })
    ).pipe(
      Effect.catchIf(
        (e): e is SqlError => e._tag === "SqlError" && loginTaken(e) !== undefined,
        (e) => Effect.fail(exists(loginTaken(e) || (entries[0]?.fields.login ?? "")))
      )
    )

  const exists = (login: string) => new UserExists({ login, message: `User ${login} already in database` })

  const insert: UdbRepoService["insert"] = (fields, options = {}) =>
    Effect.map(
      insertMany([options.id === undefined ? { fields } : { fields, id: options.id }], options.publish === undefined ? {} : { publish: options.publish }),
      (users) => users[0]!
    )

  const update: UdbRepoService["update"] = (login, f, options = {}) =>
    sql.withTransaction(
      Effect.gen(function* () {
        const [user] = yield* rows(sql`
          UPDATE udb_user SET firstname = ${f.firstname}, lastname = ${f.lastname}, user_group = ${f.group},
            password = ${f.password}, shell = ${f.shell}, ssh_key = ${f.ssh_key}
          WHERE login = ${login} RETURNING *`)
        if (user === undefined) return yield* new UserNotFound({ login, message: `no user ${login}` })
        if (options.publish !== false) yield* publish("update", user)
        return user
      })
    )

  const remove: UdbRepoService["remove"] = (login) =>
    sql.withTransaction(
      Effect.gen(function* () {
        const [user] = yield* rows(sql`DELETE FROM udb_user WHERE login = ${login} RETURNING *`)
        if (user === undefined) return yield* new UserNotFound({ login, message: `no user ${login}` })
        yield* publish("delete", user)
        return user
      })
    )

  return UdbRepo.of({ query, byLogin, insert, insertMany, update, publishUsers, remove, transaction: sql.withTransaction })
})

export const layer: Layer.Layer<UdbRepo, never, SqlClient.SqlClient | ChangeLog> = Layer.effect(UdbRepo, make)
