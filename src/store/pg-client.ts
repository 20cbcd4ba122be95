import { PgClient } from "@effect/sql-pg"
import type { SqlClient } from "@effect/sql"
import type { SqlError } from "@effect/sql/SqlError"
import { Duration, Layer, Redacted } from "effect"
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

/** How long one statement may take unless `node.yml` → `database.query_timeout_seconds` says otherwise. */
export const DEFAULT_QUERY_TIMEOUT = Duration.seconds(30)

// node-postgres reads both from the connection string (its query parameters become client
// options): `statement_timeout` makes the server cancel a slow statement; `query_timeout`
// fails the call on our side when the server does not answer at all (stopped, wedged, a
// dead network). The client waits a second longer, so that a server that does answer
// reports its own precise cancellation (57014). Settings already in the URL are the
// operator's and win.
const CLIENT_GRACE_MS = 1000

const withTimeouts = (url: Redacted.Redacted<string>, millis: number): Redacted.Redacted<string> => {
  const value = Redacted.value(url)
  const wanted: ReadonlyArray<readonly [string, number]> = [
    ["statement_timeout", millis],
    ["query_timeout", millis + CLIENT_GRACE_MS]
  ]
  const extra = wanted.filter(([name]) => !new RegExp(`[?&]${name}=`).test(value)).map(([name, ms]) => `${name}=${ms}`)
  if (extra.length === 0) return url
  return Redacted.make(`${value}${value.includes("?") ? "&" : "?"}${extra.join("&")}`)
}

/** The one way this project opens a PostgreSQL pool: every statement and every connection attempt is bounded. */
export const pgClientLayer = (
  url: Redacted.Redacted<string>,
  options: {
    readonly maxConnections?: number
    readonly applicationName?: string
    readonly queryTimeout?: Duration.DurationInput
  } = {}
): Layer.Layer<PgClient.PgClient | SqlClient.SqlClient, SqlError> => {
  const timeout = Duration.decode(options.queryTimeout ?? DEFAULT_QUERY_TIMEOUT)
  const millis = Math.max(1, Math.round(Duration.toMillis(timeout)))
  return PgClient.layer({
    url: withTimeouts(url, millis),
    types,
    maxConnections: options.maxConnections ?? 10,
    applicationName: options.applicationName ?? "prolo",
    connectTimeout: Duration.millis(millis + CLIENT_GRACE_MS)
  })
}
