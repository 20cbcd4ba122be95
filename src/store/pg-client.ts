import { PgClient } from "@effect/sql-pg"
import type { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Layer, type Redacted } from "effect"
import pg from "pg"

const INT8_OID = 20

// bigint columns (revisions, counts) come back as JS numbers: every value we store stays far
// below 2^53, and numbers keep row schemas and wire forms simple.
const types: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: "text" | "binary") =>
    oid === INT8_OID && format !== "binary"
      ? (value: string) => Number(value)
      : pg.types.getTypeParser(oid, format ?? "text")) as pg.CustomTypesConfig["getTypeParser"]
}

/** The one way this project opens a PostgreSQL pool. */
export const pgClientLayer = (
  url: Redacted.Redacted<string>,
  options: { readonly maxConnections?: number; readonly applicationName?: string } = {}
): Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, SqlError> =>
  PgClient.layer({
    url,
    types,
    maxConnections: options.maxConnections ?? 10,
    applicationName: options.applicationName ?? "prolo"
  })
