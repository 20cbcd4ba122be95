import { Schema } from "effect"

// Parsers and renderers of the four shadow-utils account files. Every entry keeps its
// original text (`raw`) so that accounts we do not manage are written back byte for byte.

/** Names shadow-utils accepts (login or group), plus the Samba machine-account `$` suffix. */
const NAME = /^[A-Za-z0-9_.][A-Za-z0-9_.-]*\$?$/
const NUMBER = /^[0-9]+$/

export class UnparsableLine extends Schema.TaggedError<UnparsableLine>()("UnparsableLine", {
  file: Schema.String,
  line: Schema.Int,
  text: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `${this.file}:${this.line}: ${this.reason}: ${JSON.stringify(this.text)}`
  }
}

export interface PasswdEntry {
  readonly login: string
  readonly password: string
  readonly uid: number
  readonly gid: number
  readonly gecos: string
  readonly home: string
  readonly shell: string
  readonly raw: string
}

export interface ShadowEntry {
  readonly login: string
  /** Everything after `login:`. */
  readonly rest: string
  readonly hash: string
  readonly raw: string
}

export interface GroupEntry {
  readonly name: string
  readonly password: string
  readonly gid: number
  readonly members: ReadonlyArray<string>
  readonly raw: string
}

export interface GshadowEntry {
  readonly name: string
  readonly password: string
  readonly admins: ReadonlyArray<string>
  readonly members: ReadonlyArray<string>
  readonly raw: string
}

type Parsed<A> = { readonly entries: ReadonlyArray<A> } | { readonly error: UnparsableLine }

// Blank lines carry no account; everything else must parse or the whole file is refused.
const parseLines = <A>(
  file: string,
  text: string,
  parse: (fields: ReadonlyArray<string>) => A | string
): Parsed<A> => {
  const entries: Array<A> = []
  const lines = text.split("\n")
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!
    if (line.trim() === "") continue
    const result = parse(line.split(":"))
    if (typeof result === "string") {
      return { error: new UnparsableLine({ file, line: i + 1, text: line, reason: result }) }
    }
    entries.push(result)
  }
  return { entries }
}

const names = (list: string, what: string): ReadonlyArray<string> | string => {
  if (list === "") return []
  const items = list.split(",")
  const bad = items.find((n) => !NAME.test(n))
  return bad === undefined ? items : `invalid ${what} name ${JSON.stringify(bad)}`
}

export const parsePasswd = (text: string, file = "passwd"): Parsed<PasswdEntry> =>
  parseLines(file, text, (f) => {
    if (f.length !== 7) return `expected 7 colon-separated fields, got ${f.length}`
    const [login, password, uid, gid, gecos, home, shell] = f as [string, string, string, string, string, string, string]
    if (!NAME.test(login)) return `invalid login ${JSON.stringify(login)}`
    if (!NUMBER.test(uid)) return `uid is not a number`
    if (!NUMBER.test(gid)) return `gid is not a number`
    if (home === "") return "empty home directory"
    return { login, password, uid: Number(uid), gid: Number(gid), gecos, home, shell, raw: f.join(":") }
  })

export const parseShadow = (text: string, file = "shadow"): Parsed<ShadowEntry> =>
  parseLines(file, text, (f) => {
    if (f.length !== 9) return `expected 9 colon-separated fields, got ${f.length}`
    const login = f[0]!
    if (!NAME.test(login)) return `invalid login ${JSON.stringify(login)}`
    const raw = f.join(":")
    return { login, rest: raw.slice(login.length + 1), hash: f[1]!, raw }
  })

export const parseGroup = (text: string, file = "group"): Parsed<GroupEntry> =>
  parseLines(file, text, (f) => {
    if (f.length !== 4) return `expected 4 colon-separated fields, got ${f.length}`
    const [name, password, gid, memberList] = f as [string, string, string, string]
    if (!NAME.test(name)) return `invalid group name ${JSON.stringify(name)}`
    if (!NUMBER.test(gid)) return `gid is not a number`
    const members = names(memberList, "member")
    if (typeof members === "string") return members
    return { name, password, gid: Number(gid), members, raw: f.join(":") }
  })

export const parseGshadow = (text: string, file = "gshadow"): Parsed<GshadowEntry> =>
  parseLines(file, text, (f) => {
    if (f.length !== 4) return `expected 4 colon-separated fields, got ${f.length}`
    const [name, password, adminList, memberList] = f as [string, string, string, string]
    if (!NAME.test(name)) return `invalid group name ${JSON.stringify(name)}`
    const admins = names(adminList, "administrator")
    if (typeof admins === "string") return admins
    const members = names(memberList, "member")
    if (typeof members === "string") return members
    return { name, password, admins, members, raw: f.join(":") }
  })

export const renderPasswd = (e: Omit<PasswdEntry, "raw">): string =>
  [e.login, e.password, e.uid, e.gid, e.gecos, e.home, e.shell].join(":")

export const renderGroup = (e: Omit<GroupEntry, "raw">): string =>
  [e.name, e.password, e.gid, e.members.join(",")].join(":")

export const renderGshadow = (e: Omit<GshadowEntry, "raw">): string =>
  [e.name, e.password, e.admins.join(","), e.members.join(",")].join(":")

export const joinLines = (lines: ReadonlyArray<string>): string => (lines.length === 0 ? "" : `${lines.join("\n")}\n`)
