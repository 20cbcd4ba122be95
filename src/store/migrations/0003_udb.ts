import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

// User database (spec udb.md §1). Pools are bounded so that one group never spills into
// the next range; `last` is a high-water mark, so a deleted user's uid is never handed out again.
export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE udb_uid_pool (
    user_group text PRIMARY KEY CHECK (user_group IN ('user', 'orga', 'root')),
    base integer NOT NULL UNIQUE,
    max_uid integer NOT NULL,
    last integer NOT NULL DEFAULT 0,
    CHECK (base + last <= max_uid)
  )`
  yield* sql`INSERT INTO udb_uid_pool (user_group, base, max_uid) VALUES
    ('user', 10000, 10999), ('orga', 11000, 11999), ('root', 12000, 12999)`
  yield* sql`CREATE TABLE udb_user (
    id serial PRIMARY KEY,
    login text NOT NULL UNIQUE CHECK (login ~ '^[a-z_][a-z0-9_]{0,30}$'),
    firstname text NOT NULL CHECK (char_length(firstname) <= 64),
    lastname text NOT NULL CHECK (char_length(lastname) <= 64),
    uid integer NOT NULL UNIQUE,
    user_group text NOT NULL CHECK (user_group IN ('user', 'orga', 'root')),
    password text NOT NULL CHECK (char_length(password) <= 64),
    shell text NOT NULL DEFAULT '/bin/bash' CHECK (char_length(shell) <= 64),
    ssh_key text CHECK (char_length(ssh_key) <= 4096)
  )`
})
