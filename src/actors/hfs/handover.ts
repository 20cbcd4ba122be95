import { Clock, Effect, Option } from "effect"
import * as fs from "node:fs/promises"
import {
  type Handover,
  HfsUnavailable,
  HomeElsewhere,
  HomeInUse,
  HomeNotFound,
  InvalidHfsRequest,
  type MigrateError
} from "../../protocols/hfs.js"
import type { HfsContext } from "./context.js"
import { imagePathOf } from "./names.js"
import { retireImage } from "./retention.js"
import { SourceImageMissing } from "./transfer/errors.js"

// The source side of a migration (HFS A, the home's HFS), run by the login's HfsActor on A:
// `handOver` fences the home and marks it migrating; the transfer listener hands out the image
// only for that login at that generation; `retire` removes the copy once the row names
// another HFS. A stays the home until the destination's commit (README "Migration").

const exists = (file: string) => Effect.promise(() => fs.access(file).then(() => true, () => false))

/**
 * Whether the home's grant here is live: a client attached, or answered recently and nobody has
 * attached yet (PAM mounts next). A grant whose client attached and then detached (logout) is over.
 */
export const liveGrant = (ctx: HfsContext, login: string) =>
  Effect.gen(function* () {
    const ticket = ctx.access.get(login)
    if (ticket === undefined || !(yield* ctx.homes.exported(login))) return Option.none()
    const connections = yield* ctx.homes.connections(login)
    const age = (yield* Clock.currentTimeMillis) - ticket.grantedAt
    return connections > 0 || (ticket.attached !== true && age < ctx.liveGrantMillis) ? Option.some({ ticket, connections }) : Option.none()
  })

export const handOver = (ctx: HfsContext, login: string, to: number): Effect.Effect<Handover, MigrateError> =>
  Effect.gen(function* () {
    if (to === ctx.hfs) {
      return yield* new InvalidHfsRequest({ field: "to", value: String(to), message: `hfs${to} cannot hand the home of ${login} over to itself` })
    }
    const found = yield* ctx.locations.get(login)
    if (Option.isNone(found)) return yield* new HomeNotFound({ login, message: `${login} has no home yet` })
    const row = found.value
    if (row.hfs !== ctx.hfs) {
      return yield* new HomeElsewhere({ login, hfs: row.hfs, message: `the home of ${login} is on hfs${row.hfs}, not on hfs${ctx.hfs}` })
    }
    if (!(yield* exists(imagePathOf(ctx.image.imageDir, login)))) {
      return yield* new HomeNotFound({ login, message: `the image of ${login} is missing on hfs${ctx.hfs} although its location says it lives here; an operator must restore it` })
    }
    const live = yield* liveGrant(ctx, login)
    if (Option.isSome(live)) {
      const { ticket, connections } = live.value
      return yield* new HomeInUse({
        login,
        hfs: ctx.hfs,
        hostname: ticket.hostname,
        message: `the home of ${login} is in use on ${ticket.hostname} (hfs${ctx.hfs}, ${connections} NBD connection(s)); log out there first`
      })
    }
    // The fence: no writer is left on the image once this returns (connections cut after their
    // in-flight I/O, new ones refused: no grant, no export). Only then does the row say migrating.
    ctx.access.delete(login)
    ctx.metrics.served.set({ hfs: String(ctx.hfs) }, ctx.access.tickets().length)
    yield* ctx.homes.withdraw(login)
    // A stale hand-over to the same HFS (an attempt that failed) keeps its generation: the
    // destination resumes from its journal. Any other state takes a new generation.
    if (row.state === "migrating" && row.migrate_to === to) {
      return { generation: row.generation, ...ctx.transfer }
    }
    const marked = yield* ctx.locations
      .compareAndSet(login, row.generation, { hfs: ctx.hfs, generation: row.generation + 1, state: "migrating", migrate_to: to })
      .pipe(
        Effect.catchTag("LocationConflict", (e) =>
          Effect.fail(new HfsUnavailable({ message: `the location of ${login} changed meanwhile (${e.message}); retry` }))
        )
      )
    yield* Effect.logInfo(`hfs${ctx.hfs}: handing the home of ${login} over to hfs${to} at generation ${marked.generation}`)
    return { generation: marked.generation, ...ctx.transfer }
  })

/** The transfer listener's `resolve`: the image, only while this HFS hands it over at that generation. */
export const resolveTransfer = (ctx: HfsContext) => (request: { readonly login: string; readonly generation: number }) =>
  Effect.gen(function* () {
    const refused = (why: string) =>
      new SourceImageMissing({ login: request.login, message: `hfs${ctx.hfs} does not hand the home of ${request.login} over at generation ${request.generation}: ${why}` })
    const found = yield* ctx.locations.get(request.login).pipe(Effect.mapError((e) => refused(e.message)))
    if (Option.isNone(found)) return yield* refused("no such home")
    const row = found.value
    if (row.hfs !== ctx.hfs || row.state !== "migrating" || row.generation !== request.generation) {
      return yield* refused(`its location is hfs${row.hfs}, generation ${row.generation}, ${row.state}`)
    }
    if (yield* ctx.homes.exported(request.login)) return yield* refused("it is exported again")
    return imagePathOf(ctx.image.imageDir, request.login)
  })

/** After the destination's commit (or found by the sweep): the copy here is no longer the home. */
export const retire = (ctx: HfsContext, login: string): Effect.Effect<void, HfsUnavailable> =>
  Effect.gen(function* () {
    const found = yield* ctx.locations.get(login)
    if (Option.isNone(found)) return
    const row = found.value
    // Still ours, or on its way here (renamed into place just before the commit): keep it.
    if (row.hfs === ctx.hfs || (row.state === "migrating" && row.migrate_to === ctx.hfs)) return
    ctx.access.delete(login)
    ctx.metrics.served.set({ hfs: String(ctx.hfs) }, ctx.access.tickets().length)
    yield* ctx.homes.withdraw(login)
    const outcome = yield* retireImage(ctx.image.imageDir, login, yield* Clock.currentTimeMillis, ctx.retention)
    if (outcome !== "absent") yield* Effect.logInfo(`hfs${ctx.hfs}: the home of ${login} lives on hfs${row.hfs} now; the copy here was ${outcome}`)
  })
