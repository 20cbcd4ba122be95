import { Redacted, Schema } from "effect"
import { HfsServerProfile } from "../../../src/actors/hfs/config.js"
import type { HfsMachine, HfsUser } from "../../../src/actors/hfs/directory.js"

// The two HFS of the migration fault suite, each its own process on lane hfs-perf's loopback
// addresses (127.0.11.1 and .2) with fixed ports (all HFS share their port numbers, as in
// production), and the client machines the user moves between.
//   HFS_FAULTS_HOST (default 1): the last octet of HFS 0's address; HFS 1 is the next one, the
//   client machines +9 and +10 (another lane of 127.0.11.x can run the suite beside CI).
const host0 = Number(process.env["HFS_FAULTS_HOST"] ?? "1")
const ip = (n: number) => `127.0.11.${host0 + n}`

export const faultMachines: ReadonlyArray<HfsMachine> = [
  { hostname: "rhfs0", ip: ip(0), hfs: 0, aliases: ["hfs0"] },
  { hostname: "rhfs1", ip: ip(1), hfs: 1, aliases: ["hfs1"] },
  { hostname: "pas-a", ip: ip(9), hfs: 0, aliases: [] },
  { hostname: "alt-b", ip: ip(10), hfs: 1, aliases: [] }
]
export const faultUsers: ReadonlyArray<HfsUser> = [{ login: "mover", uid: 12000, group: "user" }]
/** The client machine of each HFS. */
export const machineOf = ["pas-a", "alt-b"] as const
export const hostOf = [ip(0), ip(1)] as const

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
