import { Context, Duration, Effect, Layer, Option, Runtime, Schedule, type Scope } from "effect"
import { NbdExports } from "../../nbd/exports.js"
import { make as makeNbdServer } from "../../nbd/server.js"
import { HfsUnavailable, type HfsStatus, type HomeGrant } from "../../protocols/hfs.js"
import type { AskError } from "../../runtime/actor.js"
import type { ActorTree } from "../../runtime/actor-tree.js"
import * as ActorRegistry from "../../runtime/actor-registry.js"
import type { ActorSupervisor } from "../../runtime/supervisor.js"
import { makeHomeAccess } from "./access.js"
import { type HfsContext, hfsBehaviour, Serve, type ServeError } from "./actor.js"
import type { HfsServerProfile } from "./config.js"
import { HfsDirectory, type HfsMachine, type HfsUser } from "./directory.js"
import { makeHomeExports } from "./home-exports.js"
import { Locations } from "./locations.js"
import type { HfsMetrics } from "./metrics.js"
import { imageDirOf } from "./names.js"

// One HFS id: its address (the MDB machine carrying the alias `hfs<id>`, or `bind` in
// hfs-server.yml), its one NBD listener there behind the home gate, and the keyed registry of
// its HfsActors (one per login, `/root/.../hfs<id>/<login>` in /__actors).

export interface HfsInstance {
  readonly id: number
  readonly host: string
  readonly nbdPort: number
  readonly serve: (
    machine: HfsMachine,
    user: HfsUser,
    home: { readonly quotaBytes: number; readonly gid: number }
  ) => Effect.Effect<HomeGrant, ServeError>
  readonly status: Effect.Effect<HfsStatus>
}

const unavailable = (id: number) => (e: AskError | { readonly _tag: "TooManyActors"; readonly message: string }) =>
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
  metrics: HfsMetrics
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
    const server = yield* Effect.provideService(makeNbdServer({ host, port: profile.nbd_port, access: access.gate }), NbdExports, exports)
    const exportBase = locations.contest ? profile.export_base_contest : profile.export_base
    const ctx: HfsContext = {
      hfs: id,
      nbd: { host, port: server.address.port },
      image: { imageDir: imageDirOf(exportBase, id), skeleton: profile.skeleton, reserveBytes: profile.free_reserve },
      locations,
      access,
      homes,
      metrics
    }
    const registry = yield* ActorRegistry.make({
      name: `hfs${id}`,
      behaviour: hfsBehaviour(ctx),
      idleTimeToLive: Duration.seconds(profile.idle_seconds),
      maxActors: 100_000
    })
    yield* Effect.logInfo(`hfs${id}: serving homes of ${ctx.image.imageDir} over NBD on ${host}:${server.address.port}`)
    return {
      id,
      host,
      nbdPort: server.address.port,
      serve: (machine, user, home) =>
        registry.ask(user.login, new Serve({ machine, user, quotaBytes: home.quotaBytes, gid: home.gid })).pipe(
          Effect.catchTags({
            MailboxFull: (e) => Effect.fail(unavailable(id)(e)),
            ActorStopped: (e) => Effect.fail(unavailable(id)(e)),
            ActorDefect: (e) => Effect.fail(unavailable(id)(e)),
            TooManyActors: (e) => Effect.fail(unavailable(id)(e))
          })
        ),
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
