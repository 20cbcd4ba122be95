import { isIPv4 } from "node:net"
import type { SyncRecord } from "../../protocols/sync.js"

// Who may reach the internet, as the original presencesync_firewall computed it: the machines
// of logged-in users whose group is allowed, plus every orga machine. Where the original raised
// on a login unknown to UDB (and so aborted the whole update, leaving the last set in place
// until some later change), that login is left out and reported: one bad record never keeps
// everyone else's access stale.

export interface AllowedHosts {
  /** IPv4 addresses, sorted, each once. */
  readonly ips: ReadonlyArray<string>
  /** Logged-in logins UDB does not know (left out). */
  readonly unknownLogins: ReadonlyArray<string>
  /** Logged-in hosts MDB does not know, or whose IP is not IPv4 (left out). */
  readonly unknownHosts: ReadonlyArray<string>
}

const text = (record: SyncRecord, field: string): string | undefined => {
  const value = record[field]
  return typeof value === "string" && value !== "" ? value : undefined
}

export const allowedHosts = (input: {
  readonly machines: ReadonlyMap<string, SyncRecord>
  readonly users: ReadonlyMap<string, SyncRecord>
  readonly presence: ReadonlyMap<string, SyncRecord>
  readonly groups: ReadonlySet<string>
}): AllowedHosts => {
  const ipByHost = new Map<string, string>()
  const ips = new Set<string>()
  for (const m of input.machines.values()) {
    const hostname = text(m, "hostname")
    const ip = text(m, "ip")
    if (hostname === undefined || ip === undefined || !isIPv4(ip)) continue
    // the original took the first machine with that hostname
    if (!ipByHost.has(hostname)) ipByHost.set(hostname, ip)
    if (text(m, "mtype") === "orga") ips.add(ip)
  }
  const groupOf = new Map<string, string>()
  for (const u of input.users.values()) {
    const login = text(u, "login")
    const group = text(u, "group")
    if (login !== undefined && group !== undefined) groupOf.set(login, group)
  }
  const unknownLogins: Array<string> = []
  const unknownHosts: Array<string> = []
  for (const p of input.presence.values()) {
    const login = text(p, "login")
    const hostname = text(p, "hostname")
    if (login === undefined || hostname === undefined) continue
    const group = groupOf.get(login)
    if (group === undefined) {
      unknownLogins.push(login)
      continue
    }
    if (!input.groups.has(group)) continue
    const ip = ipByHost.get(hostname)
    if (ip === undefined) unknownHosts.push(hostname)
    else ips.add(ip)
  }
  return { ips: [...ips].sort(), unknownLogins, unknownHosts }
}
