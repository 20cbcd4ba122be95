import { SqlClient } from "@effect/sql"
import { Effect } from "effect"

// Where each user's home lives (spec hfs.md §2, the original's `user_location` without its
// flaws: no key, no uniqueness, no transactions). One row per login and home set; `contest`
// is the original's separate `hfscontest` database: switching contest mode gives everybody
// a fresh set of homes while the others are kept aside.
//
// `generation` grows on every grant (and on every migration commit): it is the NBD fencing
// number, and every change is a compare-and-set on it (src/actors/hfs/locations.ts), so two
// HFS racing for one home cannot both win. `state` is 'ready', or 'migrating' while the home
// is being copied to `migrate_to` (the source stays authoritative until the destination
// commits hfs = migrate_to, generation + 1).
export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE hfs_location (
    contest boolean NOT NULL,
    login text NOT NULL CHECK (login ~ '^[a-z_][a-z0-9_]{0,30}$'),
    hfs integer NOT NULL CHECK (hfs >= 0),
    generation bigint NOT NULL CHECK (generation >= 0),
    state text NOT NULL DEFAULT 'ready' CHECK (state IN ('ready', 'migrating')),
    migrate_to integer CHECK (migrate_to >= 0),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (contest, login),
    CHECK ((state = 'migrating') = (migrate_to IS NOT NULL))
  )`
  yield* sql`CREATE INDEX hfs_location_hfs ON hfs_location (contest, hfs)`
})
