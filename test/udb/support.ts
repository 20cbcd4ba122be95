import { SqlClient } from "@effect/sql"
import { Effect, Layer, Redacted } from "effect"
import { udbRoutes } from "../../src/actors/udb/layer.js"
import * as Repo from "../../src/actors/udb/repo.js"
import * as Service from "../../src/actors/udb/service.js"
import { SystemAccounts } from "../../src/actors/udb/system-accounts.js"
import { httpHostLayer } from "../../src/runtime/http-host.js"
import { Metrics } from "../../src/runtime/metrics.js"
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

/** The UDB routes (rpc with `secret`, `/udb/call`) on a real HTTP server on 127.0.0.1, over a fresh database. */
export const UdbHostTest = (secret: string) =>
  httpHostLayer(udbRoutes(Redacted.make(secret)), { listen: { host: "127.0.0.1", port: 0 } }).pipe(
    Layer.provide(Repo.layer),
    Layer.provide(SystemAccounts.fixed(SYSTEM)),
    Layer.provide(PgTest),
    Layer.provideMerge(Metrics.layer)
  )

/** Empties the user table and resets the pools, so each test starts from a fresh UDB. */
export const resetUdb = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`DELETE FROM udb_user`
  yield* sql`UPDATE udb_uid_pool SET last = 0, max_uid = base + 999`
})
