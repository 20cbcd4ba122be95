import { SqlClient, type Statement } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Context, Effect, Layer } from "effect"
import type { ConcoursProfile } from "../config.js"
import { ConcoursUnavailable, NotFound, Priority } from "./model.js"
import { evaluate, rank, roundRobin, type Scoring } from "./round-robin.js"
import { Schema } from "effect"

// Tournaments (migration 0008): staff create one from the latest ready champion of each
// contestant (uploaded before now) and the official maps, launch its round robin (TOURNAMENT
// priority, 300), evaluate it once every match is done, and may correct a champion's score.

export class TournamentRefused extends Schema.TaggedError<TournamentRefused>()("TournamentRefused", { message: Schema.String }) {}

export interface TournamentRow {
  readonly id: number
  readonly name: string
  readonly visible: boolean
  readonly evaluated: boolean
  readonly created: string
  readonly players: number
  readonly matches: number
}

export interface Standing {
  readonly champion: number
  readonly name: string
  readonly author: string
  readonly score: number
  readonly rank: number
  readonly correction: string
}

/** What the REST API nests in a tournament, and its `stats/`. */
export interface TournamentMembers {
  readonly tournament: TournamentRow
  readonly players: ReadonlyArray<{ readonly champion: number; readonly score: number; readonly matches: number; readonly matchScore: number }>
  readonly maps: ReadonlyArray<number>
}

export interface TournamentsService {
  readonly list: (staff: boolean) => Effect.Effect<ReadonlyArray<TournamentRow>, ConcoursUnavailable>
  readonly create: (name: string, isStaff: (login: string) => boolean) => Effect.Effect<number, TournamentRefused | ConcoursUnavailable>
  readonly launch: (id: number, repeat: number) => Effect.Effect<number, TournamentRefused | NotFound | ConcoursUnavailable>
  readonly evaluate: (id: number, scoring: Scoring) => Effect.Effect<void, TournamentRefused | NotFound | ConcoursUnavailable>
  readonly standings: (id: number, staff: boolean) => Effect.Effect<{ readonly tournament: TournamentRow; readonly standings: ReadonlyArray<Standing> }, NotFound | ConcoursUnavailable>
  readonly members: (id: number, staff: boolean) => Effect.Effect<TournamentMembers, NotFound | ConcoursUnavailable>
  readonly correct: (id: number, champion: number, score: number, comment: string) => Effect.Effect<void, TournamentRefused | NotFound | ConcoursUnavailable>
}

export class Tournaments extends Context.Tag("prolo/web/Tournaments")<Tournaments, TournamentsService>() {}

const unavailable = (e: SqlError) => new ConcoursUnavailable({ message: `concours database unavailable: ${e.message}` })

export const make = (settings: ConcoursProfile) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = (where: Statement.Fragment) =>
      sql<{ id: number; name: string; visible: boolean; evaluated: boolean; created_at: Date; players: number; matches: number }>`
        SELECT t.id, t.name, t.visible, t.evaluated, t.created_at,
               (SELECT count(*)::int FROM tournament_player p WHERE p.tournament_id = t.id) AS players,
               (SELECT count(*)::int FROM match m WHERE m.tournament_id = t.id) AS matches
        FROM tournament t WHERE ${where} ORDER BY t.id DESC`.pipe(
        Effect.map((rs) => rs.map((r): TournamentRow => ({ ...r, created: r.created_at.toISOString() })))
      )
    const one = (id: number, staff: boolean) =>
      Effect.flatMap(rows(staff ? sql`t.id = ${id}` : sql`t.id = ${id} AND t.visible`), (rs) =>
        rs[0] === undefined ? Effect.fail(new NotFound({ what: "tournament", message: `no tournament ${id}` })) : Effect.succeed(rs[0])
      )

    const service: TournamentsService = {
      list: (staff) => Effect.mapError(rows(staff ? sql`true` : sql`t.visible`), unavailable),
      create: (name, isStaff) =>
        Effect.gen(function* () {
          if (name.trim() === "" || name.length > 100) return yield* new TournamentRefused({ message: "a tournament needs a name of 1 to 100 characters" })
          const latest = yield* sql<{ id: number; author: string }>`
            SELECT DISTINCT ON (author) id, author FROM champion
            WHERE status = 'ready' AND NOT deleted ORDER BY author, created_at DESC, id DESC`
          const champions = latest.filter((c) => !isStaff(c.author)).map((c) => c.id)
          if (champions.length < settings.nb_players) {
            return yield* new TournamentRefused({ message: `only ${champions.length} contestants have a ready champion; a match needs ${settings.nb_players}` })
          }
          return yield* sql.withTransaction(
            Effect.gen(function* () {
              const [t] = yield* sql<{ id: number }>`INSERT INTO tournament (name) VALUES (${name.trim()}) RETURNING id`
              yield* sql`INSERT INTO tournament_player ${sql.insert(champions.map((champion_id) => ({ tournament_id: t!.id, champion_id })))}`
              yield* sql`INSERT INTO tournament_map (tournament_id, map_id) SELECT ${t!.id}, id FROM map WHERE official`
              return t!.id
            })
          )
        }).pipe(Effect.catchTag("SqlError", (e) => Effect.fail(unavailable(e)))),
      launch: (id, repeat) =>
        Effect.gen(function* () {
          const t = yield* one(id, true)
          if (t.matches > 0) return yield* new TournamentRefused({ message: `tournament ${id} already has its ${t.matches} matches` })
          if (!Number.isInteger(repeat) || repeat < 1 || repeat > 20) return yield* new TournamentRefused({ message: "repeat must be 1 to 20" })
          const players = (yield* sql<{ champion_id: number }>`SELECT champion_id FROM tournament_player WHERE tournament_id = ${id} ORDER BY champion_id`).map((r) => r.champion_id)
          const maps = (yield* sql<{ map_id: number }>`SELECT map_id FROM tournament_map WHERE tournament_id = ${id} ORDER BY map_id`).map((r) => r.map_id)
          const planned = roundRobin(players, settings.use_maps ? maps : [], settings.nb_players, repeat)
          yield* sql.withTransaction(
            Effect.forEach(planned, (m) =>
              Effect.flatMap(
                sql<{ id: number }>`INSERT INTO match (author, status, priority, map_id, tournament_id) VALUES ('tournament', 'new', ${Priority.tournament}, ${m.map ?? null}, ${id}) RETURNING id`,
                ([row]) => sql`INSERT INTO match_player ${sql.insert(m.champions.map((champion_id) => ({ match_id: row!.id, champion_id })))}`
              ),
              { discard: true }
            )
          )
          return planned.length
        }).pipe(Effect.catchTag("SqlError", (e) => Effect.fail(unavailable(e)))),
      evaluate: (id, scoring) =>
        Effect.gen(function* () {
          yield* one(id, true)
          const [pending] = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM match WHERE tournament_id = ${id} AND status <> 'done'`
          if ((pending?.n ?? 0) > 0) return yield* new TournamentRefused({ message: `${pending!.n} matches of tournament ${id} are not done yet` })
          const players = yield* sql<{ match_id: number; champion_id: number; score: number | null }>`
            SELECT p.match_id, p.champion_id, p.score FROM match_player p JOIN match m ON m.id = p.match_id WHERE m.tournament_id = ${id}`
          const byMatch = new Map<number, Array<{ champion: number; score: number | null }>>()
          for (const p of players) byMatch.set(p.match_id, [...(byMatch.get(p.match_id) ?? []), { champion: p.champion_id, score: p.score }])
          const champions = (yield* sql<{ champion_id: number }>`SELECT champion_id FROM tournament_player WHERE tournament_id = ${id}`).map((r) => r.champion_id)
          const scores = evaluate([...byMatch.values()].map((ps) => ({ players: ps })), champions, scoring)
          yield* sql.withTransaction(
            Effect.zipRight(
              Effect.forEach([...scores], ([champion, score]) => sql`UPDATE tournament_player SET score = ${score} WHERE tournament_id = ${id} AND champion_id = ${champion}`, { discard: true }),
              sql`UPDATE tournament SET evaluated = true WHERE id = ${id}`
            )
          )
        }).pipe(Effect.catchTag("SqlError", (e) => Effect.fail(unavailable(e)))),
      standings: (id, staff) =>
        Effect.gen(function* () {
          const tournament = yield* one(id, staff)
          const players = yield* sql<{ champion_id: number; name: string; author: string; score: number | null; correction: string }>`
            SELECT p.champion_id, c.name, c.author, p.score, p.correction FROM tournament_player p JOIN champion c ON c.id = p.champion_id WHERE p.tournament_id = ${id}`
          const standings = rank(players.map((p) => ({ champion: p.champion_id, name: p.name, author: p.author, score: p.score ?? 0, correction: staff ? p.correction : "" })))
          return { tournament, standings }
        }).pipe(Effect.catchTag("SqlError", (e) => Effect.fail(unavailable(e)))),
      members: (id, staff) =>
        Effect.gen(function* () {
          const tournament = yield* one(id, staff)
          // each player's tournament score, and its done matches' count and score sum (the original's stats)
          const players = yield* sql<{ champion_id: number; score: number | null; matches: number; match_score: number }>`
            SELECT t.champion_id, t.score, count(p.id)::int AS matches, coalesce(sum(p.score), 0)::int AS match_score
            FROM tournament_player t
            LEFT JOIN (match_player p JOIN match m ON m.id = p.match_id AND m.tournament_id = ${id} AND m.status = 'done') ON p.champion_id = t.champion_id
            WHERE t.tournament_id = ${id} GROUP BY t.champion_id, t.score ORDER BY t.champion_id`
          const maps = yield* sql<{ map_id: number }>`SELECT map_id FROM tournament_map WHERE tournament_id = ${id} ORDER BY map_id`
          return {
            tournament,
            players: players.map((p) => ({ champion: p.champion_id, score: p.score ?? 0, matches: p.matches, matchScore: p.match_score })),
            maps: maps.map((m) => m.map_id)
          }
        }).pipe(Effect.catchTag("SqlError", (e) => Effect.fail(unavailable(e)))),
      correct: (id, champion, score, comment) =>
        Effect.gen(function* () {
          if (!Number.isSafeInteger(champion) || !Number.isSafeInteger(score)) {
            return yield* new TournamentRefused({ message: "a correction needs a champion id and an integer score" })
          }
          const updated = yield* sql`UPDATE tournament_player SET score = ${score}, correction = ${comment} WHERE tournament_id = ${id} AND champion_id = ${champion} RETURNING champion_id`
          if (updated.length === 0) return yield* new NotFound({ what: "tournament player", message: `champion ${champion} is not in tournament ${id}` })
        }).pipe(Effect.catchTag("SqlError", (e) => Effect.fail(unavailable(e))))
    }
    return Tournaments.of(service)
  })

export const layer = (settings: ConcoursProfile) => Layer.effect(Tournaments, make(settings))
