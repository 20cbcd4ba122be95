import * as fs from "node:fs/promises"
import { Clock, Effect, Option, Request } from "effect"
import {
  HfsUnavailable,
  HomeCreationFailed,
  HomeElsewhere,
  type HomeGrant,
  HomeNotFound,
  type Location,
  type OutOfSpace
} from "../../protocols/hfs.js"
import * as Actor from "../../runtime/actor.js"
import { exportNameOf, type HomeAccess, newSecret, type Ticket } from "./access.js"
import type { HfsMachine, HfsUser } from "./directory.js"
import type { HomeExports } from "./home-exports.js"
import { createHomeImage, type ImageSettings } from "./image.js"
import type { LocationsService } from "./locations.js"
import type { HfsMetrics } from "./metrics.js"
import { imagePathOf } from "./names.js"

// The HfsActor of one login on one HFS: it alone creates and serves that home there, one
// request at a time (different logins run in parallel; the original served one request at a
// time per HFS, so a long migration blocked every login). It keeps no state of its own: the
// location row (database), the grant (the HFS's access table) and the export (the NBD
// registry) are read afresh, so a restarted or passivated actor continues where it was.
// Migration will be one more message here: the location row's `state`/`migrate_to` and the
// generation CAS are what it needs.

export type ServeError = HomeElsewhere | HomeNotFound | OutOfSpace | HomeCreationFailed | HfsUnavailable

export class Serve extends Request.TaggedClass("Serve")<
  HomeGrant,
  ServeError,
  { readonly machine: HfsMachine; readonly user: HfsUser; readonly quotaBytes: number; readonly gid: number }
> {}

export type HfsMessage = Serve

export interface HfsContext {
  readonly hfs: number
  /** Where clients reach this HFS's NBD listener. */
  readonly nbd: { readonly host: string; readonly port: number }
  readonly image: ImageSettings
  readonly locations: LocationsService
  readonly access: HomeAccess
  readonly homes: HomeExports
  readonly metrics: HfsMetrics
}

const grantOf = (ctx: HfsContext, t: Ticket): HomeGrant => ({
  host: ctx.nbd.host,
  port: ctx.nbd.port,
  export: exportNameOf(t),
  generation: t.generation
})

const exists = (file: string) => Effect.promise(() => fs.access(file).then(() => true, () => false))

/** A new home: the image first, then its row; a row that cannot be written takes the image back. */
const createHome = (ctx: HfsContext, login: string, msg: Serve) =>
  Effect.gen(function* () {
    const start = yield* Clock.currentTimeMillis
    const { path } = yield* createHomeImage(ctx.image, {
      hfs: ctx.hfs,
      login,
      uid: msg.user.uid,
      gid: msg.gid,
      group: msg.user.group,
      quotaBytes: msg.quotaBytes
    })
    const row = yield* ctx.locations.create(login, ctx.hfs).pipe(
      Effect.tapError(() => Effect.promise(() => fs.rm(path, { force: true }))),
      Effect.catchTag("LocationConflict", (e) =>
        // Another HFS created it meanwhile: that one is the home.
        Effect.flatMap(ctx.locations.get(login), (now) =>
          Effect.fail(
            new HomeElsewhere({
              login,
              hfs: Option.match(now, { onNone: () => -1, onSome: (l) => l.hfs }),
              message: `the home of ${login} was just created elsewhere (${e.message}); retry`
            })
          )
        )
      )
    )
    const elapsed = ((yield* Clock.currentTimeMillis) - start) / 1000
    ctx.metrics.newUser.observe({ hfs: String(ctx.hfs), user_type: msg.user.group }, elapsed)
    yield* Effect.logInfo(`hfs${ctx.hfs}: created the home of ${login} (${msg.user.group}) in ${elapsed.toFixed(2)} s`)
    return row
  })

const serve = (ctx: HfsContext, login: string, msg: Serve): Effect.Effect<HomeGrant, ServeError> =>
  Effect.gen(function* () {
    const found = yield* ctx.locations.get(login)
    const location: Location = Option.isSome(found) ? found.value : yield* createHome(ctx, login, msg)
    if (location.hfs !== ctx.hfs || location.state !== "ready") {
      return yield* new HomeElsewhere({
        login,
        hfs: location.hfs,
        message:
          location.state === "migrating"
            ? `the home of ${login} is moving from hfs${location.hfs} to hfs${location.migrate_to}; retry`
            : `the home of ${login} is on hfs${location.hfs}; moving it to hfs${ctx.hfs} is not available yet`
      })
    }
    const image = imagePathOf(ctx.image.imageDir, login)
    if (!(yield* exists(image))) {
      return yield* new HomeNotFound({
        login,
        message: `the image of ${login} is missing on hfs${ctx.hfs} (${image}) although its location says it lives here; an operator must restore it`
      })
    }
    // The same machine asking again (PAM's account stage, then its session stage) keeps its
    // grant: nothing is restarted, no client is cut.
    const current = ctx.access.get(login)
    if (
      current !== undefined &&
      current.generation === location.generation &&
      current.ip === msg.machine.ip &&
      (yield* ctx.homes.exported(login))
    ) {
      return grantOf(ctx, current)
    }
    const next = location.generation + 1
    const granted = yield* ctx.locations
      .compareAndSet(login, location.generation, { hfs: ctx.hfs, generation: next, state: "ready", migrate_to: null })
      .pipe(
        Effect.catchTag("LocationConflict", (e) =>
          Effect.fail(new HfsUnavailable({ message: `the location of ${login} changed meanwhile (${e.message}); retry` }))
        )
      )
    const ticket: Ticket = {
      login,
      generation: granted.generation,
      secret: newSecret(),
      ip: msg.machine.ip,
      hostname: msg.machine.hostname
    }
    // The gate moves first: from now on only the new machine, secret and generation pass it;
    // then the export moves to the new generation, cutting older clients once their I/O settled.
    ctx.access.set(ticket)
    ctx.metrics.served.set({ hfs: String(ctx.hfs) }, ctx.access.tickets().length)
    yield* ctx.homes.publish(login, image, granted.generation).pipe(
      Effect.mapError((e) => new HfsUnavailable({ message: `${e.message}; retry` }))
    )
    ctx.metrics.grants.inc({ hfs: String(ctx.hfs) })
    yield* Effect.logInfo(`hfs${ctx.hfs}: granted the home of ${login} to ${msg.machine.hostname} (${msg.machine.ip}) at generation ${granted.generation}`)
    return grantOf(ctx, ticket)
  })

export const hfsBehaviour = (ctx: HfsContext) => (login: string) =>
  Actor.behaviour<HfsMessage>()({
    init: Effect.void,
    receive: {
      Serve: (_state, msg) => Effect.map(serve(ctx, login, msg), (reply) => ({ reply }))
    }
  })
