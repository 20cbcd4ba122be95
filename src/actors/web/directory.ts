import { Context, type Duration, Effect, Layer, Stream } from "effect"
import type { MachineRecord } from "../../protocols/mdb.js"
import type { SyncRecord } from "../../protocols/sync.js"
import type { Group } from "../../protocols/udb.js"
import type { ActorTree } from "../../runtime/actor-tree.js"
import type { ActorSupervisor } from "../../runtime/supervisor.js"
import type { NoSecret, SyncClientService } from "../sync/client.js"
import { followIndex } from "../sync/followed-index.js"

// What the website knows without asking anyone: the users (with their password hash: the udb
// topic's `hashes` audience), the machines and who is logged where, each followed from its
// sync topic. Login, authorisation and the live room map read these; a page never waits on
// the gateway. `version` bumps on every applied batch of any topic (the live map's trigger).

export interface WebUser {
  /** UDB's stable id (the REST API's user id). */
  readonly id: number
  readonly login: string
  readonly firstname: string
  readonly lastname: string
  readonly group: Group
  readonly passwordHash: string | undefined
}

export const isStaff = (user: { readonly group: Group }): boolean => user.group === "orga" || user.group === "root"

export interface WebSyncClients {
  readonly mdb: SyncClientService
  /** Signed with the udb topic's hash secret (udbsync-shadow.yml): users with `password_hash`. */
  readonly udb: SyncClientService
  readonly presence: SyncClientService
}

export class DirectoryNotReady extends Error {}

export interface WebDirectoryService {
  readonly user: (login: string) => Effect.Effect<WebUser | undefined, DirectoryNotReady>
  readonly machines: () => ReadonlyArray<MachineRecord>
  /** hostname → logins on it (presence). */
  readonly presence: () => ReadonlyMap<string, string>
  readonly userGroup: (login: string) => Group | undefined
  /** Every user, as of the last udb batch (the REST API's /users/). */
  readonly users: () => ReadonlyArray<WebUser>
  /** Every change of any followed topic; the current version first. */
  readonly changes: Stream.Stream<number>
}

export class WebDirectory extends Context.Tag("prolo/web/WebDirectory")<WebDirectory, WebDirectoryService>() {
  /** Follows the three topics, each through its own client (on the gateway they may be different vhosts). */
  static readonly following = (
    clients: WebSyncClients,
    readyWait: Duration.DurationInput
  ): Layer.Layer<WebDirectory, NoSecret, ActorTree | ActorSupervisor> =>
    Layer.scoped(
      WebDirectory,
      Effect.gen(function* () {
        // Called from the followers' synchronous rebuilds: plain callbacks, no fiber needed.
        let version = 0
        const listeners = new Set<(v: number) => void>()
        const bump = () => {
          version++
          for (const listener of listeners) listener(version)
        }
        let users = new Map<string, WebUser>()
        let machines: ReadonlyArray<MachineRecord> = []
        let presence = new Map<string, string>()
        const udb = yield* followIndex(clients.udb, "udb", (state) => {
          users = indexUsers(state)
          bump()
        })
        yield* followIndex(clients.mdb, "mdb", (state) => {
          machines = [...state.values()] as unknown as ReadonlyArray<MachineRecord>
          bump()
        })
        yield* followIndex(clients.presence, "presence", (state) => {
          presence = indexPresence(state)
          bump()
        })
        return {
          user: (login) =>
            Effect.map(udb.ready(readyWait, (m) => new DirectoryNotReady(m)), () => users.get(login)),
          userGroup: (login) => users.get(login)?.group,
          users: () => [...users.values()],
          machines: () => machines,
          presence: () => presence,
          changes: Stream.async<number>((emit) => {
            void emit.single(version)
            const listener = (v: number) => void emit.single(v)
            listeners.add(listener)
            return Effect.sync(() => listeners.delete(listener))
          })
        }
      })
    )
}

const text = (record: SyncRecord, field: string): string | undefined => {
  const value = record[field]
  return typeof value === "string" ? value : undefined
}

const GROUP_NAMES: ReadonlyArray<string> = ["user", "orga", "root"]

export const indexUsers = (state: ReadonlyMap<string, SyncRecord>): Map<string, WebUser> => {
  const out = new Map<string, WebUser>()
  for (const record of state.values()) {
    const login = text(record, "login")
    const group = text(record, "group")
    if (login === undefined || group === undefined || !GROUP_NAMES.includes(group)) continue
    const id = record["id"]
    out.set(login, {
      id: typeof id === "number" ? id : 0,
      login,
      firstname: text(record, "firstname") ?? "",
      lastname: text(record, "lastname") ?? "",
      group: group as Group,
      passwordHash: text(record, "password_hash")
    })
  }
  return out
}

/** login → hostname records, turned around: hostname → login. */
export const indexPresence = (state: ReadonlyMap<string, SyncRecord>): Map<string, string> => {
  const out = new Map<string, string>()
  for (const record of state.values()) {
    const login = text(record, "login")
    const hostname = text(record, "hostname")
    if (login !== undefined && hostname !== undefined) out.set(hostname, login)
  }
  return out
}
