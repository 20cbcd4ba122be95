import { randomBytes, timingSafeEqual } from "node:crypto"
import type { AccessDecision, ExportAccess } from "../../nbd/exports.js"

// Who may attach which home on an HFS's NBD listener (spec hfs.md weakness 2: the original's
// exports were named by login alone, on a guessable port, open to every machine).
//
// A grant (one per home, the latest) binds the home's generation to ONE machine and a
// per-grant secret. The client names the export
//
//     <login>@<generation>:<secret>          e.g. alice@7:3f9c…(32 hex digits)
//
// and the connection's peer address must be that machine's IP in MDB. The gate checks both
// before the export table sees the name (`alice@7`), which then applies the generation fence.
// Anything else is refused with a reason and counted. The secret is 128 random bits, fresh on
// every grant, and only ever sent to the HFS's authenticated `getHome` caller.

export interface Ticket {
  readonly login: string
  readonly generation: number
  readonly secret: string
  /** The granted machine's IP (MDB), compared with the NBD peer address. */
  readonly ip: string
  readonly hostname: string
  /** Clock millis of the grant or of its last renewal (the same machine asking again). */
  readonly grantedAt: number
  /**
   * A client was admitted since the grant or its renewal. Once it has attached, the grant is
   * live only while a connection stays: a logout (the client detaching) frees the home at once
   * for a login elsewhere, instead of after live_grant_seconds.
   */
  readonly attached?: boolean
}

export type RejectReason = "malformed" | "no_grant" | "wrong_machine" | "stale_generation" | "bad_secret"

export const exportNameOf = (t: Pick<Ticket, "login" | "generation" | "secret">): string => `${t.login}@${t.generation}:${t.secret}`

export const newSecret = (): string => randomBytes(16).toString("hex")

const WIRE = /^([a-z_][a-z0-9_]{0,30})@(0|[1-9][0-9]{0,15}):([0-9a-f]{32})$/

/** `::ffff:10.0.0.1` (an IPv4 peer on a dual-stack socket) is `10.0.0.1`. */
export const normalizePeer = (address: string): string => (address.startsWith("::ffff:") ? address.slice(7) : address)

export interface HomeAccess {
  readonly get: (login: string) => Ticket | undefined
  /** The home's new grant: every older one stops admitting at once. */
  readonly set: (ticket: Ticket) => void
  readonly delete: (login: string) => void
  readonly tickets: () => ReadonlyArray<Ticket>
  /** The listener's gate (NbdServerOptions.access). */
  readonly gate: ExportAccess
}

export const makeHomeAccess = (onRejected: (reason: RejectReason, peer: string, wireName: string) => void): HomeAccess => {
  const byLogin = new Map<string, Ticket>()
  const refuse = (reason: RejectReason, peer: string, wireName: string, text: string): AccessDecision => {
    onRejected(reason, peer, wireName)
    return { _tag: "Refuse", reason: text }
  }
  const gate: ExportAccess = (rawPeer, wireName) => {
    const peer = normalizePeer(rawPeer)
    const m = WIRE.exec(wireName)
    if (m === null) return refuse("malformed", peer, wireName, "expected a home export name LOGIN@GENERATION:SECRET")
    const login = m[1]!
    const generation = Number(m[2])
    const ticket = byLogin.get(login)
    if (ticket === undefined) return refuse("no_grant", peer, wireName, `the home of ${login} is not granted here`)
    if (peer !== ticket.ip) return refuse("wrong_machine", peer, wireName, `the home of ${login} is not granted to ${peer}`)
    if (generation !== ticket.generation) {
      return refuse("stale_generation", peer, wireName, `the home of ${login} is at generation ${ticket.generation}, not ${generation}`)
    }
    if (!timingSafeEqual(Buffer.from(m[3]!, "hex"), Buffer.from(ticket.secret, "hex"))) {
      return refuse("bad_secret", peer, wireName, `wrong secret for the home of ${login}`)
    }
    if (ticket.attached !== true) byLogin.set(login, { ...ticket, attached: true })
    return { _tag: "Allow", wireName: `${login}@${generation}` }
  }
  return {
    get: (login) => byLogin.get(login),
    set: (ticket) => void byLogin.set(ticket.login, ticket),
    delete: (login) => void byLogin.delete(login),
    tickets: () => [...byLogin.values()],
    gate
  }
}
