import { isIP } from "node:net"
import type { SyncRecord } from "../../protocols/sync.js"

// The whois table: client IP → login of the user logged on that machine, rebuilt in memory from
// the followed mdb and presence topics (no database query per request: nginx asks on every
// protected request). Unlike the original, whose follower thread could die and leave it
// answering old data forever, every answer first checks that both topics were heard from
// recently (any frame, progress included); past the threshold it answers `stale`, never a
// possibly wrong user.

export type WhoisResult = "user" | "unknown" | "stale"

export interface WhoisAnswer {
  readonly result: WhoisResult
  /** The login for `X-SSO-User`, on `user` only. */
  readonly user?: string
  /** `X-SSO-Status`: the original's texts for known and unknown machines. */
  readonly status: string
}

/** A followed topic's freshness: `Clock` millis of its last frame, undefined before the first. */
export interface Freshness {
  readonly topic: string
  readonly lastFrameAt: () => number | undefined
}

export interface Whois {
  readonly setMachines: (state: ReadonlyMap<string, SyncRecord>) => void
  readonly setPresence: (state: ReadonlyMap<string, SyncRecord>) => void
  /** Seconds since the least recently heard topic spoke (since `startedAt` if one never did). */
  readonly staleness: (now: number) => number
  readonly answer: (ip: string, now: number) => WhoisAnswer
  /** Machines with a login now (tests, /__actors). */
  readonly size: () => number
}

const text = (record: SyncRecord, field: string): string | undefined => {
  const value = record[field]
  return typeof value === "string" && value !== "" ? value : undefined
}

export const makeWhois = (options: {
  readonly overrides: Readonly<Record<string, string>>
  readonly staleAfterMs: number
  readonly sources: ReadonlyArray<Freshness>
  readonly startedAt: number
}): Whois => {
  const overrides = new Map(Object.entries(options.overrides))
  let machines: ReadonlyArray<readonly [ip: string, hostname: string]> = []
  let loginByHost = new Map<string, string>()
  let loginByIp = new Map<string, string>()

  // As the original: every MDB IP gets the override of its hostname, else the login presence
  // has there. IPs no longer in MDB go too (the original kept them forever).
  const rebuild = () => {
    const next = new Map<string, string>()
    for (const [ip, hostname] of machines) {
      const login = overrides.get(hostname) ?? loginByHost.get(hostname)
      if (login !== undefined) next.set(ip, login)
    }
    loginByIp = next
  }

  const staleness = (now: number): number => {
    let worst = 0
    for (const source of options.sources) {
      const at = source.lastFrameAt() ?? options.startedAt
      worst = Math.max(worst, now - at)
    }
    return worst / 1000
  }

  const staleWhy = (now: number): string | undefined => {
    for (const source of options.sources) {
      const at = source.lastFrameAt()
      if (at === undefined) return `stale: nothing received yet from the ${source.topic} topic`
      if (now - at > options.staleAfterMs) return `stale: nothing from the ${source.topic} topic for ${Math.round((now - at) / 1000)} s`
    }
    return undefined
  }

  return {
    setMachines: (state) => {
      const list: Array<readonly [string, string]> = []
      for (const record of state.values()) {
        const ip = text(record, "ip")
        const hostname = text(record, "hostname")
        if (ip !== undefined && hostname !== undefined) list.push([ip, hostname])
      }
      machines = list
      rebuild()
    },
    setPresence: (state) => {
      const next = new Map<string, string>()
      for (const record of state.values()) {
        const login = text(record, "login")
        const hostname = text(record, "hostname")
        if (login !== undefined && hostname !== undefined) next.set(hostname, login)
      }
      loginByHost = next
      rebuild()
    },
    staleness,
    answer: (ip, now) => {
      const stale = staleWhy(now)
      if (stale !== undefined) return { result: "stale", status: stale }
      const login = loginByIp.get(ip)
      if (login !== undefined) return { result: "user", user: login, status: `working: machine ${ip} has login ${login}` }
      if (isIP(ip) === 0) return { result: "unknown", status: `unknown: ${JSON.stringify(ip.slice(0, 64))} is not an IP address` }
      return { result: "unknown", status: `unknown: machine ${ip} has no login` }
    },
    size: () => loginByIp.size
  }
}
