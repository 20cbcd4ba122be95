import { Context, type Duration, Effect, Layer, Option } from "effect"
import { HfsUnavailable } from "../../protocols/hfs.js"
import type { SyncRecord } from "../../protocols/sync.js"
import type { Group } from "../../protocols/udb.js"
import type { ActorTree } from "../../runtime/actor-tree.js"
import type { ActorSupervisor } from "../../runtime/supervisor.js"
import type { NoSecret, SyncClientService } from "../sync/client.js"
import { followIndex } from "../sync/followed-index.js"

// The machine and user facts an HFS needs, from the mdb and udb topics it follows (the
// approach of presence's directory): getHome never trusts an HFS id, a user type or an
// address sent by the client, and never waits for another service on its path.

export interface HfsMachine {
  readonly hostname: string
  readonly ip: string
  readonly hfs: number
  readonly aliases: ReadonlyArray<string>
}

export interface HfsUser {
  readonly login: string
  readonly uid: number
  readonly group: Group
}

export interface HfsDirectoryService {
  /** The machine named exactly `hostname`. */
  readonly machine: (hostname: string) => Effect.Effect<Option.Option<HfsMachine>, HfsUnavailable>
  readonly user: (login: string) => Effect.Effect<Option.Option<HfsUser>, HfsUnavailable>
  /** The IP of the machine carrying the alias exactly `hfs<id>` (`hfs1` never matches `hfs10`). */
  readonly hfsAddress: (id: number) => Effect.Effect<Option.Option<string>, HfsUnavailable>
}

export class HfsDirectory extends Context.Tag("prolo/hfs/HfsDirectory")<HfsDirectory, HfsDirectoryService>() {
  /** Fixed facts (tests, benchmarks). */
  static readonly fromRecords = (machines: ReadonlyArray<HfsMachine>, users: ReadonlyArray<HfsUser>): Layer.Layer<HfsDirectory> =>
    Layer.succeed(HfsDirectory, fromIndexes(new Map(machines.map((m) => [m.hostname, m])), new Map(users.map((u) => [u.login, u]))))

  /**
   * Follows `mdb` and `udb` with the given clients. Until both delivered their first snapshot
   * a lookup waits up to `readyWait`, then answers `HfsUnavailable` (never a wrong "unknown").
   */
  static readonly following = (options: {
    readonly mdb: SyncClientService
    readonly udb: SyncClientService
    readonly readyWait: Duration.DurationInput
  }): Layer.Layer<HfsDirectory, NoSecret, ActorTree | ActorSupervisor> =>
    Layer.scoped(
      HfsDirectory,
      Effect.gen(function* () {
        const machines = new Map<string, HfsMachine>()
        const users = new Map<string, HfsUser>()
        const mdb = yield* followIndex(options.mdb, "mdb", (state) => indexMachines(state, machines))
        const udb = yield* followIndex(options.udb, "udb", (state) => indexUsers(state, users))
        const unavailable = (message: string) => new HfsUnavailable({ message })
        const direct = fromIndexes(machines, users)
        return {
          machine: (hostname) => Effect.zipRight(mdb.ready(options.readyWait, unavailable), direct.machine(hostname)),
          user: (login) => Effect.zipRight(udb.ready(options.readyWait, unavailable), direct.user(login)),
          hfsAddress: (id) => Effect.zipRight(mdb.ready(options.readyWait, unavailable), direct.hfsAddress(id))
        }
      })
    )
}

const fromIndexes = (machines: ReadonlyMap<string, HfsMachine>, users: ReadonlyMap<string, HfsUser>): HfsDirectoryService => ({
  // read the maps when the effect runs, not when it is built
  machine: (hostname) => Effect.sync(() => Option.fromNullable(machines.get(hostname))),
  user: (login) => Effect.sync(() => Option.fromNullable(users.get(login))),
  hfsAddress: (id) =>
    Effect.sync(() => {
      const alias = `hfs${id}`
      for (const m of machines.values()) if (m.aliases.includes(alias)) return Option.some(m.ip)
      return Option.none()
    })
})

const GROUPS: ReadonlyArray<string> = ["user", "orga", "root"]

export const indexMachines = (state: ReadonlyMap<string, SyncRecord>, into: Map<string, HfsMachine>): void => {
  into.clear()
  for (const r of state.values()) {
    const { hostname, ip, hfs, aliases } = r
    if (typeof hostname !== "string" || typeof ip !== "string" || typeof hfs !== "number") continue
    const list = typeof aliases === "string" ? aliases.split(",").map((a) => a.trim()).filter((a) => a !== "") : []
    into.set(hostname, { hostname, ip, hfs, aliases: list })
  }
}

export const indexUsers = (state: ReadonlyMap<string, SyncRecord>, into: Map<string, HfsUser>): void => {
  into.clear()
  for (const r of state.values()) {
    const { login, uid, group } = r
    if (typeof login !== "string" || typeof uid !== "number" || typeof group !== "string" || !GROUPS.includes(group)) continue
    into.set(login, { login, uid, group: group as Group })
  }
}
