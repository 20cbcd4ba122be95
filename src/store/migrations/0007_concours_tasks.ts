import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

// The concours' task tables (spec matches.md §3, the original's Django models), which are also
// the match cluster's queue. The master is their one writer for everything after `new`
// (status, lease, results); the website inserts rows (`new`) and soft-deletes champions.
//
// Lease columns (both champions' compilations and matches): `lease_worker` holds the worker
// (its host name) running the current attempt, `attempt` grows on every dispatch, and
// `lease_expiry` (epoch millis, read from the master's Clock) is when the attempt times out.
// A result is recorded only by a compare-and-set on (id, attempt, lease_worker, status =
// 'pending'), in the transaction that writes its scores and file digests: each result exactly
// once, whatever died. `last_worker` is kept after a lease ends so that a task taken from a
// worker goes to another one; `released_at` (epoch millis) is when it was taken back, for the
// redispatch-delay figure. `tries_from` is the attempt an operator's requeue started from: the
// tries limit counts `attempt - tries_from`, while `attempt` itself never goes back (a result
// of any earlier attempt can never match again). Files (sources, compiled champion, logs, dump, replay, stats) live in
// the content-addressed file store and are referenced by their SHA-256 (64 hex digits).
export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE map (
    id serial PRIMARY KEY,
    name text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 25),
    author text NOT NULL,
    contents text NOT NULL,
    official boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now()
  )`
  yield* sql`CREATE TABLE champion (
    id serial PRIMARY KEY,
    name text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 25),
    author text NOT NULL,
    status text NOT NULL DEFAULT 'new' CHECK (status IN ('new', 'pending', 'ready', 'error', 'failed')),
    deleted boolean NOT NULL DEFAULT false,
    comment text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    sources_digest text NOT NULL CHECK (sources_digest ~ '^[0-9a-f]{64}$'),
    compiled_digest text CHECK (compiled_digest ~ '^[0-9a-f]{64}$'),
    log_digest text CHECK (log_digest ~ '^[0-9a-f]{64}$'),
    failure text,
    lease_worker text,
    attempt integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    tries_from integer NOT NULL DEFAULT 0 CHECK (tries_from >= 0 AND tries_from <= attempt),
    lease_expiry bigint,
    last_worker text,
    released_at bigint,
    CHECK ((status = 'pending') = (lease_worker IS NOT NULL AND lease_expiry IS NOT NULL)),
    CHECK (status <> 'ready' OR compiled_digest IS NOT NULL)
  )`
  // Unique per author among the champions not deleted (a deleted name may be reused).
  yield* sql`CREATE UNIQUE INDEX champion_author_name ON champion (author, name) WHERE NOT deleted`
  yield* sql`CREATE INDEX champion_queue ON champion (id) WHERE status = 'new'`
  yield* sql`CREATE INDEX champion_leases ON champion (lease_expiry) WHERE status = 'pending'`
  yield* sql`CREATE TABLE match (
    id serial PRIMARY KEY,
    author text NOT NULL,
    status text NOT NULL DEFAULT 'new' CHECK (status IN ('creating', 'new', 'pending', 'done', 'failed')),
    priority integer NOT NULL DEFAULT 700,
    map_id integer REFERENCES map (id),
    options jsonb NOT NULL DEFAULT '{}',
    tournament_id integer,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    server_log_digest text CHECK (server_log_digest ~ '^[0-9a-f]{64}$'),
    dump_digest text CHECK (dump_digest ~ '^[0-9a-f]{64}$'),
    replay_digest text CHECK (replay_digest ~ '^[0-9a-f]{64}$'),
    stats_digest text CHECK (stats_digest ~ '^[0-9a-f]{64}$'),
    failure text,
    lease_worker text,
    attempt integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    tries_from integer NOT NULL DEFAULT 0 CHECK (tries_from >= 0 AND tries_from <= attempt),
    lease_expiry bigint,
    last_worker text,
    released_at bigint,
    CHECK ((status = 'pending') = (lease_worker IS NOT NULL AND lease_expiry IS NOT NULL))
  )`
  yield* sql`CREATE INDEX match_queue ON match (priority DESC, id) WHERE status = 'new'`
  yield* sql`CREATE INDEX match_leases ON match (lease_expiry) WHERE status = 'pending'`
  yield* sql`CREATE INDEX match_tournament ON match (tournament_id) WHERE tournament_id IS NOT NULL`
  yield* sql`CREATE TABLE match_player (
    id serial PRIMARY KEY,
    match_id integer NOT NULL REFERENCES match (id) ON DELETE CASCADE,
    champion_id integer NOT NULL REFERENCES champion (id),
    score integer,
    nb_timeout integer CHECK (nb_timeout >= 0),
    log_digest text CHECK (log_digest ~ '^[0-9a-f]{64}$')
  )`
  yield* sql`CREATE INDEX match_player_match ON match_player (match_id)`
  yield* sql`CREATE INDEX match_player_champion ON match_player (champion_id)`
})
