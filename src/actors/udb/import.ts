import type { SqlError } from "@effect/sql/SqlError"
import { Effect, Either, Schema } from "effect"
import {
  type Group,
  ImportFileError,
  Login,
  type UidPoolExhausted,
  UdbUnavailable,
  type User,
  type UserExists,
  type UserNotFound
} from "../../protocols/udb.js"
import { type ImportLine, parseImportFile } from "./import-file.js"
import { titleCase } from "./login.js"
import { describeAction, type ImportAction, type ImportOptions, planImport } from "./import-plan.js"
import { generatePassword, MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH } from "./password.js"
import { UdbRepo, type UserFields } from "./repo.js"
import { checkFields, DEFAULT_SHELL } from "./service.js"
import { SystemAccounts } from "./system-accounts.js"

// `prolo udb import` and `prolo udb json-import`: validate the whole input, then apply it in
// one transaction published as one change-log revision (subscribers regenerate once).

export type Progress = (done: number, total: number) => Effect.Effect<void>

const PROGRESS_CHUNK = 50

export type ImportError = ImportFileError | UserExists | UserNotFound | UidPoolExhausted | UdbUnavailable

export const checkPasswordLength = (file: string, length: number): Either.Either<number, ImportFileError> =>
  Number.isInteger(length) && length >= MIN_PASSWORD_LENGTH && length <= MAX_PASSWORD_LENGTH
    ? Either.right(length)
    : Either.left(
        new ImportFileError({
          file,
          line: 0,
          message: `--pwdlen must be an integer from ${MIN_PASSWORD_LENGTH} to ${MAX_PASSWORD_LENGTH}, got ${length}`
        })
      )

const unavailable = (e: SqlError) => new UdbUnavailable({ message: `user database unavailable: ${e.message}` })

// No filter, so no InvalidFilter.
const allUsers = Effect.flatMap(UdbRepo, (repo) => repo.query({})).pipe(Effect.catchTag("InvalidFilter", Effect.die))

/** Fields of the user an action writes, checked with the line number in the error. */
const fieldsOf = (
  file: string,
  a: Exclude<ImportAction, { kind: "ignore" }>,
  group: Group,
  existing: User | undefined
): Either.Either<UserFields, ImportFileError> =>
  Either.mapLeft(
    checkFields({
      login: a.login,
      firstname: a.firstname,
      lastname: a.lastname,
      group,
      password: a.password,
      shell: existing?.shell ?? DEFAULT_SHELL,
      ssh_key: existing?.ssh_key ?? null
    }),
    (e) => new ImportFileError({ file, line: a.line, message: `${file}:${a.line}: ${e.message}` })
  )

/**
 * Imports `text` (the content of `file`); returns the original's output lines, in file
 * order, once the transaction has committed. Nothing is written when anything fails.
 */
export const importUsers = (
  file: string,
  text: string,
  options: ImportOptions & { readonly passwordLength: number },
  progress: Progress = () => Effect.void
): Effect.Effect<ReadonlyArray<string>, ImportError, UdbRepo | SystemAccounts> =>
  Effect.gen(function* () {
    const repo = yield* UdbRepo
    const pwdlen = yield* checkPasswordLength(file, options.passwordLength)
    if (options.update && options.ignore) {
      return yield* new ImportFileError({ file, line: 0, message: "--update and --ignore exclude each other" })
    }
    const lines: ReadonlyArray<ImportLine> = yield* parseImportFile(file, text, options.format)
    const existing = new Map((yield* allUsers).map((u) => [u.login, u]))
    const system = yield* Effect.flatMap(SystemAccounts, (s) => s.load)
    const actions = yield* planImport(file, lines, existing, (l) => system.get(l), options, () => generatePassword(pwdlen))
    const writes: Array<{ action: Exclude<ImportAction, { kind: "ignore" }>; fields: UserFields }> = []
    for (const a of actions) {
      if (a.kind === "ignore") continue
      writes.push({ action: a, fields: yield* fieldsOf(file, a, options.group, existing.get(a.login)) })
    }
    yield* repo.transaction(
      Effect.gen(function* () {
        const written: Array<User> = []
        let done = 0
        // Chunks keep each statement bounded and let a long import report progress.
        for (let i = 0; i < writes.length; i += PROGRESS_CHUNK) {
          const chunk = writes.slice(i, i + PROGRESS_CHUNK)
          const adds = chunk.filter((w) => w.action.kind === "add").map((w) => ({ fields: w.fields }))
          if (adds.length > 0) written.push(...(yield* repo.insertMany(adds, { publish: false })))
          for (const w of chunk) {
            if (w.action.kind === "update") written.push(yield* repo.update(w.fields.login, w.fields, { publish: false }))
          }
          done += chunk.length
          yield* progress(done, writes.length)
        }
        yield* repo.publishUsers(written)
      })
    )
    return actions.map(describeAction)
  }).pipe(Effect.catchTag("SqlError", (e) => Effect.fail(unavailable(e))))

/** One element of a `json-import` file (the original jsonimport format). */
export const JsonImportUser = Schema.Struct({
  id: Schema.Int.pipe(Schema.positive()),
  username: Login,
  first_name: Schema.String,
  last_name: Schema.String,
  password: Schema.optional(Schema.String)
})
export type JsonImportUser = typeof JsonImportUser.Type

/**
 * `json-import`: creates every user of the JSON array with its given id, in one transaction.
 * Unlike the original, an id or login already in the database is refused (it overwrote the row).
 */
export const importJson = (
  file: string,
  text: string,
  options: { readonly group: Group; readonly passwordLength: number }
): Effect.Effect<ReadonlyArray<string>, ImportError, UdbRepo | SystemAccounts> =>
  Effect.gen(function* () {
    const repo = yield* UdbRepo
    const pwdlen = yield* checkPasswordLength(file, options.passwordLength)
    const fail = (index: number, message: string) =>
      new ImportFileError({ file, line: index, message: `${file}: [${index}]: ${message}` })
    const json = yield* Effect.try({
      try: () => JSON.parse(text) as unknown,
      catch: (e) => new ImportFileError({ file, line: 0, message: `${file}: not JSON: ${e instanceof Error ? e.message : String(e)}` })
    })
    if (!Array.isArray(json)) return yield* new ImportFileError({ file, line: 0, message: `${file}: expected a JSON array of users` })
    const existing = yield* allUsers
    const ids = new Set(existing.map((u) => u.id))
    const logins = new Set(existing.map((u) => u.login))
    const system = yield* Effect.flatMap(SystemAccounts, (s) => s.load)
    const writes: Array<{ id: number; fields: UserFields }> = []
    for (const [index, item] of json.entries()) {
      const decoded = Schema.decodeUnknownEither(JsonImportUser)(item)
      if (Either.isLeft(decoded)) return yield* fail(index, `expected {id, username, first_name, last_name, password?}: ${decoded.left.message.split("\n").slice(-1)[0]}`)
      const u = decoded.right
      if (ids.has(u.id)) return yield* fail(index, `id ${u.id} already in use`)
      if (logins.has(u.username)) return yield* fail(index, `User ${u.username} already in database`)
      const uid = system.get(u.username)
      if (uid !== undefined) return yield* fail(index, `Username ${u.username} is associated with uid ${uid}, which is likely a system-managed user.`)
      ids.add(u.id)
      logins.add(u.username)
      const fields = checkFields({
        login: u.username,
        firstname: titleCase(u.first_name),
        lastname: titleCase(u.last_name),
        group: options.group,
        password: u.password ?? generatePassword(pwdlen),
        shell: DEFAULT_SHELL,
        ssh_key: null
      })
      if (Either.isLeft(fields)) return yield* fail(index, fields.left.message)
      writes.push({ id: u.id, fields: fields.right })
    }
    yield* repo.insertMany(writes.map((w) => ({ fields: w.fields, id: w.id })))
    return [
      ...writes.map(
        (w) =>
          `Adding ${options.group} ${String(w.id).padStart(8)} ${w.fields.login.padEnd(20)} ${w.fields.lastname.padEnd(20)} ${w.fields.firstname}`
      ),
      "All users added successfully."
    ]
  }).pipe(Effect.catchTag("SqlError", (e) => Effect.fail(unavailable(e))))
