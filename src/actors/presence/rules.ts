import { Either } from "effect"
import {
  InvalidPresenceRequest,
  type LogoutReason,
  type RefusalReason
} from "../../protocols/presence.js"

// The login table and the original's login rules (spec presence.md §2), as pure functions so
// that every rule is tested without an actor, a clock or a database.
//
// Unlike the original the two maps can never disagree: a login holds exactly the host that
// names it back, so a user moving frees the previous host and expiry frees both.

export interface Lease {
  readonly login: string
  readonly hostname: string
  /** Epoch millis; the lease is live while now < expiresAt. */
  readonly expiresAt: number
  /** When the current holder got the host (epoch millis). */
  readonly since: number
  /** Last login or heartbeat (epoch millis), for the lease-age histogram. */
  readonly refreshedAt: number
}

/**
 * Mutable, owned by the PresenceActor alone. Mutated in place (copying two maps per heartbeat
 * was most of a decision's cost); a handler changes it only after the store accepted the
 * change, and a defect reloads it from the store.
 */
export interface Table {
  readonly byLogin: Map<string, Lease>
  readonly byHost: Map<string, string>
}

export const emptyTable = (): Table => ({ byLogin: new Map(), byHost: new Map() })

export const tableOf = (leases: Iterable<Lease>): Table => {
  const table = emptyTable()
  for (const lease of leases) assign(table, lease)
  return table
}

/** Sets `lease` (its login and host), dropping whatever the login or the host held before. */
export const assign = (table: Table, lease: Lease): Table => {
  const previous = table.byLogin.get(lease.login)
  if (previous !== undefined && previous.hostname !== lease.hostname) table.byHost.delete(previous.hostname)
  const occupant = table.byHost.get(lease.hostname)
  if (occupant !== undefined && occupant !== lease.login) table.byLogin.delete(occupant)
  table.byLogin.set(lease.login, lease)
  table.byHost.set(lease.hostname, lease.login)
  return table
}

export const release = (table: Table, logins: Iterable<string>): Table => {
  for (const login of logins) {
    const lease = table.byLogin.get(login)
    if (lease === undefined) continue
    table.byLogin.delete(login)
    if (table.byHost.get(lease.hostname) === login) table.byHost.delete(lease.hostname)
  }
  return table
}

/** Leases whose expiry has passed at `now` (the original: expiration <= now). */
export const dueLeases = (table: Table, now: number): ReadonlyArray<Lease> => {
  const due: Array<Lease> = []
  for (const lease of table.byLogin.values()) if (lease.expiresAt <= now) due.push(lease)
  return due
}

export const nextExpiry = (table: Table): number | undefined => {
  let next: number | undefined
  for (const lease of table.byLogin.values()) if (next === undefined || lease.expiresAt < next) next = lease.expiresAt
  return next
}

// ---- the facts the rules need, from the mdb and udb topics ----

export interface MachineFacts {
  readonly mtype: string
}

export interface UserFacts {
  readonly group: string
}

export interface Refusal {
  readonly reason: RefusalReason
  readonly message: string
}

// The original's texts, byte for byte: greeters and scripts show them.
export const refusalText = {
  already_logged: (login: string) => `${login} is already logged somewhere else`,
  busy: (hostname: string) => `${hostname} is busy`,
  machine_not_registered: (hostname: string) => `${hostname} is not a registered machine`,
  user_not_registered: (login: string) => `${login} is not a registered user`,
  user_not_allowed: (login: string, hostname: string) =>
    `${login} is not a kind of user that is allowed to log on ${hostname}`
} as const

const refuse = (reason: RefusalReason, message: string): Either.Either<never, Refusal> => Either.left({ reason, message })

/** What a login request needs to know before looking anything up. */
export type Occupancy = "here" | "elsewhere" | "busy" | "free"

/** Steps 3.1–3.3 of the original: decided from the table alone. */
export const occupancy = (table: Table, login: string, hostname: string): Occupancy => {
  const lease = table.byLogin.get(login)
  if (lease !== undefined) return lease.hostname === hostname ? "here" : "elsewhere"
  return table.byHost.has(hostname) ? "busy" : "free"
}

/**
 * The whole decision for a login on a free host: registered machine, registered user, and
 * contestants (group `user`) only on contestant machines (mtype `user`); orga and root anywhere.
 */
export const admit = (
  login: string,
  hostname: string,
  machine: MachineFacts | undefined,
  user: UserFacts | undefined
): Either.Either<void, Refusal> => {
  if (machine === undefined) return refuse("machine_not_registered", refusalText.machine_not_registered(hostname))
  if (user === undefined) return refuse("user_not_registered", refusalText.user_not_registered(login))
  if (user.group === "user" && machine.mtype !== "user") {
    return refuse("user_not_allowed", refusalText.user_not_allowed(login, hostname))
  }
  return Either.void
}

export const occupiedRefusal = (occ: "elsewhere" | "busy", login: string, hostname: string): Refusal =>
  occ === "elsewhere"
    ? { reason: "already_logged", message: refusalText.already_logged(login) }
    : { reason: "busy", message: refusalText.busy(hostname) }

export const logoutText: Record<LogoutReason, string> = {
  not_logged_in: "Requested logout but not logged in",
  wrong_host: "Requested logout from the wrong hostname"
}

// Logins and hostnames are looked up, stored and published: refuse what cannot be a name,
// so that garbage gets a precise error instead of "not a registered user".
const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$/

export const validateName = (
  field: "login" | "hostname",
  value: string
): Either.Either<string, InvalidPresenceRequest> =>
  NAME.test(value)
    ? Either.right(value)
    : Either.left(
        new InvalidPresenceRequest({
          field,
          value: value.length > 80 ? `${value.slice(0, 80)}…` : value,
          message: `invalid ${field} ${JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value)}: expected 1 to 63 characters A-Z a-z 0-9 _ . - (not starting with . or -)`
        })
      )

export const validateAssociation = (
  login: string,
  hostname: string
): Either.Either<{ readonly login: string; readonly hostname: string }, InvalidPresenceRequest> =>
  Either.all({ login: validateName("login", login), hostname: validateName("hostname", hostname) })
