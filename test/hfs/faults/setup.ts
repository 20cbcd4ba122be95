import { Redacted, Schema } from "effect"
import { HfsServerProfile } from "../../../src/actors/hfs/config.js"
import type { HfsMachine, HfsUser } from "../../../src/actors/hfs/directory.js"

// The two HFS of the migration fault suite, each its own process on lane hfs-perf's loopback
// addresses (127.0.11.1 and .2) with fixed ports (all HFS share their port numbers, as in
// production), and the client machines the user moves between.

export const faultMachines: ReadonlyArray<HfsMachine> = [
  { hostname: "rhfs0", ip: "127.0.11.1", hfs: 0, aliases: ["hfs0"] },
  { hostname: "rhfs1", ip: "127.0.11.2", hfs: 1, aliases: ["hfs1"] },
  { hostname: "pas-a", ip: "127.0.11.10", hfs: 0, aliases: [] },
  { hostname: "alt-b", ip: "127.0.11.11", hfs: 1, aliases: [] }
]
export const faultUsers: ReadonlyArray<HfsUser> = [{ login: "mover", uid: 12000, group: "user" }]
/** The client machine of each HFS. */
export const machineOf = ["pas-a", "alt-b"] as const
export const hostOf = ["127.0.11.1", "127.0.11.2"] as const

export const hfsSecret = Redacted.make("hfs-faults-secret")
export const statusSecret = Redacted.make("hfs-faults-status-secret")

export const faultProfile = Schema.decodeUnknownSync(HfsServerProfile)({
  bind: { "0": hostOf[0], "1": hostOf[1] },
  rpc_port: 21100,
  transfer_port: 21101,
  nbd_port: 21102,
  free_reserve: 0,
  live_grant_seconds: 0,
  quota: { user: "256M" },
  // no old copies kept; the sweep (which retires a copy whose row names the other HFS, e.g.
  // when the source was killed before it heard of the commit) every half second
  retention: { count: 0, sweep_seconds: 0.5 }
})
