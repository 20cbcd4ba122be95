import type { Statement } from "@effect/sql"
import { Either } from "effect"
import { InvalidFilter } from "../../protocols/udb.js"

// Django-style query filters of the original `query(**filters)` (rpc-and-auth.md §7), parsed
// into a checked list, then compiled to SQL. The field is split at `__` (the original split at
// the first `_`, which made `ssh_key` unusable).

export const FILTER_FIELDS = ["login", "uid", "group", "shell", "ssh_key", "id"] as const
export type FilterField = (typeof FILTER_FIELDS)[number]

const TEXT_LOOKUPS = ["iexact", "contains", "icontains", "startswith", "istartswith", "endswith", "iendswith", "regex", "iregex"] as const
const ORDER_LOOKUPS = ["gt", "gte", "lt", "lte"] as const
export const LOOKUPS = ["exact", "in", "isnull", ...ORDER_LOOKUPS, ...TEXT_LOOKUPS] as const
export type Lookup = (typeof LOOKUPS)[number]

const INT_FIELDS: ReadonlySet<FilterField> = new Set(["uid", "id"])
const COLUMN: Record<FilterField, string> = {
  login: "login",
  uid: "uid",
  group: "user_group",
  shell: "shell",
  ssh_key: "ssh_key",
  id: "id"
}

type Scalar = string | number
export type Filter =
  | { readonly field: FilterField; readonly lookup: "exact"; readonly value: Scalar | null }
  | { readonly field: FilterField; readonly lookup: "in"; readonly value: ReadonlyArray<Scalar> }
  | { readonly field: FilterField; readonly lookup: "isnull"; readonly value: boolean }
  | { readonly field: FilterField; readonly lookup: (typeof ORDER_LOOKUPS)[number]; readonly value: Scalar }
  | { readonly field: FilterField; readonly lookup: (typeof TEXT_LOOKUPS)[number]; readonly value: string }

const isLookup = (s: string): s is Lookup => (LOOKUPS as ReadonlyArray<string>).includes(s)
const isField = (s: string): s is FilterField => (FILTER_FIELDS as ReadonlyArray<string>).includes(s)

export const parseFilters = (filters: Readonly<Record<string, unknown>>): Either.Either<ReadonlyArray<Filter>, InvalidFilter> => {
  const out: Array<Filter> = []
  for (const [key, raw] of Object.entries(filters)) {
    const bad = (why: string) => Either.left(new InvalidFilter({ key, message: `'${key}' ${why}` }))
    const parts = key.split("__")
    const fieldName = parts[0]!
    const lookup = parts.length === 1 ? "exact" : parts.length === 2 ? parts[1]! : undefined
    if (!isField(fieldName)) return bad(`is not a valid query argument (fields: ${FILTER_FIELDS.join(", ")})`)
    if (lookup === undefined || !isLookup(lookup)) return bad(`has an unknown lookup (lookups: ${LOOKUPS.join(", ")})`)
    const field = fieldName
    const isInt = INT_FIELDS.has(field)
    // prolorpc sends every value as a string, JSON clients send numbers: accept both.
    const scalar = (v: unknown): Scalar | undefined => {
      if (isInt) {
        if (typeof v === "number" && Number.isSafeInteger(v)) return v
        if (typeof v === "string" && /^-?[0-9]{1,15}$/.test(v.trim())) return Number(v.trim())
        return undefined
      }
      if (typeof v === "string") return v
      if (typeof v === "number" && Number.isFinite(v)) return String(v)
      return undefined
    }
    const expected = isInt ? "an integer" : "a string"
    switch (lookup) {
      case "exact": {
        if (raw === null) {
          out.push({ field, lookup, value: null })
          break
        }
        const v = scalar(raw)
        if (v === undefined) return bad(`expects ${expected}`)
        out.push({ field, lookup, value: v })
        break
      }
      case "in": {
        const items = Array.isArray(raw) ? raw : typeof raw === "string" ? (raw === "" ? [] : raw.split(",")) : undefined
        if (items === undefined) return bad("expects a list (or a comma-separated string)")
        const values: Array<Scalar> = []
        for (const item of items) {
          const v = scalar(item)
          if (v === undefined) return bad(`expects a list of ${isInt ? "integers" : "strings"}`)
          values.push(v)
        }
        out.push({ field, lookup, value: values })
        break
      }
      case "isnull": {
        const v = raw === true || raw === "true" || raw === "True" || raw === "1" || raw === 1
          ? true
          : raw === false || raw === "false" || raw === "False" || raw === "0" || raw === 0
            ? false
            : undefined
        if (v === undefined) return bad("expects true or false")
        out.push({ field, lookup, value: v })
        break
      }
      case "gt":
      case "gte":
      case "lt":
      case "lte": {
        const v = scalar(raw)
        if (v === undefined) return bad(`expects ${expected}`)
        out.push({ field, lookup, value: v })
        break
      }
      default: {
        if (isInt) return bad(`: lookup ${lookup} applies to text fields only`)
        if (typeof raw !== "string") return bad("expects a string")
        if (lookup === "regex" || lookup === "iregex") {
          try {
            new RegExp(raw)
          } catch (e) {
            return bad(`is not a valid regular expression (${e instanceof Error ? e.message : String(e)})`)
          }
        }
        out.push({ field, lookup, value: raw })
      }
    }
  }
  return Either.right(out)
}

/** A WHERE condition matching every filter (TRUE when there is none). */
export const filtersToSql = (sql: Statement.Constructor, filters: ReadonlyArray<Filter>): Statement.Fragment => {
  if (filters.length === 0) return sql.literal("TRUE")
  const clauses = filters.map((f): Statement.Fragment => {
    const col = sql(COLUMN[f.field])
    switch (f.lookup) {
      case "exact":
        return f.value === null ? sql`${col} IS NULL` : sql`${col} = ${f.value}`
      case "in":
        return f.value.length === 0 ? sql.literal("FALSE") : sql.in(COLUMN[f.field], f.value)
      case "isnull":
        return f.value ? sql`${col} IS NULL` : sql`${col} IS NOT NULL`
      case "gt":
        return sql`${col} > ${f.value}`
      case "gte":
        return sql`${col} >= ${f.value}`
      case "lt":
        return sql`${col} < ${f.value}`
      case "lte":
        return sql`${col} <= ${f.value}`
      case "iexact":
        return sql`lower(${col}) = lower(${f.value})`
      case "contains":
        return sql`strpos(${col}, ${f.value}) > 0`
      case "icontains":
        return sql`strpos(lower(${col}), lower(${f.value})) > 0`
      case "startswith":
        return sql`starts_with(${col}, ${f.value})`
      case "istartswith":
        return sql`starts_with(lower(${col}), lower(${f.value}))`
      case "endswith":
        return sql`right(${col}, char_length(${f.value}::text)) = ${f.value}`
      case "iendswith":
        return sql`lower(right(${col}, char_length(${f.value}::text))) = lower(${f.value})`
      case "regex":
        return sql`${col} ~ ${f.value}`
      case "iregex":
        return sql`${col} ~* ${f.value}`
    }
  })
  return sql.and(clauses)
}
