import { SqlClient, type Statement } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Cache, Clock, Context, Duration, Effect, Layer, Option } from "effect"
import { uniqueViolation } from "../../../store/pg-errors.js"
import { FileStore, type FileStoreError } from "../../concours/files.js"
import type { ConcoursProfile } from "../config.js"
import { championLanguage } from "./archive.js"
import {
  type Champion,
  ChampionRefused,
  ConcoursUnavailable,
  Forbidden,
  type GameMap,
  MapRefused,
  type Match,
  type MatchFilters,
  MatchRefused,
  NAME_MAX,
  NotFound,
  type Page,
  Priority
} from "./model.js"
import { validateMap } from "./validator.js"

// The concours rules on top of migration 0007's tables. The website inserts champions and
// matches as `new` (the master takes them from there) and soft-deletes champions; it never
// writes a status after `new`. Files go to the content-addressed store before the row naming
// them is committed.

export interface Actor {
  readonly login: string
  readonly staff: boolean
}

export interface ConcoursService {
  readonly settings: ConcoursProfile
  readonly uploadChampion: (
    actor: Actor,
    input: { readonly name: string; readonly comment: string; readonly sources: Uint8Array }
  ) => Effect.Effect<Champion, ChampionRefused | ConcoursUnavailable>
  readonly champion: (id: number) => Effect.Effect<Champion, NotFound | ConcoursUnavailable>
  readonly champions: (filter: { readonly author?: string; readonly status?: string; readonly offset: number; readonly limit: number }) => Effect.Effect<Page<Champion>, ConcoursUnavailable>
  readonly deleteChampion: (actor: Actor, id: number) => Effect.Effect<Champion, NotFound | Forbidden | ConcoursUnavailable>
  readonly launchMatch: (
    actor: Actor,
    input: { readonly champions: ReadonlyArray<number>; readonly map: number | undefined; readonly priority: number; readonly throttle: boolean }
  ) => Effect.Effect<Match, MatchRefused | ConcoursUnavailable>
  readonly match: (id: number) => Effect.Effect<Match, NotFound | ConcoursUnavailable>
  readonly matches: (filters: MatchFilters, offset: number, limit: number) => Effect.Effect<Page<Match>, ConcoursUnavailable>
  /** The original's `/api/matches/interesting/`: of the 1000 done matches with the highest total score, the top third (all of them up to 50), by score. */
  readonly interestingMatches: Effect.Effect<ReadonlyArray<Match>, ConcoursUnavailable>
  readonly maps: Effect.Effect<ReadonlyArray<GameMap>, ConcoursUnavailable>
  readonly map: (id: number) => Effect.Effect<GameMap, NotFound | ConcoursUnavailable>
  readonly createMap: (actor: Actor, input: { readonly name: string; readonly contents: string }) => Effect.Effect<GameMap, MapRefused | ConcoursUnavailable>
  /** A stored file (sources, log, dump, replay). */
  readonly file: (digest: string) => Effect.Effect<Uint8Array, NotFound>
}

export class Concours extends Context.Tag("prolo/web/Concours")<Concours, ConcoursService>() {}

interface ChampionRow {
  readonly id: number
  readonly name: string
  readonly author: string
  readonly status: Champion["status"]
  readonly deleted: boolean
  readonly comment: string
  readonly created_at: Date
  readonly sources_digest: string
  readonly compiled_digest: string | null
  readonly log_digest: string | null
  readonly failure: string | null
}

interface MatchRow {
  readonly id: number
  readonly author: string
  readonly status: Match["status"]
  readonly priority: number
  readonly map_id: number | null
  readonly tournament_id: number | null
  readonly created_at: Date
  readonly server_log_digest: string | null
  readonly dump_digest: string | null
  readonly replay_digest: string | null
  readonly failure: string | null
  readonly players: ReadonlyArray<{
    id: number
    champion: number
    name: string
    author: string
    score: number | null
    nb_timeout: number | null
    log_digest: string | null
  }>
}

interface MapRow {
  readonly id: number
  readonly name: string
  readonly author: string
  readonly contents: string
  readonly official: boolean
  readonly created_at: Date
}

const iso = (d: Date | string) => (d instanceof Date ? d.toISOString() : new Date(d).toISOString())

const toChampion = (r: ChampionRow): Champion => ({
  id: r.id,
  name: r.name,
  author: r.author,
  status: r.status,
  deleted: r.deleted,
  comment: r.comment,
  created: iso(r.created_at),
  sourcesDigest: r.sources_digest,
  compiledDigest: r.compiled_digest,
  logDigest: r.log_digest,
  failure: r.failure
})

const toMatch = (r: MatchRow): Match => ({
  id: r.id,
  author: r.author,
  status: r.status,
  priority: r.priority,
  mapId: r.map_id,
  tournament: r.tournament_id,
  created: iso(r.created_at),
  serverLogDigest: r.server_log_digest,
  dumpDigest: r.dump_digest,
  replayDigest: r.replay_digest,
  failure: r.failure,
  players: r.players.map((p) => ({
    id: p.id,
    champion: p.champion,
    championName: p.name,
    championAuthor: p.author,
    score: p.score,
    nbTimeout: p.nb_timeout,
    logDigest: p.log_digest
  }))
})

const toMap = (r: MapRow): GameMap => ({ id: r.id, name: r.name, author: r.author, contents: r.contents, official: r.official, created: iso(r.created_at) })

const unavailable = (e: SqlError | FileStoreError) => new ConcoursUnavailable({ message: `concours database or files unavailable: ${e.message}` })

export const checkName = (raw: string, field = "name"): string | ChampionRefused => {
  const name = raw.trim()
  if (name === "") return new ChampionRefused({ field, message: "the name is empty" })
  if ([...name].length > NAME_MAX) return new ChampionRefused({ field, message: `the name is longer than ${NAME_MAX} characters` })
  if (/[\x00-\x1f\x7f]/.test(name)) return new ChampionRefused({ field, message: "the name contains control characters" })
  return name
}

export const make = (settings: ConcoursProfile) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const files = yield* FileStore

    // One query shape for the list and the detail: the page of match ids first (an index scan),
    // then only those matches joined to their players, aggregated. The ids go in as an array
    // (`= ANY(ARRAY(page))`, an index scan on the primary key): joined as a table, the planner
    // hashed the whole match table for them (0.9 instead of 1.9 ms for 100 of 10 000 matches).
    const matchRows = (page: Statement.Fragment) =>
      sql<MatchRow>`
        SELECT m.id, m.author, m.status, m.priority, m.map_id, m.tournament_id, m.created_at,
               m.server_log_digest, m.dump_digest, m.replay_digest, m.failure,
               coalesce(json_agg(json_build_object('id', p.id, 'champion', p.champion_id, 'name', c.name, 'author', c.author,
                 'score', p.score, 'nb_timeout', p.nb_timeout, 'log_digest', p.log_digest) ORDER BY p.id)
                 FILTER (WHERE p.id IS NOT NULL), '[]') AS players
        FROM match m
        LEFT JOIN match_player p ON p.match_id = m.id
        LEFT JOIN champion c ON c.id = p.champion_id
        WHERE m.id = ANY(ARRAY(${page}))
        GROUP BY m.id
        ORDER BY m.id DESC`

    const champion: ConcoursService["champion"] = (id) =>
      sql<ChampionRow>`SELECT * FROM champion WHERE id = ${id}`.pipe(
        Effect.mapError(unavailable),
        Effect.flatMap((rows) =>
          rows[0] === undefined ? Effect.fail(new NotFound({ what: "champion", message: `no champion ${id}` })) : Effect.succeed(toChampion(rows[0]))
        )
      )

    const match: ConcoursService["match"] = (id) =>
      matchRows(sql`SELECT ${id}::int AS id`).pipe(
        Effect.mapError(unavailable),
        Effect.flatMap((rows) => (rows[0] === undefined ? Effect.fail(new NotFound({ what: "match", message: `no match ${id}` })) : Effect.succeed(toMatch(rows[0]))))
      )

    const map: ConcoursService["map"] = (id) =>
      sql<MapRow>`SELECT * FROM map WHERE id = ${id}`.pipe(
        Effect.mapError(unavailable),
        Effect.flatMap((rows) => (rows[0] === undefined ? Effect.fail(new NotFound({ what: "map", message: `no map ${id}` })) : Effect.succeed(toMap(rows[0]))))
      )

    const uploadChampion: ConcoursService["uploadChampion"] = (actor, input) =>
      Effect.gen(function* () {
        const name = checkName(input.name)
        if (name instanceof ChampionRefused) return yield* name
        if (input.sources.length === 0) return yield* new ChampionRefused({ field: "sources", message: "no file uploaded" })
        if (input.sources.length > settings.max_upload_bytes) {
          return yield* new ChampionRefused({
            field: "sources",
            message: `the archive is ${input.sources.length} bytes, over the limit of ${settings.max_upload_bytes} bytes`
          })
        }
        const lang = championLanguage(input.sources)
        if (!lang.ok) return yield* new ChampionRefused({ field: "sources", message: lang.message })
        const digest = yield* Effect.mapError(files.put(input.sources), unavailable)
        const rows = yield* sql<ChampionRow>`
          INSERT INTO champion (name, author, comment, sources_digest)
          VALUES (${name}, ${actor.login}, ${input.comment.trim().slice(0, 1000)}, ${digest})
          RETURNING *`.pipe(
          Effect.catchIf(
            (e) => Option.isSome(uniqueViolation(e)),
            () => Effect.fail(new ChampionRefused({ field: "name", message: `you already have a champion named ${JSON.stringify(name)}` }))
          ),
          Effect.catchTag("SqlError", (e) => Effect.fail(unavailable(e)))
        )
        return toChampion(rows[0]!)
      })

    const champions: ConcoursService["champions"] = (f) =>
      Effect.gen(function* () {
        const where = sql.and([
          sql`NOT deleted`,
          ...(f.author === undefined ? [] : [sql`author = ${f.author}`]),
          ...(f.status === undefined ? [] : [sql`status = ${f.status}`])
        ])
        const [count] = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM champion WHERE ${where}`
        const rows = yield* sql<ChampionRow>`SELECT * FROM champion WHERE ${where} ORDER BY id DESC LIMIT ${f.limit} OFFSET ${f.offset}`
        return { count: count?.n ?? 0, results: rows.map(toChampion) }
      }).pipe(Effect.mapError(unavailable))

    const deleteChampion: ConcoursService["deleteChampion"] = (actor, id) =>
      Effect.gen(function* () {
        const current = yield* champion(id)
        if (current.deleted) return yield* new NotFound({ what: "champion", message: `no champion ${id}` })
        if (current.author !== actor.login) return yield* new Forbidden({ message: "only its author deletes a champion" })
        const rows = yield* Effect.mapError(sql<ChampionRow>`UPDATE champion SET deleted = true, updated_at = now() WHERE id = ${id} RETURNING *`, unavailable)
        return toChampion(rows[0]!)
      })

    const launchMatch: ConcoursService["launchMatch"] = (actor, input) =>
      Effect.gen(function* () {
        if (input.champions.length !== settings.nb_players) {
          return yield* new MatchRefused({ reason: "players", message: `a match needs ${settings.nb_players} champions, got ${input.champions.length}` })
        }
        if (settings.use_maps && input.map === undefined) return yield* new MatchRefused({ reason: "map", message: "choose a map" })
        const now = yield* Clock.currentTimeMillis
        return yield* sql
          .withTransaction(
            Effect.gen(function* () {
              // one launch at a time per author, so that the throttle counts every launch
              yield* sql`SELECT pg_advisory_xact_lock(hashtextextended(${`concours-launch:${actor.login}`}, 0))`
              if (input.throttle) {
                const since = new Date(now - 60_000)
                const [recent] = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM match WHERE author = ${actor.login} AND created_at > ${since}`
                if ((recent?.n ?? 0) >= settings.matches_per_minute) {
                  return yield* new MatchRefused({
                    reason: "throttled",
                    message: `too many matches: at most ${settings.matches_per_minute} per minute; wait a little before launching another`
                  })
                }
              }
              const rows = yield* sql<ChampionRow>`SELECT * FROM champion WHERE id IN ${sql.in(input.champions)}`
              for (const id of input.champions) {
                const c = rows.find((r) => r.id === id)
                if (c === undefined || c.deleted) return yield* new MatchRefused({ reason: "champion", message: `no champion ${id}` })
                if (c.status !== "ready") return yield* new MatchRefused({ reason: "champion", message: `champion ${c.name} (${id}) is not ready (${c.status})` })
                if (settings.fight_only_own_champions && !actor.staff && c.author !== actor.login) {
                  return yield* new MatchRefused({ reason: "champion", message: `champion ${id} is not yours: matches use only your own champions` })
                }
              }
              if (input.map !== undefined) {
                const found = yield* sql<{ id: number }>`SELECT id FROM map WHERE id = ${input.map}`
                if (found.length === 0) return yield* new MatchRefused({ reason: "map", message: `no map ${input.map}` })
              }
              const [created] = yield* sql<{ id: number }>`
                INSERT INTO match (author, status, priority, map_id, created_at)
                VALUES (${actor.login}, 'new', ${input.priority}, ${input.map ?? null}, ${new Date(now)}) RETURNING id`
              yield* sql`INSERT INTO match_player ${sql.insert(input.champions.map((champion_id) => ({ match_id: created!.id, champion_id })))}`
              return created!.id
            })
          )
          .pipe(
            Effect.catchTag("SqlError", (e) => Effect.fail(unavailable(e))),
            Effect.flatMap((id) => Effect.catchTag(match(id), "NotFound", () => Effect.fail(new ConcoursUnavailable({ message: "match vanished" }))))
          )
      })

    const matchesUncached = (f: MatchFilters, offset: number, limit: number) =>
      Effect.gen(function* () {
        const where = sql.and([
          sql`true`,
          ...(f.author === undefined ? [] : [sql`m.author = ${f.author}`]),
          ...(f.champion === undefined ? [] : [sql`EXISTS (SELECT 1 FROM match_player p WHERE p.match_id = m.id AND p.champion_id = ${f.champion})`]),
          ...(f.tournament === undefined ? [] : [sql`m.tournament_id = ${f.tournament}`]),
          ...(f.championAuthor === undefined
            ? []
            : [sql`EXISTS (SELECT 1 FROM match_player p JOIN champion c ON c.id = p.champion_id WHERE p.match_id = m.id AND c.author = ${f.championAuthor})`])
        ])
        // the count and the page on two connections at once
        const [[count], rows] = yield* Effect.all(
          [
            sql<{ n: number }>`SELECT count(*)::int AS n FROM match m WHERE ${where}`,
            matchRows(sql`SELECT m.id FROM match m WHERE ${where} ORDER BY m.id DESC LIMIT ${limit} OFFSET ${offset}`)
          ],
          { concurrency: 2 }
        )
        return { count: count?.n ?? 0, results: rows.map(toMatch) }
      }).pipe(Effect.mapError(unavailable))

    // Match lists (the busiest pages: everybody's /matches/ page 1, scripts polling the API) are
    // kept 1 s on the Clock, keyed by filters and page: the same list for everybody within a
    // second costs one statement. This node's own launches clear it (its author sees the new
    // match at once); the master's status changes show within the second.
    const listCache = yield* Cache.make({
      capacity: 256,
      timeToLive: Duration.seconds(1),
      lookup: (key: string) => {
        const { f, offset, limit } = JSON.parse(key) as { f: MatchFilters; offset: number; limit: number }
        return matchesUncached(f, offset, limit)
      }
    })
    const matches: ConcoursService["matches"] = (f, offset, limit) =>
      // a failure is not kept: the next request asks the database again
      Effect.tapError(listCache.get(JSON.stringify({ f, offset, limit })), () => listCache.invalidate(JSON.stringify({ f, offset, limit })))

    const interestingMatches: ConcoursService["interestingMatches"] = matchRows(sql`
      SELECT id FROM (
        SELECT id, row_number() OVER (ORDER BY total DESC, id DESC) AS rank, count(*) OVER () AS n
        FROM (SELECT m.id, coalesce(sum(p.score), 0) AS total FROM match m JOIN match_player p ON p.match_id = m.id
              WHERE m.status = 'done' GROUP BY m.id ORDER BY total DESC, m.id DESC LIMIT 1000) best
      ) ranked WHERE n <= 50 OR rank <= n / 3 + 1`).pipe(
      Effect.map((rows) => rows.map(toMatch)),
      Effect.mapError(unavailable)
    )

    const maps = sql<MapRow>`SELECT * FROM map ORDER BY official DESC, id`.pipe(
      Effect.map((rows) => rows.map(toMap)),
      Effect.mapError(unavailable)
    )

    const createMap: ConcoursService["createMap"] = (actor, input) =>
      Effect.gen(function* () {
        const name = checkName(input.name)
        if (name instanceof ChampionRefused) return yield* new MapRefused({ field: "name", message: name.message })
        // the original normalised line endings
        const contents = input.contents.replace(/\r\n?/g, "\n")
        if (contents.trim() === "") return yield* new MapRefused({ field: "contents", message: "the map is empty" })
        if (settings.map_validator !== undefined) {
          const verdict = yield* validateMap(settings.map_validator, contents, Duration.seconds(settings.map_validator_timeout_seconds))
          if (!verdict.ok) return yield* new MapRefused({ field: "contents", message: verdict.message })
        }
        const rows = yield* Effect.mapError(
          sql<MapRow>`INSERT INTO map (name, author, contents) VALUES (${name}, ${actor.login}, ${contents}) RETURNING *`,
          unavailable
        )
        return toMap(rows[0]!)
      })

    return Concours.of({
      settings,
      uploadChampion,
      champion,
      champions,
      deleteChampion,
      launchMatch: (actor, input) => Effect.tap(launchMatch(actor, input), () => listCache.invalidateAll),
      match,
      matches,
      interestingMatches,
      maps,
      map,
      createMap,
      file: (digest) => Effect.mapError(files.get(digest), (e) => new NotFound({ what: "file", message: e.message }))
    })
  })

export const layer = (settings: ConcoursProfile): Layer.Layer<Concours, never, SqlClient.SqlClient | FileStore> => Layer.effect(Concours, make(settings))

export { Priority }
