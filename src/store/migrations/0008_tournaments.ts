import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

// Tournaments of the concours (the original's Tournament, TournamentPlayer, TournamentMap):
// a set of champions and maps, round-robin matches (match.tournament_id, TOURNAMENT priority)
// and, once evaluated, each champion's score. Written by the website only (staff actions).
export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE tournament (
    id serial PRIMARY KEY,
    name text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    visible boolean NOT NULL DEFAULT false,
    evaluated boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now()
  )`
  yield* sql`CREATE TABLE tournament_player (
    tournament_id integer NOT NULL REFERENCES tournament (id) ON DELETE CASCADE,
    champion_id integer NOT NULL REFERENCES champion (id),
    score integer,
    correction text NOT NULL DEFAULT '',
    in_jury_report boolean NOT NULL DEFAULT false,
    PRIMARY KEY (tournament_id, champion_id)
  )`
  yield* sql`CREATE TABLE tournament_map (
    tournament_id integer NOT NULL REFERENCES tournament (id) ON DELETE CASCADE,
    map_id integer NOT NULL REFERENCES map (id),
    PRIMARY KEY (tournament_id, map_id)
  )`
  yield* sql`ALTER TABLE match ADD CONSTRAINT match_tournament_fk FOREIGN KEY (tournament_id) REFERENCES tournament (id)`
})
