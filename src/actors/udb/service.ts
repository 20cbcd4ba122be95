import type { SqlError } from "@effect/sql/SqlError"
import { Context, Effect, Either, Layer, Option } from "effect"
import {
  type Filters,
  type InvalidFilter,
  InvalidUser,
  type NewUser,
  type PublicUser,
  SystemLogin,
  toPublic,
  type UidPoolExhausted,
  UdbUnavailable,
  type User,
  type UserChanges,
  type UserExists,
  UserNotFound
} from "../../protocols/udb.js"
import { generatePassword } from "./password.js"
import { UdbRepo, type UserFields } from "./repo.js"
import { SystemAccounts } from "./system-accounts.js"

// The rules of the user database on top of the repository: field checks, system logins,
// generated passwords. RPC handlers and the operator CLI both go through here.

export const DEFAULT_PASSWORD_LENGTH = 8
export const DEFAULT_SHELL = "/bin/bash"

export interface UdbService {
  /** Users matching `filters`, without passwords (public). */
  readonly query: (filters: Filters) => Effect.Effect<ReadonlyArray<PublicUser>, InvalidFilter | UdbUnavailable>
  /** Same, with clear-text passwords (callers hold the private secret). */
  readonly queryPrivate: (filters: Filters) => Effect.Effect<ReadonlyArray<User>, InvalidFilter | UdbUnavailable>
  readonly create: (user: NewUser) => Effect.Effect<User, InvalidUser | SystemLogin | UserExists | UidPoolExhausted | UdbUnavailable>
  readonly update: (login: string, changes: UserChanges) => Effect.Effect<User, InvalidUser | UserNotFound | UdbUnavailable>
  readonly remove: (login: string) => Effect.Effect<User, UserNotFound | UdbUnavailable>
  /** Sets the password, or a fresh one of the default length when `password` is absent. */
  readonly setPassword: (login: string, password?: string) => Effect.Effect<User, InvalidUser | UserNotFound | UdbUnavailable>
  readonly setSshKey: (login: string, key: string | null) => Effect.Effect<User, InvalidUser | UserNotFound | UdbUnavailable>
}

export class Udb extends Context.Tag("prolo/udb/Udb")<Udb, UdbService>() {}

const SHELL = /^\/[^\s:]*$/
// Characters that would corrupt passwd lines or password sheets downstream.
const BREAKS_LINES = /[:\n\r\t\x00]/

/** Checks and normalises the stored fields of a user (login already checked by its Schema). */
export const checkFields = (f: UserFields): Either.Either<UserFields, InvalidUser> => {
  const bad = (field: string, message: string) => Either.left(new InvalidUser({ login: f.login, field, message: `${f.login}: ${field} ${message}` }))
  for (const field of ["firstname", "lastname"] as const) {
    if (f[field].trim() === "") return bad(field, "is empty")
    if (BREAKS_LINES.test(f[field])) return bad(field, "contains ':', a tab or a line break")
  }
  if (!SHELL.test(f.shell)) return bad("shell", `must be an absolute path without spaces or ':', got ${JSON.stringify(f.shell)}`)
  if (f.password === "") return bad("password", "is empty")
  if (/[\n\r\t\x00]/.test(f.password)) return bad("password", "contains a tab or a line break")
  const key = f.ssh_key?.trim() ?? ""
  return Either.right({ ...f, firstname: f.firstname.trim(), lastname: f.lastname.trim(), ssh_key: key === "" ? null : key })
}

const unavailable = (e: SqlError) => new UdbUnavailable({ message: `user database unavailable: ${e.message}` })

export const make = Effect.gen(function* () {
  const repo = yield* UdbRepo
  const system = yield* SystemAccounts

  const queryPrivate: UdbService["queryPrivate"] = (filters) =>
    repo.query(filters).pipe(
      Effect.catchTag("SqlError", (e) => Effect.fail(unavailable(e)))
    )

  const query: UdbService["query"] = (filters) => Effect.map(queryPrivate(filters), (users) => users.map(toPublic))

  const systemLogin = (login: string) =>
    Effect.flatMap(system.load, (accounts) => {
      const uid = accounts.get(login)
      return uid === undefined
        ? Effect.void
        : Effect.fail(
            new SystemLogin({
              login,
              uid,
              message: `Username ${login} is associated with uid ${uid}, which is likely a system-managed user.`
            })
          )
    })

  const create: UdbService["create"] = (u) =>
    Effect.gen(function* () {
      yield* systemLogin(u.login)
      const fields = yield* checkFields({
        login: u.login,
        firstname: u.firstname,
        lastname: u.lastname,
        group: u.group,
        password: u.password ?? generatePassword(DEFAULT_PASSWORD_LENGTH),
        shell: u.shell ?? DEFAULT_SHELL,
        ssh_key: u.ssh_key ?? null
      })
      return yield* repo.insert(fields)
    }).pipe(Effect.catchTag("SqlError", (e) => Effect.fail(unavailable(e))))

  const update: UdbService["update"] = (login, changes) =>
    repo
      .transaction(
        Effect.gen(function* () {
          const current = yield* repo.byLogin(login, "lock")
          if (Option.isNone(current)) return yield* new UserNotFound({ login, message: `no user ${login}` })
          const { login: _login, ...fields } = yield* checkFields({
            login,
            firstname: changes.firstname ?? current.value.firstname,
            lastname: changes.lastname ?? current.value.lastname,
            group: changes.group ?? current.value.group,
            password: changes.password ?? current.value.password,
            shell: changes.shell ?? current.value.shell,
            ssh_key: changes.ssh_key === undefined ? current.value.ssh_key : changes.ssh_key
          })
          return yield* repo.update(login, fields)
        })
      )
      .pipe(Effect.catchTag("SqlError", (e) => Effect.fail(unavailable(e))))

  const remove: UdbService["remove"] = (login) => repo.remove(login).pipe(Effect.catchTag("SqlError", (e) => Effect.fail(unavailable(e))))

  return Udb.of({
    query,
    queryPrivate,
    create,
    update,
    remove,
    setPassword: (login, password) => update(login, { password: password ?? generatePassword(DEFAULT_PASSWORD_LENGTH) }),
    setSshKey: (login, key) => update(login, { ssh_key: key })
  })
})

export const layer: Layer.Layer<Udb, never, UdbRepo | SystemAccounts> = Layer.effect(Udb, make)
