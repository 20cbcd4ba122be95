import type { SqlClient } from "@effect/sql"
import type { Fragment } from "@effect/sql/Statement"
import { Either, Option, Schema } from "effect"

/**
 * Django-style query filters (`hostname`, `mac__in`, `aliases__contains`, `uid__gte`,
 * `ssh_key__isnull`, …) as the original `query(**filters)` rpcs of MDB and UDB take them,
 * compiled to a SQL condition over a whitelist of fields. The one implementation both use.
 *
 * Semantics are Django's, with these decisions:
 * - the field is the text before `__` (the original whitelisted the text before the first `_`,
 *   which made `ssh_key` and `is_faulty` unusable);
 * - values arrive loosely typed (prolorpc sends strings): each is checked against its field's
 *   kind, so `uid__gte: "11000"` works and `uid: "abc"` is an error;
 * - `field: null` means `field IS NULL` (Django's `exact=None`), on every field;
 * - `__in` takes a list, or a comma-separated string (what a command line or prolorpc sends);
 *   an empty one matches nothing;
 * - a bad key or value is a `FilterError` whose message starts with the quoted key.
 */

/**
 * - `text`, `int`, `bool`: a scalar column;
 * - `names`: a `text[]` shown on the wire comma-joined (MDB aliases): `contains`/`icontains`
 *   match a WHOLE element (`rfs1` does not match `rfs10`); other lookups see the joined text.
 */
export type FieldKind = "text" | "int" | "bool" | "names"

export interface FieldSpec {
  readonly kind: FieldKind
  /** A trusted SQL expression, e.g. `hostname` or `host(ip)`. */
  readonly column: string
}

export class FilterError extends Schema.TaggedError<FilterError>()("FilterError", {
  key: Schema.String,
  message: Schema.String
}) {}

const TEXT_LOOKUPS = [
  "exact",
  "iexact",
  "contains",
  "icontains",
  "in",
  "startswith",
  "istartswith",
  "endswith",
  "iendswith",
  "regex",
  "iregex",
  "gt",
  "gte",
  "lt",
  "lte",
  "isnull"
] as const
const INT_LOOKUPS = ["exact", "in", "gt", "gte", "lt", "lte", "isnull"] as const
const BOOL_LOOKUPS = ["exact", "in", "isnull"] as const

/** The lookups a field of `kind` accepts, in the order error messages list them. */
export const lookupsOf = (kind: FieldKind): ReadonlyArray<string> =>
  kind === "int" ? INT_LOOKUPS : kind === "bool" ? BOOL_LOOKUPS : TEXT_LOOKUPS

type Scalar = string | number | boolean

const show = (v: unknown): string => {
  const text = JSON.stringify(v) ?? String(v)
  return text.length > 60 ? `${text.slice(0, 57)}...` : text
}

// PostgreSQL text cannot hold NUL: refused here, it is the caller's error, not the database's.
const toText = (v: unknown): Either.Either<string, string> =>
  typeof v === "string"
    ? v.includes("\u0000")
      ? Either.left("a string without NUL characters")
      : Either.right(v)
    : typeof v === "number" && Number.isFinite(v)
      ? Either.right(String(v))
      : Either.left("a string")

// Every `int` field is a PostgreSQL `integer`: a value beyond it would be refused by the
// database at run time (and read as the database failing), so it is refused here.
const INT4_MIN = -2147483648
const INT4_MAX = 2147483647

const toInt = (v: unknown): Either.Either<number, string> => {
  const n = typeof v === "number" ? v : typeof v === "string" && /^-?[0-9]{1,15}$/.test(v.trim()) ? Number(v.trim()) : NaN
  if (!Number.isSafeInteger(n)) return Either.left("an integer")
  return n < INT4_MIN || n > INT4_MAX ? Either.left(`an integer between ${INT4_MIN} and ${INT4_MAX}`) : Either.right(n)
}

// Python's str(True) is "True": prolorpc clients send that.
const BOOL_TEXT: Record<string, boolean> = { true: true, false: false, "1": true, "0": false }
const toBool = (v: unknown): Either.Either<boolean, string> => {
  if (typeof v === "boolean") return Either.right(v)
  const b = typeof v === "string" ? BOOL_TEXT[v.trim().toLowerCase()] : v === 1 ? true : v === 0 ? false : undefined
  return b === undefined ? Either.left("true or false") : Either.right(b)
}

const convert = (kind: FieldKind, v: unknown): Either.Either<Scalar, string> =>
  kind === "int" ? toInt(v) : kind === "bool" ? toBool(v) : toText(v)

const splitKey = (key: string) => {
  const at = key.indexOf("__")
  return at < 0 ? { name: key, lookup: "exact" } : { name: key.slice(0, at), lookup: key.slice(at + 2) }
}

/** Compiles `filters` to one SQL condition (`1=1` when empty), or the first bad key. */
export const compileFilters = (
  sql: SqlClient.SqlClient,
  fields: Readonly<Record<string, FieldSpec>>,
  filters: Readonly<Record<string, unknown>>
): Either.Either<Fragment, FilterError> => {
  const clauses: Array<Fragment> = []
  for (const [key, raw] of Object.entries(filters)) {
    const { name, lookup } = splitKey(key)
    const spec = Object.hasOwn(fields, name) ? fields[name] : undefined
    const bad = (message: string) => Either.left(new FilterError({ key, message }))
    if (spec === undefined) {
      return bad(`'${key}' is not a valid query argument (fields: ${Object.keys(fields).join(", ")})`)
    }
    const allowed = lookupsOf(spec.kind)
    if (!allowed.includes(lookup)) {
      return bad(`'${key}': lookup '${lookup}' is not supported on ${spec.kind} field '${name}' (use ${allowed.join(", ")})`)
    }
    const col = sql.literal(spec.column)
    const names = spec.kind === "names"
    const textCol = names ? sql.literal(`array_to_string(${spec.column}, ',')`) : col

    if (lookup === "isnull") {
      const isNull = toBool(raw)
      if (Either.isLeft(isNull)) return bad(`'${key}' must be true or false, got ${show(raw)}`)
      clauses.push(isNull.right ? sql`${col} IS NULL` : sql`${col} IS NOT NULL`)
      continue
    }
    if (lookup === "in") {
      const items = Array.isArray(raw) ? raw : typeof raw === "string" ? (raw === "" ? [] : raw.split(",")) : undefined
      if (items === undefined) return bad(`'${key}' needs a list of values (or a comma-separated string), got ${show(raw)}`)
      const values: Array<Scalar> = []
      for (const item of items) {
        const v = convert(spec.kind, item)
        if (Either.isLeft(v)) return bad(`'${key}': every value must be ${v.left}, got ${show(item)}`)
        values.push(v.right)
      }
      clauses.push(values.length === 0 ? sql.literal("false") : sql`${textCol} IN ${sql.in(values)}`)
      continue
    }
    if (raw === null && lookup === "exact") {
      clauses.push(sql`${col} IS NULL`)
      continue
    }
    const converted = convert(spec.kind, raw)
    if (Either.isLeft(converted)) return bad(`'${key}' must be ${converted.left}, got ${show(raw)}`)
    const v = converted.right
    if ((lookup === "regex" || lookup === "iregex") && typeof v === "string") {
      try {
        new RegExp(v)
      } catch {
        return bad(`'${key}': invalid regular expression ${show(v)}`)
      }
    }
    switch (lookup) {
      case "exact":
        clauses.push(sql`${textCol} = ${v}`)
        break
      case "iexact":
        clauses.push(sql`lower(${textCol}) = lower(${v})`)
        break
      case "contains":
        clauses.push(names ? sql`${v} = ANY(${col})` : sql`position(${v} in ${col}) > 0`)
        break
      case "icontains":
        clauses.push(
          names
            ? sql`EXISTS (SELECT 1 FROM unnest(${col}) AS n WHERE lower(n) = lower(${v}))`
            : sql`position(lower(${v}) in lower(${col})) > 0`
        )
        break
      case "startswith":
        clauses.push(sql`starts_with(${textCol}, ${v})`)
        break
      case "istartswith":
        clauses.push(sql`starts_with(lower(${textCol}), lower(${v}))`)
        break
      case "endswith":
        clauses.push(sql`right(${textCol}, char_length(${v})) = ${v}`)
        break
      case "iendswith":
        clauses.push(sql`lower(right(${textCol}, char_length(${v}))) = lower(${v})`)
        break
      case "regex":
        clauses.push(sql`${textCol} ~ ${v}`)
        break
      case "iregex":
        clauses.push(sql`${textCol} ~* ${v}`)
        break
      case "gt":
        clauses.push(sql`${textCol} > ${v}`)
        break
      case "gte":
        clauses.push(sql`${textCol} >= ${v}`)
        break
      case "lt":
        clauses.push(sql`${textCol} < ${v}`)
        break
      case "lte":
        clauses.push(sql`${textCol} <= ${v}`)
        break
    }
  }
  return Either.right(sql.and(clauses))
}

const pgCode = (cause: unknown): unknown =>
  typeof cause === "object" && cause !== null && "code" in cause ? cause.code : undefined

/**
 * PostgreSQL refused a filter value at run time that the checks above let through (a regular
 * expression valid in JavaScript but not in PostgreSQL's dialect): the error naming the keys
 * that can have caused it, or none when `cause` is something else.
 */
export const refusedFilter = (filters: Readonly<Record<string, unknown>>, cause: unknown): Option.Option<FilterError> => {
  const code = pgCode(cause)
  if (code !== "2201B" && code !== "22P02") return Option.none()
  const keys = Object.keys(filters)
  const regexKeys = keys.filter((k) => /__i?regex$/.test(k))
  const key = (code === "2201B" && regexKeys.length > 0 ? regexKeys : keys).join(",")
  const reason = cause instanceof Error ? cause.message : String(cause)
  const what = code === "2201B" ? "invalid regular expression" : "invalid value"
  return Option.some(new FilterError({ key, message: `'${key}': ${what} (${reason})` }))
}
