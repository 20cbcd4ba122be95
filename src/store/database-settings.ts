import { Schema } from "effect"
import { Secret } from "../runtime/secret.js"

/** `node.yml` → `database`: an external server (`url`), else the embedded one in `data_dir`. */
export const DatabaseSettings = Schema.Struct({
  url: Schema.optional(Secret),
  data_dir: Schema.optional(Schema.NonEmptyString),
  max_connections: Schema.optional(Schema.Int.pipe(Schema.between(1, 1000))),
  /** Bound on every statement and connection attempt (default 30 s). */
  query_timeout_seconds: Schema.optional(
    Schema.Number.pipe(Schema.between(0.1, 3600)).annotations({ description: "a number of seconds between 0.1 and 3600" })
  )
})
export type DatabaseSettings = typeof DatabaseSettings.Type

