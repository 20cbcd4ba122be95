import { SqlClient } from "@effect/sql"
import { expect } from "@effect/vitest"
import { Effect, Layer, Redacted } from "effect"
import { callCompatRoutes } from "../../src/actors/mdb/call-compat.js"
import { MdbHandlers } from "../../src/actors/mdb/handlers.js"
import { RegistrationGate, type RegistrationPolicy } from "../../src/actors/mdb/registration-gate.js"
import type { NewMachine } from "../../src/protocols/mdb.js"
import * as MdbService from "../../src/actors/mdb/service.js"
import { MdbRpcs } from "../../src/protocols/mdb.js"
import { httpHostLayer } from "../../src/runtime/http-host.js"
import { Metrics } from "../../src/runtime/metrics.js"
import { rpcRoute } from "../../src/runtime/rpc-route.js"
import { PgTest } from "../support/pg.js"
import { dumpDatabase } from "../support/pg-dump.js"

export { gw, gwMachine } from "./fixtures.js"

/** MDB over a fresh migrated database of its own (one per test file). */
export const MdbTest = MdbService.layer.pipe(Layer.provideMerge(PgTest))

/** Self-registration on, with limits no test of the other features reaches. */
export const OPEN_REGISTRATION: RegistrationPolicy = { enabled: true, perSourcePerMinute: 1000, perMinute: 1000 }

/**
 * The MDB routes (rpc with `secret`, `/call`) on a real HTTP server on 127.0.0.1, over a fresh
 * database, with the self-registration `policy`.
 */
export const MdbHostTest = (secret: string, policy: RegistrationPolicy = OPEN_REGISTRATION) =>
  httpHostLayer(
    Layer.mergeAll(rpcRoute({ service: "mdb", group: MdbRpcs, handlers: MdbHandlers, secret: Redacted.make(secret) }), callCompatRoutes),
    { listen: { host: "127.0.0.1", port: 0 } }
  ).pipe(Layer.provide(RegistrationGate.layer(policy)), Layer.provideMerge(MdbTest), Layer.provideMerge(Metrics.layer))

/** Back to the freshly migrated state, so each test starts from the seeded pools and settings. */
export const resetMdb = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`TRUNCATE machine, machine_name, switch, change_log, sync_state, sync_revision`
  yield* sql`UPDATE ip_pool SET network = CASE mtype
      WHEN 'user' THEN '192.168.0.0/24'::cidr WHEN 'service' THEN '192.168.1.0/24'::cidr ELSE '192.168.2.0/24'::cidr END,
    reserved = CASE mtype WHEN 'service' THEN '{192.168.1.254}'::inet[] ELSE '{}'::inet[] END`
  yield* sql`UPDATE setting SET value_bool = true WHERE key = 'allow_self_registration'`
})

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
