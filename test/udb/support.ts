import { SqlClient } from "@effect/sql"
import { Effect, Layer } from "effect"
import * as Repo from "../../src/actors/udb/repo.js"
import * as Service from "../../src/actors/udb/service.js"
import { SystemAccounts } from "../../src/actors/udb/system-accounts.js"
import { PgTest } from "../support/pg.js"

/** System accounts of the pretend UDB node. */
export const SYSTEM = new Map([
  ["root", 0],
  ["http", 33],
  ["nobody", 65534]
])

/** A fresh database per test file with the UDB repo, service and fixed system accounts. */
export const UdbTest = Service.layer.pipe(
  Layer.provideMerge(Repo.layer),
  Layer.provideMerge(SystemAccounts.fixed(SYSTEM)),
  Layer.provideMerge(PgTest)
)

/** Empties the user table and resets the pools, so each test starts from a fresh UDB. */
export const resetUdb = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`DELETE FROM udb_user`
  yield* sql`UPDATE udb_uid_pool SET last = 0, max_uid = base + 999`
})
