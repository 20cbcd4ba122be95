import { Either } from "effect"
import { ImportFileError } from "../../protocols/udb.js"
import { baseLogin, isValidLogin, titleCase, toAscii } from "./login.js"

// Parsing of `prolo udb import` files (the original batchimport formats, spec udb.md §3).
// The whole file is checked before anything is written: the first bad line is reported
// with its number and nothing is imported.

export type ImportFormat =
  /** `First name<TAB>Last name` per line; logins are generated. */
  | { readonly kind: "names" }
  /** One login per line, or `login:password` with `passwords`. */
  | { readonly kind: "logins"; readonly passwords: boolean }

export interface ImportLine {
  readonly line: number
  /** Title-cased, accents kept (names mode); the title-cased login in logins mode. */
  readonly firstname: string
  readonly lastname: string
  /** Names mode: the generated login before de-duplication; logins mode: the login itself. */
  readonly login: string
  readonly password?: string
}

/**
 * The text of an import file, or the first line that is not UTF-8 (a Latin-1 `René` used to
 * be stored as `Ren\uFFFD`): `file:3: not UTF-8 (byte 0xe9 at column 4); …`.
 */
export const decodeUtf8File = (file: string, bytes: Uint8Array): Either.Either<string, string> => {
  try {
    return Either.right(new TextDecoder("utf-8", { fatal: true }).decode(bytes))
  } catch {
    // Where: the lenient decoder marks each bad sequence with U+FFFD.
    const lines = new TextDecoder("utf-8").decode(bytes).split("\n")
    const index = lines.findIndex((l) => l.includes("\uFFFD"))
    const text = lines[index] ?? ""
    const column = text.indexOf("\uFFFD")
    const lineStart = lines.slice(0, index).reduce((n, l) => n + Buffer.byteLength(l) + 1, 0)
    const bad = bytes[lineStart + Buffer.byteLength(text.slice(0, column))] ?? 0
    return Either.left(
      `${file}:${index + 1}: not UTF-8 (byte 0x${bad.toString(16).padStart(2, "0")} at column ${column + 1}); ` +
        "convert the file first, e.g. iconv -f latin1 -t utf-8"
    )
  }
}

const MAX_NAME = 64
const MAX_PASSWORD = 64

export const parseImportFile = (
  file: string,
  text: string,
  format: ImportFormat
): Either.Either<ReadonlyArray<ImportLine>, ImportFileError> => {
  const out: Array<ImportLine> = []
  const loginLine = new Map<string, number>()
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/)
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!
    const line = i + 1
    const fail = (message: string) => Either.left(new ImportFileError({ file, line, message: `${file}:${line}: ${message}` }))
    if (raw.trim() === "") continue
    if (format.kind === "names") {
      const parts = raw.split("\t")
      if (parts.length !== 2) {
        return fail(`expected "First name<TAB>Last name" (exactly one TAB), got ${parts.length - 1} TABs`)
      }
      const [first, last] = parts.map((p) => p.trim()) as [string, string]
      if (first === "" || last === "") return fail("empty first or last name")
      if (first.length > MAX_NAME || last.length > MAX_NAME) return fail(`names are limited to ${MAX_NAME} characters`)
      const login = baseLogin(first, last)
      if (!isValidLogin(login)) {
        return fail(`cannot make a login from ${JSON.stringify(`${first} ${last}`)} (no latin letters)`)
      }
      out.push({ line, firstname: titleCase(first), lastname: titleCase(last), login })
      continue
    }
    let loginText = raw.trim()
    let password: string | undefined
    if (format.passwords) {
      const colon = loginText.indexOf(":")
      if (colon < 0) return fail(`expected "login:password"`)
      password = loginText.slice(colon + 1)
      loginText = loginText.slice(0, colon).trim()
      if (password === "") return fail("empty password")
      if (password.length > MAX_PASSWORD) return fail(`passwords are limited to ${MAX_PASSWORD} characters`)
    }
    const login = toAscii(loginText).toLowerCase()
    if (!isValidLogin(login)) {
      return fail(`invalid login ${JSON.stringify(loginText)}: expected 1 to 31 characters a-z, 0-9, _ (not starting with a digit)`)
    }
    if (login === "root") return fail(`the login "root" is reserved`)
    const previous = loginLine.get(login)
    if (previous !== undefined) return fail(`login ${login} already given on line ${previous}`)
    loginLine.set(login, line)
    const name = titleCase(login)
    out.push(password === undefined ? { line, firstname: name, lastname: name, login } : { line, firstname: name, lastname: name, login, password })
  }
  return Either.right(out)
}
