import { Clock, Effect, Option } from "effect"
import * as fs from "node:fs/promises"
import { HfsUnavailable, type Location, type MigrateError, OutOfSpace } from "../../protocols/hfs.js"
import type { HfsContext } from "./context.js"
import { imagePathOf } from "./names.js"
import type { TransferError } from "./transfer/errors.js"
import { receiveHome } from "./transfer/receive.js"

// The destination side of a migration (HFS B), run by the login's HfsActor on B: ask the
// home's HFS to hand it over, receive it (transfer/: verified, journaled, resumable, renamed
// into place at the end), then commit the row `hfs = B, generation + 1, ready` by
// compare-and-set. Until that commit the source's image is the home; after it, B's. The actor
// holds only this login while it waits on the source: other logins go on (README "Migration").

const failureOf = (ctx: HfsContext, login: string, from: number, e: TransferError): MigrateError => {
  const hfs = String(ctx.hfs)
  ctx.metrics.migrationsFailed.inc({ hfs, reason: e._tag })
  if (e._tag === "ChecksumMismatch" || e._tag === "DigestMismatch") ctx.metrics.checksumFailures.inc({ hfs })
  if (e._tag === "DiskFull") {
    return new OutOfSpace({
      hfs: ctx.hfs,
      neededBytes: e.neededBytes,
      availableBytes: e.availableBytes,
      message: `moving the home of ${login} from hfs${from} to hfs${ctx.hfs} failed: ${e.message}; the home stays on hfs${from}`
    })
  }
  return new HfsUnavailable({
    message: `moving the home of ${login} from hfs${from} to hfs${ctx.hfs} failed (${e._tag}: ${e.message}); the home stays on hfs${from}, retry`
  })
}

/** Moves the home of `login` (row `location`, on another HFS) here; returns the committed row. */
export const pull = (ctx: HfsContext, login: string, location: Location): Effect.Effect<Location, MigrateError> =>
  Effect.acquireUseRelease(
    Effect.sync(() => ctx.metrics.migrationsInFlight.inc({ hfs: String(ctx.hfs) })),
    () => pullHome(ctx, login, location),
    () => Effect.sync(() => ctx.metrics.migrationsInFlight.dec({ hfs: String(ctx.hfs) }))
  )

const pullHome = (ctx: HfsContext, login: string, location: Location): Effect.Effect<Location, MigrateError> =>
  Effect.gen(function* () {
    const hfs = String(ctx.hfs)
    const from = location.hfs
    const started = yield* Clock.currentTimeMillis
    const handover = yield* ctx.peers.handOver(from, login, ctx.hfs).pipe(
      Effect.tapError((e) => Effect.sync(() => ctx.metrics.migrationsFailed.inc({ hfs, reason: e._tag })))
    )
    const finalPath = imagePathOf(ctx.image.imageDir, login)
    yield* Effect.promise(() => fs.mkdir(ctx.image.imageDir, { recursive: true, mode: 0o700 }))
    const received = yield* receiveHome({
      ...ctx.transferRoute(handover),
      secret: ctx.secret,
      login,
      generation: handover.generation,
      dir: ctx.image.imageDir,
      finalPath
    }).pipe(Effect.mapError((e) => failureOf(ctx, login, from, e)))
    ctx.metrics.wireBytes.inc({ hfs }, received.wireBytes)
    ctx.metrics.allocatedBytes.inc({ hfs }, received.allocatedBytes)
    // The commit. Of the source granting it again (a login back there) and this commit, exactly
    // one wins; the loser's copy or grant never becomes the home.
    const committed = yield* ctx.locations
      .compareAndSet(login, handover.generation, { hfs: ctx.hfs, generation: handover.generation + 1, state: "ready", migrate_to: null })
      .pipe(
        Effect.catchTag("LocationConflict", (e) =>
          Effect.gen(function* () {
            ctx.metrics.migrationsFailed.inc({ hfs, reason: "LocationConflict" })
            const now = yield* ctx.locations.get(login)
            // Never ours: the copy just renamed into place is not the home. (A database error
            // instead leaves it: the commit may have happened, the next request reads the row.)
            if (Option.isSome(now) && now.value.hfs !== ctx.hfs) yield* Effect.promise(() => fs.rm(finalPath, { force: true }))
            return yield* new HfsUnavailable({
              message: `the home of ${login} changed on hfs${from} while it was copied (${e.message}); it stays there, retry`
            })
          })
        )
      )
    const seconds = ((yield* Clock.currentTimeMillis) - started) / 1000
    ctx.metrics.migrateReceive.observe({ hfs: String(from) }, seconds)
    yield* Effect.logInfo(
      `hfs${ctx.hfs}: the home of ${login} moved here from hfs${from} in ${seconds.toFixed(2)} s (generation ${committed.generation}, ${received.wireBytes} bytes on the wire for ${received.allocatedBytes} allocated, resumed from ${received.resumedFrom})`
    )
    // The source retires its copy; if it does not hear it now, its sweep finds the row later.
    ctx.background(
      ctx.peers.movedAway(from, login).pipe(
        Effect.catchAll((e) => Effect.logWarning(`hfs${ctx.hfs}: hfs${from} will retire its copy of ${login} on its next sweep (${e.message})`))
      )
    )
    return committed
  })
