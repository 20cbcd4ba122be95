import { Schema } from "effect"

/**
 * Django-style filters of the original `query(**filters)` rpcs, e.g. `{ login: "jdoe" }`,
 * `{ aliases__contains: "rfs0" }`, `{ uid__gte: 11000 }`, `{ mtype__in: [...] }`.
 * Values stay loosely typed on the wire (prolorpc sends every value as a string); the server
 * validates each key and value and answers `InvalidFilter` naming the offending key.
 */
export const Filters = Schema.Record({ key: Schema.String, value: Schema.Unknown })
export type Filters = typeof Filters.Type

export class InvalidFilter extends Schema.TaggedError<InvalidFilter>()("InvalidFilter", {
  key: Schema.String,
  message: Schema.String
}) {}
