import { Clock, Context, Duration, Effect, FiberSet, Layer, Option, type Redacted, Runtime, Schedule, type Scope } from "effect"
import { NbdExports } from "../../nbd/exports.js"
import { make as makeNbdServer } from "../../nbd/server.js"
import { type Handover, HfsUnavailable, type HfsStatus, type HomeGrant, type Location, type MigrateError } from "../../protocols/hfs.js"
import type { AskError } from "../../runtime/actor.js"
import type { ActorTree } from "../../runtime/actor-tree.js"
import * as ActorRegistry from "../../runtime/actor-registry.js"
import type { ActorSupervisor } from "../../runtime/supervisor.js"
import { makeHomeAccess } from "./access.js"
import { HandOver, hfsBehaviour, Pull, Retire, Serve, type ServeError } from "./actor.js"
import type { HfsContext } from "./context.js"
import { resolveTransfer } from "./handover.js"
import type { Peers } from "./peers.js"
import { pruneRetired } from "./retention.js"
import { transferServer } from "./transfer/server.js"
import { supervisedLoop } from "../../runtime/supervised-loop.js"
import type { HfsServerProfile } from "./config.js"
import { HfsDirectory, type HfsMachine, type HfsUser } from "./directory.js"
import { makeHomeExports } from "./home-exports.js"
import { Locations } from "./locations.js"
import type { HfsMetrics } from "./metrics.js"
import { imageDirOf } from "./names.js"
import * as fs from "node:fs/promises"

// One HFS id: its address (the MDB machine carrying the alias `hfs<id>`, or `bind` in
// hfs-server.yml), its one NBD listener there behind the home gate, and the keyed registry of
// its HfsActors (one per login, `/root/.../hfs<id>/<login>` in /__actors).

export interface HfsInstance {
  readonly id: number
  readonly host: string
  readonly nbdPort: number
  /** The transfer listener's port (the source side of migrations). */
  readonly transferPort: number
  readonly serve: (
    machine: HfsMachine,
    user: HfsUser,
    home: { readonly quotaBytes: number; readonly gid: number }
  ) => Effect.Effect<HomeGrant, ServeError>
  readonly status: Effect.Effect<HfsStatus>
  /** The home's HFS side of a migration to HFS `to`. */
  readonly handOver: (login: string, to: number) => Effect.Effect<Handover, MigrateError>
  /** Moves the home of `login` here now (no grant). */
  readonly pull: (login: string) => Effect.Effect<Location, MigrateError>
  /** The home of `login` may have moved away: retire the copy here. */
  readonly retire: (login: string) => Effect.Effect<void, HfsUnavailable>
}

/** What an instance needs besides its profile: the HFS secret and the way to the other HFS. */
export interface InstanceLinks {
  readonly secret: Redacted.Redacted<string>
  readonly peers: Peers
  readonly transferRoute?: HfsContext["transferRoute"]
}

type RegistryError = AskError | { readonly _tag: "TooManyActors"; readonly message: string }
const REGISTRY_TAGS: ReadonlySet<string> = new Set(["MailboxFull", "ActorStopped", "ActorDefect", "TooManyActors"])

const unavailable = (id: number) => (e: RegistryError) =>
  new HfsUnavailable({
    message:
      e._tag === "MailboxFull" || e._tag === "TooManyActors"
        ? `hfs${id} is overloaded (${e.message}); retry`
        : e._tag === "ActorDefect"
          ? `hfs${id} failed on this request and restarted; retry (${e.messageTag})`
          : `hfs${id} is stopping (${e.message}); retry`
  })

/** Waits (logging once) until MDB names this HFS's address, unless `bind` overrides it. */
export const addressOf = (id: number, profile: HfsServerProfile) =>
  Effect.gen(function* () {
    const bound = profile.bind[String(id)]
    if (bound !== undefined) return bound
    const directory = yield* HfsDirectory
    let warned = false
    return yield* directory.hfsAddress(id).pipe(
      Effect.catchAll(() => Effect.succeed(Option.none<string>())),
      Effect.flatMap((found) =>
        Option.isSome(found)
          ? Effect.succeed(found.value)
          : Effect.zipRight(
              warned ? Effect.void : Effect.logWarning(`hfs${id}: no machine with the alias hfs${id} in MDB yet; waiting for it`),
              Effect.sync(() => {
                warned = true
              })
            ).pipe(Effect.zipRight(Effect.fail("waiting" as const)))
      ),
      Effect.retry(Schedule.spaced("2 seconds"))
    )
  })

export const makeInstance = (
  id: number,
  host: string,
  profile: HfsServerProfile,
  metrics: HfsMetrics,
  links: InstanceLinks
): Effect.Effect<HfsInstance, unknown, Scope.Scope | Locations | ActorTree | ActorSupervisor> =>
  Effect.gen(function* () {
    const locations = yield* Locations
    const exports = Context.get(yield* Layer.build(NbdExports.layer), NbdExports)
    const homes = yield* Effect.provideService(makeHomeExports, NbdExports, exports)
    const hfs = String(id)
    // The gate runs on socket callbacks, outside any fiber: its log lines are forked.
    const runFork = Runtime.runFork(yield* Effect.runtime<never>())
    const access = makeHomeAccess((reason, peer, wireName) => {
      metrics.nbdRejected.inc({ hfs, reason })
      // never log a secret, even a wrong one
      const shown = JSON.stringify(wireName.slice(0, 80).replace(/:[^:]*$/, ":…"))
      runFork(Effect.logWarning(`hfs${id}: refused NBD attach of ${shown} from ${peer} (${reason})`))
    })
    const server = yield* Effect.provideService(makeNbdServer({
        host,
        port: profile.nbd_port,
        access: access.gate,
        deadPeer: { idleSeconds: profile.nbd_keepalive.idle_seconds, intervalSeconds: profile.nbd_keepalive.interval_seconds, count: profile.nbd_keepalive.count }
      }), NbdExports, exports)
    const exportBase = locations.contest ? profile.export_base_contest : profile.export_base
    const background = yield* FiberSet.make()
    const runBackground = yield* FiberSet.runtime(background)<never>()
    // The transfer listener needs the context, and the context the listener's port.
    const transfer = { host, port: 0 }
    const ctx: HfsContext = {
      hfs: id,
      nbd: { host, port: server.address.port },
      transfer,
      image: { imageDir: imageDirOf(exportBase, id), skeleton: profile.skeleton, reserveBytes: profile.free_reserve },
      locations,
      access,
      homes,
      metrics,
      secret: links.secret,
      peers: links.peers,
      liveGrantMillis: profile.live_grant_seconds * 1000,
      retention: profile.retention,
      background: (effect) => void runBackground(effect),
      transferRoute: links.transferRoute ?? ((to) => to)
    }
    const sending = new Map<string, number>()
    const listening = yield* transferServer({
      host,
      port: profile.transfer_port,
      secret: links.secret,
      resolve: (request) =>
        Effect.tap(resolveTransfer(ctx)(request), () =>
          Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sync(() => void sending.set(request.login, now)))
        ),
      onDone: (outcome) => {
        if (!("ok" in outcome)) return
        const since = sending.get(outcome.ok.login)
        sending.delete(outcome.ok.login)
        if (since !== undefined) {
          runBackground(Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sync(() => metrics.migrateSend.observe({ hfs }, (now - since) / 1000))))
        }
      }
    })
    transfer.port = listening.port
    const registry = yield* ActorRegistry.make({
      name: `hfs${id}`,
      behaviour: hfsBehaviour(ctx),
      idleTimeToLive: Duration.seconds(profile.idle_seconds),
      maxActors: 100_000
    })
    const asked = <A, E extends { readonly _tag: string }>(effect: Effect.Effect<A, E>) =>
      Effect.mapError(effect, (e) => (REGISTRY_TAGS.has(e._tag) ? unavailable(id)(e as unknown as RegistryError) : e)) as Effect.Effect<
        A,
        Exclude<E, RegistryError> | HfsUnavailable
      >
    const retireOne = (login: string) => asked(registry.ask(login, new Retire()))
    // The sweep: copies whose row names another HFS (a lost moved-away notice, a crash after
    // the commit) are retired, and retired copies beyond the retention are deleted.
    yield* supervisedLoop(
      `hfs${id}-retention`,
      Effect.repeat(
        Effect.gen(function* () {
          const rows = yield* locations.list
          const here = new Set(
            (yield* Effect.promise(() => fs.readdir(ctx.image.imageDir).catch(() => [] as Array<string>)))
              .filter((n) => n.endsWith(".nbd") && !n.startsWith("."))
              .map((n) => n.slice(0, -4))
          )
          for (const row of rows) {
            if (here.has(row.login) && row.hfs !== id && !(row.state === "migrating" && row.migrate_to === id)) yield* Effect.ignore(retireOne(row.login))
          }
          yield* pruneRetired(ctx.image.imageDir, yield* Clock.currentTimeMillis, profile.retention)
        }).pipe(Effect.catchAll((e) => Effect.logWarning(`hfs${id}: retention sweep failed: ${e.message}`))),
        Schedule.spaced(Duration.seconds(profile.retention.sweep_seconds))
      )
    )
    yield* Effect.logInfo(`hfs${id}: serving homes of ${ctx.image.imageDir} over NBD on ${host}:${server.address.port}`)
    return {
      id,
      host,
      nbdPort: server.address.port,
      transferPort: listening.port,
      serve: (machine, user, home) => asked(registry.ask(user.login, new Serve({ machine, user, quotaBytes: home.quotaBytes, gid: home.gid }))),
      handOver: (login, to) => asked(registry.ask(login, new HandOver({ to }))),
      pull: (login) => asked(registry.ask(login, new Pull())),
      retire: retireOne,
      status: Effect.gen(function* () {
        const served = yield* Effect.forEach(access.tickets(), (t) =>
          Effect.map(homes.connections(t.login), (connections) => ({
            login: t.login,
            hostname: t.hostname,
            ip: t.ip,
            generation: t.generation,
            connections
          }))
        )
        return { hfs: id, host, rpcPort: null, nbdPort: server.address.port, contest: locations.contest, served }
      })
    }
  })
