import { Context, type Duration, Effect, Layer, Option } from "effect"
import { PresenceUnavailable } from "../../protocols/presence.js"
import type { SyncRecord } from "../../protocols/sync.js"
import type { ActorTree } from "../../runtime/actor-tree.js"
import type { ActorSupervisor } from "../../runtime/supervisor.js"
import { type NoSecret, SyncClient } from "../sync/client.js"
import { followIndex } from "../sync/followed-index.js"
import type { MachineFacts, UserFacts } from "./rules.js"

// The machine and user facts the login rules need, answered from the mdb and udb topics this
// node follows: the login path never waits for a database or another service (the original
// called MDB and UDB synchronously inside its event loop).

export interface DirectoryService {
  /** The machine named exactly `hostname` (aliases do not count, as the original's query). */
  readonly machine: (hostname: string) => Effect.Effect<Option.Option<MachineFacts>, PresenceUnavailable>
  readonly user: (login: string) => Effect.Effect<Option.Option<UserFacts>, PresenceUnavailable>
}

export class Directory extends Context.Tag("prolo/presence/Directory")<Directory, DirectoryService>() {
  /** Fixed facts (tests, benchmarks). */
  static readonly fromRecords = (
    machines: Readonly<Record<string, MachineFacts>>,
    users: Readonly<Record<string, UserFacts>>
  ): Layer.Layer<Directory> =>
    Layer.succeed(Directory, {
      machine: (hostname) => Effect.succeed(Option.fromNullable(Object.hasOwn(machines, hostname) ? machines[hostname] : undefined)),
      user: (login) => Effect.succeed(Option.fromNullable(Object.hasOwn(users, login) ? users[login] : undefined))
    })

  /**
   * Follows `mdb` and `udb` through the node's `SyncClient`. Until both topics delivered their
   * first snapshot a lookup waits up to `readyWait`, then answers `PresenceUnavailable` (never a
   * wrong "not registered").
   */
  static readonly following = (options: {
    readonly readyWait: Duration.DurationInput
  }): Layer.Layer<Directory, NoSecret, SyncClient | ActorTree | ActorSupervisor> =>
    Layer.scoped(
      Directory,
      Effect.gen(function* () {
        const sync = yield* SyncClient
        const machines = new Map<string, MachineFacts>()
        const users = new Map<string, UserFacts>()
        const mdb = yield* followIndex(sync, "mdb", (state) => indexMachines(state, machines))
        const udb = yield* followIndex(sync, "udb", (state) => indexUsers(state, users))
        const unavailable = (message: string) => new PresenceUnavailable({ message })
        return {
          // read the maps after waiting, not when the effect is built
          machine: (hostname) => Effect.map(mdb.ready(options.readyWait, unavailable), () => Option.fromNullable(machines.get(hostname))),
          user: (login) => Effect.map(udb.ready(options.readyWait, unavailable), () => Option.fromNullable(users.get(login)))
        }
      })
    )
}

const text = (record: SyncRecord, field: string): string | undefined => {
  const value = record[field]
  return typeof value === "string" ? value : undefined
}

export const indexMachines = (state: ReadonlyMap<string, SyncRecord>, into: Map<string, MachineFacts>): void => {
  into.clear()
  for (const record of state.values()) {
    const hostname = text(record, "hostname")
    const mtype = text(record, "mtype")
    if (hostname !== undefined && mtype !== undefined) into.set(hostname, { mtype })
  }
}

export const indexUsers = (state: ReadonlyMap<string, SyncRecord>, into: Map<string, UserFacts>): void => {
  into.clear()
  for (const record of state.values()) {
    const login = text(record, "login")
    const group = text(record, "group")
    if (login !== undefined && group !== undefined) into.set(login, { group })
  }
}
