import { Either, Schema } from "effect"
import type { Group, HashedUser } from "../../protocols/udb.js"
import {
  type GroupEntry,
  type GshadowEntry,
  joinLines,
  parseGroup,
  parseGshadow,
  parsePasswd,
  parseShadow,
  type PasswdEntry,
  renderGroup,
  renderGshadow,
  renderPasswd,
  type ShadowEntry,
  UnparsableLine
} from "./account-files.js"

// Regeneration of passwd/shadow/group(/gshadow) from the current files and the UDB users
// (original udbsync_passwd, spec udb.md §5.1), as a pure function: the follower reads the
// files, calls `regenerate`, and writes back only what changed.

/** uids managed by the UDB on every node; anything else in the local files is kept verbatim. */
export const MANAGED_UID_MIN = 10000
export const MANAGED_UID_MAX = 19999
export const isManagedUid = (uid: number): boolean => uid >= MANAGED_UID_MIN && uid <= MANAGED_UID_MAX

/** Gids used when a managed group is missing; an existing group of that name keeps its own gid. */
export const DEFAULT_GROUP_GIDS = { wheel: 10, user: 10000, orga: 10001 } as const
export type ManagedGroup = keyof typeof DEFAULT_GROUP_GIDS

/** Local groups of a UDB group, primary first. */
export const GROUPS_OF: Record<Group, ReadonlyArray<ManagedGroup>> = {
  user: ["user"],
  orga: ["orga", "user"],
  root: ["wheel", "orga", "user"]
}

export const DAY_MS = 86_400_000

export interface AccountTexts {
  readonly passwd: string
  readonly shadow: string
  readonly group: string
  /** `null` when the root has no gshadow file (then none is written). */
  readonly gshadow: string | null
}

export interface RegenerateInput {
  readonly current: AccountTexts
  /**
   * The users as the udb topic's `hashes` audience sends them: the hub computes each
   * `password_hash` (SHA-512-crypt, the same hash while the password stays the same), so no clear
   * password reaches this machine.
   */
  readonly users: ReadonlyArray<HashedUser>
  /** Days since 1970-01-01 (UTC), written as the last password change of new hashes. */
  readonly today: number
  readonly groupGids?: Partial<Record<ManagedGroup, number>>
}

export interface SkippedUser {
  readonly login: string
  readonly reason: string
}

export interface RegenerateOutput {
  readonly files: AccountTexts
  readonly skipped: ReadonlyArray<SkippedUser>
  /** Users whose shadow hash changed (new user or changed password). */
  readonly rehashed: ReadonlyArray<string>
}

export class InconsistentAccounts extends Schema.TaggedError<InconsistentAccounts>()("InconsistentAccounts", {
  message: Schema.String
}) {}

export type RegenerateError = UnparsableLine | InconsistentAccounts

// A field that would break the colon/newline format of the files.
const FIELD_BREAKER = /[:\n\r]/

const unusable = (u: HashedUser): string | undefined => {
  if (!isManagedUid(u.uid)) return `uid ${u.uid} is outside the managed range ${MANAGED_UID_MIN}-${MANAGED_UID_MAX}`
  if (FIELD_BREAKER.test(u.shell) || u.shell === "") return `unusable shell ${JSON.stringify(u.shell)}`
  if (FIELD_BREAKER.test(u.password_hash) || u.password_hash === "") return `unusable password hash`
  return undefined
}

const gecosOf = (u: HashedUser): string => `${u.firstname} ${u.lastname}`.replace(/[:\n\r]/g, " ")

const byNumber = <A>(key: (a: A) => number) => (a: A, b: A): number => key(a) - key(b)

export const regenerate = (input: RegenerateInput): Either.Either<RegenerateOutput, RegenerateError> => {
  const passwdParsed = parsePasswd(input.current.passwd)
  if ("error" in passwdParsed) return Either.left(passwdParsed.error)
  const shadowParsed = parseShadow(input.current.shadow)
  if ("error" in shadowParsed) return Either.left(shadowParsed.error)
  const groupParsed = parseGroup(input.current.group)
  if ("error" in groupParsed) return Either.left(groupParsed.error)
  let gshadowEntries: ReadonlyArray<GshadowEntry> | null = null
  if (input.current.gshadow !== null) {
    const parsed = parseGshadow(input.current.gshadow)
    if ("error" in parsed) return Either.left(parsed.error)
    gshadowEntries = parsed.entries
  }

  // Local accounts stay as they are; previously managed ones are rebuilt from the UDB.
  const kept = passwdParsed.entries.filter((e) => !isManagedUid(e.uid))
  const keptLogins = new Set(kept.map((e) => e.login))
  const previouslyManaged = new Set(passwdParsed.entries.filter((e) => isManagedUid(e.uid)).map((e) => e.login))
  const oldShadow = new Map<string, ShadowEntry>(shadowParsed.entries.map((e) => [e.login, e]))

  // Managed groups: reuse the local gid of a group of that name, create it otherwise.
  const groups = [...groupParsed.entries]
  const gidOf = new Map<ManagedGroup, number>()
  for (const name of Object.keys(DEFAULT_GROUP_GIDS) as Array<ManagedGroup>) {
    const existing = groups.find((g) => g.name === name)
    if (existing !== undefined) {
      gidOf.set(name, existing.gid)
      continue
    }
    const gid = input.groupGids?.[name] ?? DEFAULT_GROUP_GIDS[name]
    const holder = groups.find((g) => g.gid === gid)
    if (holder !== undefined) {
      return Either.left(
        new InconsistentAccounts({
          message: `cannot create group ${name} with gid ${gid}: that gid belongs to group ${holder.name}; create group ${name} locally`
        })
      )
    }
    groups.push({ name, password: "x", gid, members: [], raw: renderGroup({ name, password: "x", gid, members: [] }) })
    gidOf.set(name, gid)
  }

  const skipped: Array<SkippedUser> = []
  const rehashed: Array<string> = []
  const managed: Array<{ entry: Omit<PasswdEntry, "raw">; shadow: string; groups: ReadonlyArray<ManagedGroup> }> = []
  const seenUids = new Map<number, string>()
  for (const u of [...input.users].sort((a, b) => (a.login < b.login ? -1 : a.login > b.login ? 1 : 0))) {
    const problem = keptLogins.has(u.login)
      ? `login is a local account of this machine`
      : seenUids.has(u.uid)
        ? `uid ${u.uid} already used by ${seenUids.get(u.uid)}`
        : unusable(u)
    if (problem !== undefined) {
      skipped.push({ login: u.login, reason: problem })
      continue
    }
    seenUids.set(u.uid, u.login)
    const memberOf = GROUPS_OF[u.group]
    const entry = {
      login: u.login,
      password: "x",
      uid: u.uid,
      gid: gidOf.get(memberOf[0]!)!,
      gecos: gecosOf(u),
      home: `/home/${u.login}`,
      shell: u.shell
    }
    const previous = oldShadow.get(u.login)
    let shadow: string
    // The same hash: the line stays, with its date of last change (stable files).
    if (previous !== undefined && previouslyManaged.has(u.login) && previous.hash === u.password_hash) {
      shadow = previous.raw
    } else {
      shadow = `${u.login}:${u.password_hash}:${input.today}:0:99999:7:0::`
      rehashed.push(u.login)
    }
    managed.push({ entry, shadow, groups: memberOf })
  }

  const managedLogins = new Set(managed.map((m) => m.entry.login))
  // A login leaves every group when it stops being ours; local accounts' memberships stay.
  const isOurs = (login: string): boolean => !keptLogins.has(login) && (previouslyManaged.has(login) || managedLogins.has(login))

  const passwdRows = [
    ...kept.map((e) => ({ uid: e.uid, login: e.login, line: e.raw })),
    ...managed.map((m) => ({ uid: m.entry.uid, login: m.entry.login, line: renderPasswd(m.entry) }))
  ].sort(byNumber((r) => r.uid))
  const uidOf = new Map(passwdRows.map((r) => [r.login, r.uid]))

  const shadowOf = new Map<string, string>()
  for (const e of shadowParsed.entries) if (keptLogins.has(e.login)) shadowOf.set(e.login, e.raw)
  for (const m of managed) shadowOf.set(m.entry.login, m.shadow)
  const shadowLines = passwdRows.flatMap((r) => {
    const line = shadowOf.get(r.login)
    return line === undefined ? [] : [line]
  })
  // Shadow lines of no passwd account are local business: keep them, after the others.
  const orphanShadow = shadowParsed.entries.filter((e) => !uidOf.has(e.login) && !isOurs(e.login)).map((e) => e.raw)

  const missingShadow = managed.find((m) => !shadowOf.has(m.entry.login))
  if (missingShadow !== undefined) {
    return Either.left(new InconsistentAccounts({ message: `no shadow entry generated for ${missingShadow.entry.login}` }))
  }

  const addedTo = new Map<string, Array<string>>()
  for (const m of managed) {
    for (const g of m.groups) addedTo.set(g, [...(addedTo.get(g) ?? []), m.entry.login])
  }
  const sortMembers = (members: ReadonlyArray<string>): ReadonlyArray<string> =>
    [...new Set(members)].sort((a, b) => {
      const ua = uidOf.get(a) ?? Number.MAX_SAFE_INTEGER
      const ub = uidOf.get(b) ?? Number.MAX_SAFE_INTEGER
      return ua !== ub ? ua - ub : a < b ? -1 : a > b ? 1 : 0
    })
  const newMembers = (name: string, members: ReadonlyArray<string>): ReadonlyArray<string> | undefined => {
    const filtered = members.filter((m) => !isOurs(m))
    const added = addedTo.get(name) ?? []
    if (filtered.length === members.length && added.length === 0) return undefined
    return sortMembers([...filtered, ...added])
  }

  const groupLines = groups
    .map((g): GroupEntry => {
      const members = newMembers(g.name, g.members)
      return members === undefined ? g : { ...g, members, raw: renderGroup({ ...g, members }) }
    })
    .sort(byNumber((g) => g.gid))
  const finalGroupMembers = new Map(groupLines.map((g) => [g.name, g.members]))

  let gshadow: string | null = null
  if (gshadowEntries !== null) {
    const present = new Set(gshadowEntries.map((e) => e.name))
    const entries: Array<GshadowEntry> = gshadowEntries.map((e) => {
      const admins = e.admins.filter((a) => !isOurs(a))
      const members = newMembers(e.name, e.members)
      if (members === undefined && admins.length === e.admins.length) return e
      const next = { ...e, admins, members: members ?? e.members }
      return { ...next, raw: renderGshadow(next) }
    })
    for (const name of Object.keys(DEFAULT_GROUP_GIDS) as Array<ManagedGroup>) {
      if (present.has(name)) continue
      const members = finalGroupMembers.get(name) ?? []
      entries.push({ name, password: "!", admins: [], members, raw: renderGshadow({ name, password: "!", admins: [], members }) })
    }
    const order = new Map(groupLines.map((g, i) => [g.name, i]))
    const rank = (e: GshadowEntry): number => order.get(e.name) ?? Number.MAX_SAFE_INTEGER
    gshadow = joinLines([...entries].sort((a, b) => rank(a) - rank(b)).map((e) => e.raw))
  }

  return Either.right({
    files: {
      passwd: joinLines(passwdRows.map((r) => r.line)),
      shadow: joinLines([...shadowLines, ...orphanShadow]),
      group: joinLines(groupLines.map((g) => g.raw)),
      gshadow
    },
    skipped,
    rehashed
  })
}
