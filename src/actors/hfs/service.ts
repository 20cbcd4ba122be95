import { Clock, Context, Effect, Either, Layer, Option, type Redacted, Schedule } from "effect"
import {
  type GetHomeError,
  type Handover,
  HfsUnavailable,
  InvalidHfsRequest,
  type MigrateError,
  type HfsStatus,
  type HomeGrant,
  HomeNotFound,
  type Location,
  UnknownMachine,
  UnknownUser,
  WrongHfs
} from "../../protocols/hfs.js"
import type { ActorTree } from "../../runtime/actor-tree.js"
import type { Metrics } from "../../runtime/metrics.js"
import type { ActorSupervisor } from "../../runtime/supervisor.js"
import { gidOf, type HfsServerProfile, quotaOf } from "./config.js"
import { HfsDirectory } from "./directory.js"
import type { HfsContext } from "./context.js"
import { addressOf, type HfsInstance, makeInstance } from "./instance.js"
import { makePeers, type PeerAddress } from "./peers.js"
import { Locations } from "./locations.js"
import { hfsMetrics } from "./metrics.js"
import { validateHostname, validateLogin } from "./names.js"

// The HFS ids of a node (`--hfs 0,1`) behind one service: what the rpc handlers and tests
// call. getHome derives everything from MDB/UDB: the machine decides the HFS (a request that
// reached another HFS is refused), the user's group decides quota and gid. Input is checked
// before anything is looked up: bad input gets a precise error and changes nothing.

export interface HfsService {
  /** `via`: the HFS whose own port received the request (it must be the machine's); none over the node's HTTP port. */
  readonly getHome: (login: string, hostname: string, via?: number) => Effect.Effect<HomeGrant, GetHomeError>
  readonly where: (login: string) => Effect.Effect<Location, InvalidHfsRequest | HomeNotFound | HfsUnavailable>
  readonly list: Effect.Effect<ReadonlyArray<Location>, HfsUnavailable>
  readonly status: Effect.Effect<ReadonlyArray<HfsStatus>>
  /** The instance of `id` once it runs (tests, the rpc port of each HFS). */
  readonly instance: (id: number) => Effect.Effect<HfsInstance>
  /** Records where HFS `id` serves its rpc port (shown by `status`). */
  readonly setRpcPort: (id: number, port: number) => Effect.Effect<void>
  /** Server → server: the home's HFS (`via`, or the row's) fences the home for HFS `to`. */
  readonly handOver: (login: string, to: number, via?: number) => Effect.Effect<Handover, MigrateError>
  /** Server → server: the home of `login` moved; the HFS here (`via`, or every one) retire their copy. */
  readonly movedAway: (login: string, via?: number) => Effect.Effect<void, InvalidHfsRequest | HfsUnavailable>
  /** Operators: move the home of `login` to HFS `to` (run by this node) now, without granting it. */
  readonly migrate: (login: string, to: number) => Effect.Effect<Location, MigrateError>
}

export interface HfsOptions {
  readonly ids: ReadonlyArray<number>
  readonly profile: HfsServerProfile
  /** The HFS secret (hfs-client.yml): calls to the other HFS and transfer tokens. */
  readonly secret: Redacted.Redacted<string>
  /** Tests: where the destination connects for a transfer (a damaging link). */
  readonly transferRoute?: HfsContext["transferRoute"]
}

export class Hfs extends Context.Tag("prolo/hfs/Hfs")<Hfs, HfsService>() {
  /** Starts every id in the background: an HFS waits for its `hfs<id>` alias in MDB without holding up the node. */
  static readonly layer = (options: HfsOptions): Layer.Layer<Hfs, never, HfsDirectory | Locations | Metrics | ActorTree | ActorSupervisor> =>
    Layer.scoped(Hfs, makeHfs(options))
}

const makeHfs = (options: HfsOptions) =>
  Effect.gen(function* () {
    const { profile } = options
    const directory = yield* HfsDirectory
    const locations = yield* Locations
    const metrics = yield* hfsMetrics
    const running = new Map<number, HfsInstance>()
    const rpcPorts = new Map<number, number>()
    const waiters = new Map<number, Array<(i: HfsInstance) => void>>()

    // Another HFS's rpc address: its own `hfs<id>` address (or `bind`) and the rpc port; an
    // HFS of this node answers on the port it really bound (0 in tests and the dev loop).
    const locate = (id: number): Effect.Effect<PeerAddress, HfsUnavailable> =>
      Effect.gen(function* () {
        const local = running.get(id)
        const port = rpcPorts.get(id)
        if (local !== undefined && port !== undefined) return { host: local.host, port }
        if (profile.rpc_port === 0) {
          return yield* new HfsUnavailable({ message: `hfs${id} does not run on this node and rpc_port is 0 in hfs-server.yml: its port is unknown` })
        }
        const bound = profile.bind[String(id)]
        const host = bound !== undefined ? Option.some(bound) : yield* directory.hfsAddress(id)
        if (Option.isNone(host)) return yield* new HfsUnavailable({ message: `no machine carries the alias hfs${id} in MDB: hfs${id} cannot be reached` })
        return { host: host.value, port: profile.rpc_port }
      })
    const peers = makePeers({ secret: options.secret, locate })
    const links = { secret: options.secret, peers, ...(options.transferRoute === undefined ? {} : { transferRoute: options.transferRoute }) }

    // Each id in its own fiber: a failure to start (address not up yet, port taken) is logged
    // and retried with backoff rather than taking the other ids down.
    for (const id of options.ids) {
      yield* Effect.forkScoped(
        Effect.scoped(
          Effect.gen(function* () {
            const host = yield* addressOf(id, profile)
            const instance = yield* makeInstance(id, host, profile, metrics, links)
            running.set(id, instance)
            for (const w of waiters.get(id) ?? []) w(instance)
            waiters.delete(id)
            return yield* Effect.never
          }).pipe(Effect.ensuring(Effect.sync(() => running.delete(id))))
        ).pipe(
          Effect.tapErrorCause((cause) => Effect.logError(`hfs${id}: cannot start; retrying`, cause)),
          Effect.retry({ schedule: retrySchedule }),
          Effect.ignore
        )
      )
    }

    const fail = (hfs: string, e: GetHomeError) => {
      metrics.getHomeFailed.inc({ hfs, error: e._tag })
      return Effect.fail(e)
    }

    const getHome: HfsService["getHome"] = (login, hostname, via) =>
      Effect.gen(function* () {
        const started = yield* Clock.currentTimeMillis
        const checked = Either.all({ login: validateLogin(login), hostname: validateHostname(hostname) })
        if (Either.isLeft(checked)) return yield* fail(String(via ?? "-"), checked.left)
        const machine = yield* directory.machine(hostname)
        if (Option.isNone(machine)) {
          return yield* fail(String(via ?? "-"), new UnknownMachine({ hostname, message: `No such machine: ${hostname}` }))
        }
        const m = machine.value
        const instance = running.get(m.hfs)
        if ((via !== undefined && m.hfs !== via) || (via === undefined && !options.ids.includes(m.hfs))) {
          return yield* fail(
            String(via ?? "-"),
            new WrongHfs({
              hostname,
              machineHfs: m.hfs,
              message: `${hostname} belongs to hfs${m.hfs}${via === undefined ? "" : `, not hfs${via}`}: ask hfs${m.hfs}`
            })
          )
        }
        if (instance === undefined) {
          return yield* fail(String(m.hfs), new HfsUnavailable({ message: `hfs${m.hfs} is not serving yet (waiting for its address or its port); retry` }))
        }
        const user = yield* directory.user(login)
        if (Option.isNone(user)) return yield* fail(String(m.hfs), new UnknownUser({ login, message: `No such user: ${login}` }))
        const u = user.value
        const grant = yield* instance.serve(m, u, { quotaBytes: quotaOf(profile, u.group), gid: gidOf(profile, u.group) }).pipe(
          Effect.catchAll((e) => fail(String(m.hfs), e))
        )
        metrics.getHome.observe({ hfs: String(m.hfs), user_type: u.group }, ((yield* Clock.currentTimeMillis) - started) / 1000)
        return grant
      })

    return Hfs.of({
      getHome,
      where: (login) =>
        Effect.gen(function* () {
          const valid = yield* validateLogin(login)
          const found = yield* locations.get(valid)
          if (Option.isNone(found)) return yield* new HomeNotFound({ login, message: `${login} has no home yet` })
          return found.value
        }),
      list: locations.list,
      status: Effect.suspend(() =>
        Effect.forEach([...running.values()].sort((a, b) => a.id - b.id), (i) =>
          Effect.map(i.status, (s) => ({ ...s, rpcPort: rpcPorts.get(i.id) ?? null }))
        )
      ),
      instance: (id) =>
        Effect.async<HfsInstance>((resume) => {
          const now = running.get(id)
          if (now !== undefined) return resume(Effect.succeed(now))
          const list = waiters.get(id) ?? []
          list.push((i) => resume(Effect.succeed(i)))
          waiters.set(id, list)
        }),
      setRpcPort: (id, port) => Effect.sync(() => void rpcPorts.set(id, port)),
      handOver: (login, to, via) =>
        Effect.gen(function* () {
          const valid = yield* validateLogin(login)
          const id = via ?? Option.match(yield* locations.get(valid), { onNone: () => -1, onSome: (l) => l.hfs })
          const instance = running.get(id)
          if (instance === undefined) {
            return yield* new HfsUnavailable({ message: `the home of ${valid} is not on an HFS of this node (hfs${id}); retry` })
          }
          return yield* instance.handOver(valid, to)
        }),
      movedAway: (login, via) =>
        Effect.gen(function* () {
          const valid = yield* validateLogin(login)
          const targets = [...running.values()].filter((i) => via === undefined || i.id === via)
          yield* Effect.forEach(targets, (i) => i.retire(valid), { discard: true })
        }),
      migrate: (login, to) =>
        Effect.gen(function* () {
          const valid = yield* validateLogin(login)
          if (Option.isNone(yield* directory.user(valid))) return yield* new UnknownUser({ login, message: `No such user: ${login}` })
          const instance = running.get(to)
          if (instance === undefined) {
            return yield* new InvalidHfsRequest({
              field: "to",
              value: String(to),
              message: options.ids.includes(to)
                ? `hfs${to} is not serving yet (waiting for its address or its port); retry`
                : `hfs${to} does not run on this node (it runs ${options.ids.map((i) => `hfs${i}`).join(", ") || "none"}): ask the node of hfs${to}`
            })
          }
          return yield* instance.pull(valid)
        })
    })
  })

// 1 s, 2 s, 4 s, … at most 30 s between attempts.
const retrySchedule = Schedule.exponential("1 second").pipe(Schedule.union(Schedule.spaced("30 seconds")))
