import { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Context, Effect, Layer, Option, Schema } from "effect"
import { HFS_CONTEST_TOPIC, HFS_TOPIC, HfsUnavailable, type Location, type LocationState } from "../../protocols/hfs.js"
import { ChangeLog } from "../../store/change-log.js"
import { uniqueViolation } from "../../store/pg-errors.js"

// The `hfs_location` table (migration 0005). Every change is a compare-and-set on the row's
// generation, in one transaction with its change-log entry (topic `hfs`, or `hfscontest` for
// the contest set): of two writers holding the same generation exactly one wins, the other
// gets `LocationConflict` with the row as it now is. The set (normal or contest) is fixed
// when the layer is built, as the original's `db` URL was.

/** The row moved on (or appeared, or vanished) since the caller read it; nothing changed. */
export class LocationConflict extends Schema.TaggedError<LocationConflict>()("LocationConflict", {
  login: Schema.String,
  expected: Schema.NullOr(Schema.Number),
  current: Schema.NullOr(Schema.Number),
  message: Schema.String
}) {}

/** What a compare-and-set writes: the whole row but its key. */
export interface LocationChange {
  readonly hfs: number
  readonly generation: number
  readonly state: LocationState
  readonly migrate_to: number | null
}

export interface LocationsService {
  readonly contest: boolean
  readonly get: (login: string) => Effect.Effect<Option.Option<Location>, HfsUnavailable>
  /** A new home's row at generation 0; `LocationConflict` when the login already has one. */
  readonly create: (login: string, hfs: number) => Effect.Effect<Location, LocationConflict | HfsUnavailable>
  /** Writes `change` only if the row is still at `expected`; the new generation must not be lower. */
  readonly compareAndSet: (
    login: string,
    expected: number,
    change: LocationChange
  ) => Effect.Effect<Location, LocationConflict | HfsUnavailable>
  readonly list: Effect.Effect<ReadonlyArray<Location>, HfsUnavailable>
}

export class Locations extends Context.Tag("prolo/hfs/Locations")<Locations, LocationsService>() {
  static readonly sql = (options: { readonly contest: boolean }): Layer.Layer<Locations, never, SqlClient.SqlClient | ChangeLog> =>
    Layer.effect(Locations, makeSqlLocations(options.contest))
}

interface Row {
  readonly login: string
  readonly hfs: number
  readonly generation: number
  readonly state: LocationState
  readonly migrate_to: number | null
  readonly contest: boolean
}

const toLocation = (r: Row): Location => ({
  login: r.login,
  hfs: r.hfs,
  generation: r.generation,
  state: r.state,
  migrate_to: r.migrate_to,
  contest: r.contest
})

/** The change-log record of a row (what operators and the web map follow). */
export const recordOf = (l: Location) => ({
  login: l.login,
  hfs: l.hfs,
  generation: l.generation,
  state: l.state,
  migrate_to: l.migrate_to
})

const unavailable = (what: string) => (e: SqlError) =>
  new HfsUnavailable({ message: `hfs database: cannot ${what}: ${e.message}; nothing changed, retry` })

const makeSqlLocations = (contest: boolean) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const log = yield* ChangeLog
    const topic = contest ? HFS_CONTEST_TOPIC : HFS_TOPIC

    const get = (login: string) =>
      sql<Row>`SELECT login, hfs, generation, state, migrate_to, contest FROM hfs_location
               WHERE contest = ${contest} AND login = ${login}`.pipe(
        Effect.map((rows) => Option.map(Option.fromNullable(rows[0]), toLocation)),
        Effect.mapError(unavailable(`read the location of ${login}`))
      )

    const conflict = (login: string, expected: number | null, current: number | null) =>
      new LocationConflict({
        login,
        expected,
        current,
        message:
          current === null
            ? `the location of ${login} does not exist (expected generation ${expected})`
            : expected === null
              ? `${login} already has a location (generation ${current})`
              : `the location of ${login} is at generation ${current}, not ${expected}`
      })

    const create: LocationsService["create"] = (login, hfs) =>
      sql
        .withTransaction(
          Effect.gen(function* () {
            const rows = yield* sql<Row>`
              INSERT INTO hfs_location (contest, login, hfs, generation) VALUES (${contest}, ${login}, ${hfs}, 0)
              RETURNING login, hfs, generation, state, migrate_to, contest`
            const location = toLocation(rows[0]!)
            yield* log.append(topic, [{ op: "update", key: login, record: recordOf(location) }])
            return location
          })
        )
        .pipe(
          Effect.catchAll((e) =>
            Option.isSome(uniqueViolation(e))
              ? Effect.flatMap(get(login), (now) =>
                  Effect.fail(conflict(login, null, Option.match(now, { onNone: () => null, onSome: (l) => l.generation })))
                )
              : Effect.fail(unavailable(`record the new home of ${login}`)(e))
          )
        )

    const compareAndSet: LocationsService["compareAndSet"] = (login, expected, change) =>
      Effect.gen(function* () {
        if (!Number.isSafeInteger(change.generation) || change.generation < expected) {
          return yield* Effect.dieMessage(`hfs location of ${login}: generation ${change.generation} below ${expected}`)
        }
        const written = yield* sql
          .withTransaction(
            Effect.gen(function* () {
              const rows = yield* sql<Row>`
                UPDATE hfs_location SET hfs = ${change.hfs}, generation = ${change.generation}, state = ${change.state},
                  migrate_to = ${change.migrate_to}, updated_at = now()
                WHERE contest = ${contest} AND login = ${login} AND generation = ${expected}
                RETURNING login, hfs, generation, state, migrate_to, contest`
              const row = rows[0]
              if (row === undefined) return Option.none<Location>()
              const location = toLocation(row)
              yield* log.append(topic, [{ op: "update", key: login, record: recordOf(location) }])
              return Option.some(location)
            })
          )
          .pipe(Effect.mapError(unavailable(`update the location of ${login}`)))
        if (Option.isSome(written)) return written.value
        const now = yield* get(login)
        return yield* conflict(login, expected, Option.match(now, { onNone: () => null, onSome: (l) => l.generation }))
      })

    const list = sql<Row>`SELECT login, hfs, generation, state, migrate_to, contest FROM hfs_location
                          WHERE contest = ${contest} ORDER BY login`.pipe(
      Effect.map((rows) => rows.map(toLocation)),
      Effect.mapError(unavailable("list locations"))
    )

    return Locations.of({ contest, get, create, compareAndSet, list })
  })
