import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

// The shared change log read by the sync hub (see ../change-log.ts for the contract).
export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE sync_revision (
    topic text PRIMARY KEY,
    revision bigint NOT NULL
  )`
  yield* sql`CREATE TABLE change_log (
    topic text NOT NULL,
    revision bigint NOT NULL,
    seq int NOT NULL,
    key text NOT NULL,
    op text NOT NULL CHECK (op IN ('update', 'delete')),
    record jsonb,
    committed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, revision, seq)
  )`
  yield* sql`CREATE TABLE sync_state (
    topic text NOT NULL,
    key text NOT NULL,
    record jsonb NOT NULL,
    revision bigint NOT NULL,
    PRIMARY KEY (topic, key)
  )`
})
