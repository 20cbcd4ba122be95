import { randomBytes } from "node:crypto"
import { removeNamespaces, sh } from "./netns.js"

// Three network namespaces of our own for the gateway's forwarding tests: `user` (the LAN
// machines, several addresses on one interface) — `gw` (interfaces named `lan` and `uplink` as
// in etc/firewall/iptables.rules, forwarding on) — `outside`. Names start with `pf-`, addresses
// are in 10.16.0.0/16 (this lane's range); `remove` kills what runs inside and deletes them.

export interface Routed {
  readonly gw: string
  readonly user: string
  readonly outside: string
  readonly exec: (ns: string) => ReadonlyArray<string>
  readonly remove: () => Promise<void>
}

export const GW_LAN = "10.16.1.254"
export const OUTSIDE = "10.16.8.1"

export const makeRouted = async (userAddrs: ReadonlyArray<string>): Promise<Routed> => {
  const tag = randomBytes(3).toString("hex")
  const gw = `pf-gw-${tag}`
  const user = `pf-user-${tag}`
  const outside = `pf-out-${tag}`
  const exec = (ns: string) => ["ip", "netns", "exec", ns]
  const remove = () => removeNamespaces([user, outside, gw])
  try {
    for (const ns of [gw, user, outside]) {
      await sh(["ip", "netns", "add", ns])
      await sh([...exec(ns), "ip", "link", "set", "lo", "up"])
    }
    await sh(["ip", "link", "add", `pfl${tag}`, "netns", gw, "type", "veth", "peer", "name", `pfu${tag}`, "netns", user])
    await sh(["ip", "link", "add", `pfo${tag}`, "netns", gw, "type", "veth", "peer", "name", `pfx${tag}`, "netns", outside])
    await sh([...exec(gw), "ip", "link", "set", `pfl${tag}`, "name", "lan"])
    await sh([...exec(gw), "ip", "link", "set", `pfo${tag}`, "name", "uplink"])
    await sh([...exec(gw), "ip", "addr", "add", `${GW_LAN}/23`, "dev", "lan"])
    await sh([...exec(gw), "ip", "addr", "add", "10.16.8.254/24", "dev", "uplink"])
    await sh([...exec(gw), "ip", "link", "set", "lan", "up"])
    await sh([...exec(gw), "ip", "link", "set", "uplink", "up"])
    await sh([...exec(gw), "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
    for (const a of userAddrs) await sh([...exec(user), "ip", "addr", "add", `${a}/23`, "dev", `pfu${tag}`])
    await sh([...exec(user), "ip", "link", "set", `pfu${tag}`, "up"])
    await sh([...exec(user), "ip", "route", "add", "default", "via", GW_LAN])
    await sh([...exec(outside), "ip", "addr", "add", `${OUTSIDE}/24`, "dev", `pfx${tag}`])
    await sh([...exec(outside), "ip", "link", "set", `pfx${tag}`, "up"])
  } catch (e) {
    await remove()
    throw e
  }
  return { gw, user, outside, exec, remove }
}
