import { Schema } from "effect"

/**
 * Django-style filters of the original `query(**filters)` rpcs of MDB and UDB, e.g.
 * `{ login: "jdoe" }`, `{ aliases__contains: "rfs0" }`, `{ uid__gte: 11000 }`,
 * `{ mtype__in: [...] }` (or `"user,orga"`), `{ ssh_key: null }` / `{ ssh_key__isnull: true }`.
 * Values stay loosely typed on the wire (prolorpc sends every value as a string); the server
 * validates each key and value (one implementation for both: src/store/filters.ts) and answers
 * `InvalidFilter` naming the offending key, its message starting with the quoted key, e.g.
 * `'owner' is not a valid query argument (fields: hostname, aliases, …)`.
 */
export const Filters = Schema.Record({ key: Schema.String, value: Schema.Unknown })
export type Filters = typeof Filters.Type

export class InvalidFilter extends Schema.TaggedError<InvalidFilter>()("InvalidFilter", {
  key: Schema.String,
  message: Schema.String
}) {}
