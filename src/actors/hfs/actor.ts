import * as fs from "node:fs/promises"
import { Clock, Effect, Option, Request } from "effect"
import {
  type Handover,
  HfsUnavailable,
  HomeCreationFailed,
  HomeElsewhere,
  type HomeGrant,
  HomeNotFound,
  type Location,
  type MigrateError
} from "../../protocols/hfs.js"
import * as Actor from "../../runtime/actor.js"
import { exportNameOf, newSecret, type Ticket } from "./access.js"
import type { HfsContext } from "./context.js"
import type { HfsMachine, HfsUser } from "./directory.js"
import { handOver, retire } from "./handover.js"
import { createHomeImage } from "./image.js"
import { imagePathOf } from "./names.js"
import { pull } from "./pull.js"

// The HfsActor of one login on one HFS: it alone creates and serves that home there, one
// request at a time (different logins run in parallel; the original served one request at a
// time per HFS, so a long migration blocked every login). It keeps no state of its own: the
// location row (database), the grant (the HFS's access table) and the export (the NBD
// registry) are read afresh, so a restarted or passivated actor continues where it was.
// Migration is three more messages: `HandOver` (this HFS is the source: fence, mark
// migrating), `Pull` (this HFS is the destination: receive, commit) and `Retire` (the home
// moved away: drop the copy). `Serve` of a home that lives elsewhere pulls it first.

export type ServeError = MigrateError | HomeCreationFailed

export class Serve extends Request.TaggedClass("Serve")<
  HomeGrant,
  ServeError,
  { readonly machine: HfsMachine; readonly user: HfsUser; readonly quotaBytes: number; readonly gid: number }
> {}

/** This HFS holds the home: fence it and let HFS `to` copy it. */
export class HandOver extends Request.TaggedClass("HandOver")<Handover, MigrateError, { readonly to: number }> {}

/** Move the home here now (operators: `prolo hfs migrate`), without granting it. */
export class Pull extends Request.TaggedClass("Pull")<Location, MigrateError, {}> {}

/** The home may have moved away: retire the copy here if the row names another HFS. */
export class Retire extends Request.TaggedClass("Retire")<void, HfsUnavailable, {}> {}

export type HfsMessage = Serve | HandOver | Pull | Retire

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
    const row: Location = Option.isSome(found) ? found.value : yield* createHome(ctx, login, msg)
    // Elsewhere: move it here first. Here but `migrating` (a hand-over that did not finish):
    // the user is back on a machine of this HFS, so the grant below takes it back by CAS,
    // and the destination's commit of that hand-over can no longer succeed.
    const location = row.hfs === ctx.hfs ? row : yield* pull(ctx, login, row)
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
      // renewed: the grant stays live (not moved away) for another live_grant_seconds, or
      // while the client that attaches next stays attached
      ctx.access.set({ ...current, grantedAt: yield* Clock.currentTimeMillis, attached: false })
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
      hostname: msg.machine.hostname,
      grantedAt: yield* Clock.currentTimeMillis
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
      Serve: (_state, msg) => Effect.map(serve(ctx, login, msg), (reply) => ({ reply })),
      HandOver: (_state, msg) => Effect.map(handOver(ctx, login, msg.to), (reply) => ({ reply })),
      Pull: () =>
        Effect.map(
          Effect.flatMap(ctx.locations.get(login), (found) =>
            Option.isNone(found)
              ? Effect.fail(new HomeNotFound({ login, message: `${login} has no home yet` }))
              : found.value.hfs === ctx.hfs && found.value.state === "ready"
                ? Effect.succeed(found.value)
                : found.value.hfs === ctx.hfs
                  ? Effect.fail(new HomeElsewhere({ login, hfs: ctx.hfs, message: `the home of ${login} is on hfs${ctx.hfs} and being handed over to hfs${found.value.migrate_to}; a login here takes it back` }))
                  : pull(ctx, login, found.value)
          ),
          (reply) => ({ reply })
        ),
      Retire: () => Effect.map(retire(ctx, login), (reply) => ({ reply }))
    }
  })
