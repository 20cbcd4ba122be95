import { Either } from "effect"
import { type Group, ImportFileError, type User } from "../../protocols/udb.js"
import type { ImportFormat, ImportLine } from "./import-file.js"
import { firstFreeLogin } from "./login.js"

// Decides, for every line of an import file, what happens to whom, before any write.
// Unlike the original, generated logins also avoid users already in the database (a
// homonym imported last year keeps their login) — except the same person, recognised by
// the same first and last name, who is the one `--update`/`--ignore` talk about.

export interface ImportOptions {
  readonly format: ImportFormat
  readonly group: Group
  readonly update: boolean
  readonly ignore: boolean
  /** With `update`: give existing users a fresh password instead of keeping theirs. */
  readonly newPasswords: boolean
}

export type ExistingUser = Pick<User, "login" | "firstname" | "lastname" | "group" | "password">

/** An earlier line of the same file with the same first and last name (two people, or a line given twice). */
export interface SameName {
  readonly line: number
  readonly login: string
}

interface ActionBase {
  readonly line: number
  readonly login: string
  readonly firstname: string
  readonly lastname: string
  readonly sameNameAs?: SameName
}

export type ImportAction =
  | (ActionBase & { readonly kind: "add"; readonly password: string })
  | (ActionBase & { readonly kind: "update"; readonly password: string })
  | (ActionBase & { readonly kind: "ignore" })

const samePerson = (u: ExistingUser, l: ImportLine): boolean =>
  u.firstname.toLowerCase() === l.firstname.toLowerCase() && u.lastname.toLowerCase() === l.lastname.toLowerCase()

export const planImport = (
  file: string,
  lines: ReadonlyArray<ImportLine>,
  existing: ReadonlyMap<string, ExistingUser>,
  /** uid of a system account of the UDB node with that login, if any. */
  systemUid: (login: string) => number | undefined,
  options: ImportOptions,
  newPassword: () => string
): Either.Either<ReadonlyArray<ImportAction>, ImportFileError> => {
  const actions: Array<ImportAction> = []
  const produced = new Set<string>()
  const names = new Map<string, SameName>()
  for (const l of lines) {
    const fail = (message: string) => Either.left(new ImportFileError({ file, line: l.line, message: `${file}:${l.line}: ${message}` }))
    let login: string
    if (options.format.kind === "names") {
      const chosen = firstFreeLogin(l.login, (candidate) => {
        if (produced.has(candidate) || systemUid(candidate) !== undefined) return false
        const owner = existing.get(candidate)
        return owner === undefined || samePerson(owner, l)
      })
      if (chosen === undefined) return fail(`no free login left for ${l.firstname} ${l.lastname} (from ${l.login})`)
      login = chosen
    } else {
      login = l.login
      const uid = systemUid(login)
      if (uid !== undefined) {
        return fail(`Username ${login} is associated with uid ${uid}, which is likely a system-managed user.`)
      }
    }
    produced.add(login)
    const realname = `${l.firstname} ${l.lastname}`
    const nameKey = realname.toLowerCase()
    const earlier = names.get(nameKey)
    if (earlier === undefined) names.set(nameKey, { line: l.line, login })
    const base: ActionBase = { line: l.line, login, firstname: l.firstname, lastname: l.lastname, ...(earlier === undefined ? {} : { sameNameAs: earlier }) }
    const owner = existing.get(login)
    if (owner === undefined) {
      actions.push({ ...base, kind: "add", password: l.password ?? newPassword() })
    } else if (options.update) {
      const password = l.password ?? (options.newPasswords ? newPassword() : owner.password)
      actions.push({ ...base, kind: "update", password })
    } else if (options.ignore) {
      actions.push({ ...base, kind: "ignore" })
    } else {
      return fail(`User ${realname} already in database. Use --update to update it, or --ignore.`)
    }
  }
  return Either.right(actions)
}

/** The original's output line for an action, and a warning when the name was already on an earlier line. */
export const describeAction = (a: ImportAction): string => {
  const who = `${a.firstname} ${a.lastname} (login: ${a.login})`
  const same =
    a.sameNameAs === undefined
      ? ""
      : ` -- same name as line ${a.sameNameAs.line} (login: ${a.sameNameAs.login}): two people, or a line given twice?`
  switch (a.kind) {
    case "add":
      return `Added user ${who}${same}`
    case "update":
      return `Updated user ${who}${same}`
    case "ignore":
      return `(Ignored user ${who})${same}`
  }
}
