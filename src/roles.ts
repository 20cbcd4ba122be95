import { Either, Schema } from "effect"
import type { Subsystem } from "./runtime/http-host-node.js"

// The role map: which subsystems `prolo-node --layer <role>` starts.
//
// A subsystem is a Layer (its actors plus its HTTP routes, see src/runtime/http-host.ts) that
// may use only the node's shared services (`NodeServices` in src/runtime/http-host-node.ts);
// anything else it needs (a database pool, another subsystem's client) it provides itself. Give the SAME `Subsystem` value to every role
// that runs it: `all` starts each name once, and a database layer shared by reference is
// built once per node.
//
// To add a subsystem: declare it once in `subsystems` (a lazy import keeps `--help` and
// startup fast), then add its name to each role's list. One line each. Its layer provides
// `supervisorGroup(name)` to its own parts (its place in `/__actors`), runs each long-running
// part with `supervisedLoop` (src/runtime/supervised-loop.ts), and provides layers it shares
// with other subsystems (the database, the sync hub) outside that group.

export const subsystems = {
  mdb: { name: "mdb", load: () => import("./actors/mdb/layer.js").then((m) => m.MdbLayer) },
  udb: { name: "udb", load: () => import("./actors/udb/layer.js").then((m) => m.UdbLayer) },
  udbsyncPasswd: { name: "udbsync-passwd", load: () => import("./actors/passwd/layer.js").then((m) => m.PasswdSyncLayer) },
  sync: { name: "sync", load: () => import("./actors/sync/layer.js").then((m) => m.SyncLayer) },
  presence: { name: "presence", load: () => import("./actors/presence/layer.js").then((m) => m.PresenceLayer) },
  dhcp: { name: "dhcp", load: () => import("./actors/dhcp/layer.js").then((m) => m.DhcpLayer) },
  dns: { name: "dns", load: () => import("./actors/dns/layer.js").then((m) => m.DnsLayer) },
  firewall: { name: "firewall", load: () => import("./actors/firewall/layer.js").then((m) => m.FirewallLayer) },
  sso: { name: "sso", load: () => import("./actors/sso/layer.js").then((m) => m.SsoLayer) },
  netboot: { name: "netboot", load: () => import("./actors/netboot/layer.js").then((m) => m.NetbootLayer) },
  login: { name: "login", load: () => import("./actors/pam/layer.js").then((m) => m.LoginLayer) },
  presenced: { name: "presenced", load: () => import("./actors/presenced/layer.js").then((m) => m.PresencedLayer) },
  hfs: { name: "hfs", load: () => import("./actors/hfs/layer.js").then((m) => m.HfsLayer) },
  // `--layer all`: the same HFS, following mdb/udb from the node's own hub instead of the gateway's.
  hfsLocal: { name: "hfs", load: () => import("./actors/hfs/layer.js").then((m) => m.HfsLocalLayer) },
  web: { name: "web", load: () => import("./actors/web/layer.js").then((m) => m.WebLayer), urls: ["/", "/admin/map"] },
  // `--layer all`: the same website, following mdb/udb/presence from the node's own hub.
  webLocal: { name: "web", load: () => import("./actors/web/layer.js").then((m) => m.WebLocalLayer), urls: ["/", "/admin/map"] },
  clusterMaster: { name: "cluster-master", load: () => import("./actors/cluster/layer.js").then((m) => m.ClusterMasterLayer) },
  clusterWorker: { name: "cluster-worker", load: () => import("./actors/cluster/layer.js").then((m) => m.ClusterWorkerLayer) }
} satisfies Record<string, Subsystem>

export const roleNames = ["gw", "rhfs", "web", "user", "login", "worker"] as const
export type RoleName = (typeof roleNames)[number] | "all"

export interface Role {
  readonly description: string
  readonly subsystems: ReadonlyArray<Subsystem>
}

const machineRoles: Record<(typeof roleNames)[number], Role> = {
  gw: {
    description: "gateway: mdb, udb, sync hubs, presence, sso, dns, dhcp, netboot, hfsdb",
    subsystems: [
      subsystems.mdb,
      subsystems.udb,
      subsystems.udbsyncPasswd,
      subsystems.sync,
      subsystems.presence,
      subsystems.dns,
      subsystems.dhcp,
      subsystems.netboot,
      subsystems.sso,
      subsystems.firewall,
    ]
  },
  rhfs: {
    description: "root/home file server: serves user homes over NBD (--hfs 0,1: one HFS per id)",
    subsystems: [subsystems.udbsyncPasswd, subsystems.hfs]
  },
  web: {
    description: "web server: concours API and master of the match cluster",
    subsystems: [subsystems.clusterMaster, subsystems.web]
  },
  user: {
    description: "user machine: presence heartbeat, passwd/rootssh sync",
    subsystems: [subsystems.udbsyncPasswd, subsystems.presenced]
  },
  // Its own role, so its own unit: it mounts homes, attaches block devices and kills a leaving
  // user's processes, which the `user` node must not be able to (etc/systemd/prolo-node@login.service.d).
  login: {
    description: "user machine's login helper: prolo-pam's stages, resident (bin/prolo-pam hands them over a unix socket)",
    subsystems: [subsystems.login]
  },
  // Its own role, so its own unit: the jails need namespaces, mounts and setuid, which the
  // `user` node (root, rewriting /etc/shadow) must not have (etc/systemd/prolo-node@worker.service.d).
  worker: {
    description: "user machine's match worker: runs compilations and matches in bubblewrap jails",
    subsystems: [subsystems.clusterWorker]
  }
}

const unique = (list: ReadonlyArray<Subsystem>): ReadonlyArray<Subsystem> => {
  const byName = new Map<string, Subsystem>()
  for (const sub of list) if (!byName.has(sub.name)) byName.set(sub.name, sub)
  return [...byName.values()]
}

export const roles: Record<RoleName, Role> = {
  ...machineRoles,
  all: {
    description: "every role on one machine, embedded database: the demo and the dev loop",
    subsystems: unique(
      // Not the login helper: the demo logs nobody in through PAM, and a node run by any user
      // cannot own the root-only socket directory.
      roleNames.filter((r) => r !== "login").flatMap((r) => machineRoles[r].subsystems).map((s) => (s === subsystems.hfs ? subsystems.hfsLocal : s === subsystems.web ? subsystems.webLocal : s))
    )
  }
}

export const isRoleName = (name: string): name is RoleName => Object.hasOwn(roles, name)

/** The subsystems a set of roles starts, each once, in role order. */
export const subsystemsOf = (names: ReadonlyArray<RoleName>): ReadonlyArray<Subsystem> =>
  unique(names.flatMap((n) => roles[n].subsystems))

/** What `--help` says of each role: its purpose and what it starts. */
export const describeRoles = (): ReadonlyArray<readonly [RoleName, string]> =>
  (Object.keys(roles) as Array<RoleName>).map((name) => {
    const role = roles[name]
    const starts =
      role.subsystems.length === 0
        ? "runtime endpoints only for now (/__ping, /__actors, /metrics)"
        : `starts ${role.subsystems.map((sub) => sub.name).join(", ")}`
    return [name, `${role.description}; ${starts}`] as const
  })

export class RoleError extends Schema.TaggedError<RoleError>()("RoleError", {
  input: Schema.String,
  message: Schema.String
}) {}

/** `--layer` values, each a role or a comma list of roles; at least one role in all. */
export const parseRoles = (values: ReadonlyArray<string>): Either.Either<ReadonlyArray<RoleName>, RoleError> => {
  const names = values.flatMap((v) => v.split(",")).map((n) => n.trim()).filter((n) => n !== "")
  const known = `expected ${Object.keys(roles).join(", ")}`
  if (names.length === 0) {
    return Either.left(new RoleError({ input: values.join(","), message: `--layer: no role given (${known})` }))
  }
  const unknown = names.find((n) => !isRoleName(n))
  if (unknown !== undefined) {
    return Either.left(new RoleError({ input: unknown, message: `--layer: unknown role ${JSON.stringify(unknown)} (${known})` }))
  }
  return Either.right([...new Set(names as Array<RoleName>)])
}
