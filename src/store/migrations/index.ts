import type { Effect } from "effect"
import type { SqlClient } from "@effect/sql"
import changeLog from "./0001_change_log.js"
import mdb from "./0002_mdb.js"
import udb from "./0003_udb.js"
import presenceLease from "./0004_presence_lease.js"
import hfsLocation from "./0005_hfs_location.js"
import concoursTasks from "./0007_concours_tasks.js"
import tournaments from "./0008_tournaments.js"

/**
 * Every migration of the shared database, in order. One list for all subsystems: ids are
 * global, so a subsystem adds its `NNNN_name.ts` here with the next free number.
 */
export const migrations: Record<string, Effect.Effect<void, unknown, SqlClient.SqlClient>> = {
  "0001_change_log": changeLog,
  "0002_mdb": mdb,
  "0003_udb": udb,
  "0004_presence_lease": presenceLease,
  "0005_hfs_location": hfsLocation,
  "0007_concours_tasks": concoursTasks,
  "0008_tournaments": tournaments
}
