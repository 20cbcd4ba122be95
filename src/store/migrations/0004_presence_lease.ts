import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

// Presence leases (design invariant 3): one row per logged-in user, written before presence
// answers. Both keys are unique, so even a buggy writer cannot put a user on two machines or
// two users on one machine. Heartbeat refreshes are not stored: a restarted presence treats
// every row as live for one more lease period (see src/actors/presence/lease-store.ts).
export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE presence_lease (
    login text PRIMARY KEY,
    hostname text NOT NULL UNIQUE,
    since timestamptz NOT NULL
  )`
})
