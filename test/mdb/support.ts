import { SqlClient } from "@effect/sql"
import { expect } from "@effect/vitest"
import { Effect, Layer } from "effect"
import type { NewMachine } from "../../src/protocols/mdb.js"
import * as MdbService from "../../src/actors/mdb/service.js"
import { PgTest } from "../support/pg.js"
import { dumpDatabase } from "../support/pg-dump.js"

/** MDB over a fresh migrated database of its own (one per test file). */
export const MdbTest = MdbService.layer.pipe(Layer.provideMerge(PgTest))

/** Back to the freshly migrated state, so each test starts from the seeded pools and settings. */
export const resetMdb = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`TRUNCATE machine, machine_name, switch, change_log, sync_state, sync_revision`
  yield* sql`UPDATE ip_pool SET network = CASE mtype
      WHEN 'user' THEN '192.168.0.0/24'::cidr WHEN 'service' THEN '192.168.1.0/24'::cidr ELSE '192.168.2.0/24'::cidr END,
    reserved = CASE mtype WHEN 'service' THEN '{192.168.1.254}'::inet[] ELSE '{}'::inet[] END`
  yield* sql`UPDATE setting SET value_bool = true WHERE key = 'allow_self_registration'`
})

export const gw: NewMachine = {
  hostname: "gw",
  mac: "11:22:33:44:55:66",
  ip: "192.168.1.254",
  rfs: 0,
  hfs: 0,
  mtype: "service",
  room: "pasteur",
  aliases: "mdb,mdbsync,ns,netboot,udb,udbsync,presencesync,ntp,sso"
}

export const userMachine = (n: number): NewMachine => ({
  hostname: `pas-r01p${String(n).padStart(2, "0")}`,
  mac: `aa:bb:cc:00:00:${n.toString(16).padStart(2, "0")}`,
  mtype: "user",
  room: "pasteur"
})

/**
 * Runs a write that must be refused: returns its error, after checking that every table
 * (machines, names, pools, settings, change log, sync state) is exactly as before.
 */
export const refused = <E, R>(write: Effect.Effect<unknown, E, R>) =>
  Effect.gen(function* () {
    const before = yield* dumpDatabase
    const error = yield* Effect.flip(write)
    expect(yield* dumpDatabase).toEqual(before)
    return error
  })
