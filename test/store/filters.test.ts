import { SqlClient } from "@effect/sql"
import { describe, expect, layer } from "@effect/vitest"
import { Effect, Either, Option } from "effect"
import { compileFilters, type FieldSpec, FilterError, refusedFilter } from "../../src/store/filters.js"
import { PgEmpty } from "../support/pg.js"

// The one filter implementation MDB and UDB share, over a scratch table holding one column of
// every kind (a nullable text, an int, a bool, a text[] shown comma-joined).

const FIELDS: Readonly<Record<string, FieldSpec>> = {
  name: { kind: "text", column: "name" },
  note: { kind: "text", column: "note" },
  n: { kind: "int", column: "n" },
  ok: { kind: "bool", column: "ok" },
  tags: { kind: "names", column: "tags" }
}

const setup = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE IF NOT EXISTS filter_t (name text NOT NULL, note text, n int NOT NULL, ok boolean NOT NULL, tags text[] NOT NULL)`
  yield* sql`DELETE FROM filter_t`
  yield* sql`INSERT INTO filter_t VALUES
    ('alpha', 'first one', 1, true, '{rfs1,hfs0}'),
    ('beta', NULL, 10, false, '{rfs10}'),
    ('Gamma', 'third', 100, true, '{}')`
})

const names = (filters: Record<string, unknown>) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const where = compileFilters(sql, FIELDS, filters)
    if (Either.isLeft(where)) return yield* where.left
    const rows = yield* sql<{ name: string }>`SELECT name FROM filter_t WHERE ${where.right} ORDER BY name`
    return rows.map((r) => r.name)
  })

describe("query filters (Django lookups, shared by MDB and UDB)", () => {
  layer(PgEmpty)((it) => {
    it.effect("every lookup of every kind, with loosely typed values", () =>
      Effect.gen(function* () {
        yield* setup
        const cases: ReadonlyArray<[Record<string, unknown>, ReadonlyArray<string>]> = [
          [{}, ["Gamma", "alpha", "beta"]],
          [{ name: "alpha" }, ["alpha"]],
          [{ name__exact: "alpha" }, ["alpha"]],
          [{ name__iexact: "GAMMA" }, ["Gamma"]],
          [{ name__contains: "et" }, ["beta"]],
          [{ name__icontains: "AM" }, ["Gamma"]],
          [{ name__startswith: "al" }, ["alpha"]],
          [{ name__istartswith: "g" }, ["Gamma"]],
          [{ name__endswith: "ta" }, ["beta"]],
          [{ name__iendswith: "MA" }, ["Gamma"]],
          [{ name__regex: "^(a|b)" }, ["alpha", "beta"]],
          [{ name__iregex: "^g" }, ["Gamma"]],
          [{ name__gt: "alpha" }, ["beta"]],
          [{ name__lte: "alpha" }, ["Gamma", "alpha"]],
          // __in: a list, or a comma-separated string (command lines, prolorpc); empty matches nothing.
          [{ name__in: ["alpha", "beta"] }, ["alpha", "beta"]],
          [{ name__in: "alpha,Gamma" }, ["Gamma", "alpha"]],
          [{ name__in: [] }, []],
          [{ name__in: "" }, []],
          // null is Django's exact=None: IS NULL; __isnull on any field.
          [{ note: null }, ["beta"]],
          [{ note__isnull: true }, ["beta"]],
          [{ note__isnull: "False" }, ["Gamma", "alpha"]],
          [{ name: null }, []],
          // ints accept digit strings (prolorpc sends every value as a string).
          [{ n: 10 }, ["beta"]],
          [{ n: "10" }, ["beta"]],
          [{ n__gte: "10" }, ["Gamma", "beta"]],
          [{ n__lt: 10 }, ["alpha"]],
          [{ n__in: [1, "100"] }, ["Gamma", "alpha"]],
          [{ n__in: "1,10" }, ["alpha", "beta"]],
          [{ ok: true }, ["Gamma", "alpha"]],
          [{ ok: "false" }, ["beta"]],
          [{ ok: "True" }, ["Gamma", "alpha"]],
          [{ ok__in: [false] }, ["beta"]],
          // names: contains matches a whole element; other lookups see the comma-joined text.
          [{ tags__contains: "rfs1" }, ["alpha"]],
          [{ tags__icontains: "RFS10" }, ["beta"]],
          [{ tags__contains: "rfs" }, []],
          [{ tags: "rfs1,hfs0" }, ["alpha"]],
          [{ tags: "" }, ["Gamma"]],
          [{ tags__startswith: "rfs1" }, ["alpha", "beta"]],
          // several filters: all must hold.
          [{ n__gte: 1, ok: true, name__startswith: "a" }, ["alpha"]]
        ]
        for (const [filters, expected] of cases) {
          expect([filters, yield* names(filters)]).toEqual([filters, expected])
        }
      })
    )

    it.effect("a bad key or value is a FilterError naming the key and what was expected", () =>
      Effect.gen(function* () {
        yield* setup
        const cases: ReadonlyArray<[Record<string, unknown>, string, string]> = [
          [{ owner: "x" }, "owner", "'owner' is not a valid query argument (fields: name, note, n, ok, tags)"],
          // The original's whitelist split at the first `_`: ours splits at `__`.
          [{ name_x: "x" }, "name_x", "'name_x' is not a valid query argument (fields: name, note, n, ok, tags)"],
          [{ name__near: "x" }, "name__near", "'name__near': lookup 'near' is not supported on text field 'name' (use exact, iexact, contains, icontains, in, startswith, istartswith, endswith, iendswith, regex, iregex, gt, gte, lt, lte, isnull)"],
          [{ name__in__x: "x" }, "name__in__x", "'name__in__x': lookup 'in__x' is not supported on text field 'name' (use exact, iexact, contains, icontains, in, startswith, istartswith, endswith, iendswith, regex, iregex, gt, gte, lt, lte, isnull)"],
          [{ n__contains: 1 }, "n__contains", "'n__contains': lookup 'contains' is not supported on int field 'n' (use exact, in, gt, gte, lt, lte, isnull)"],
          [{ ok__gt: true }, "ok__gt", "'ok__gt': lookup 'gt' is not supported on bool field 'ok' (use exact, in, isnull)"],
          [{ n: "one" }, "n", "'n' must be an integer, got \"one\""],
          [{ n: 1.5 }, "n", "'n' must be an integer, got 1.5"],
          [{ ok: "maybe" }, "ok", "'ok' must be true or false, got \"maybe\""],
          [{ name: {} }, "name", "'name' must be a string, got {}"],
          [{ name__iexact: null }, "name__iexact", "'name__iexact' must be a string, got null"],
          [{ name__in: 3 }, "name__in", "'name__in' needs a list of values (or a comma-separated string), got 3"],
          [{ name__in: ["a", {}] }, "name__in", "'name__in': every value must be a string, got {}"],
          [{ n__in: "1,x" }, "n__in", "'n__in': every value must be an integer, got \"x\""],
          [{ name__regex: "(" }, "name__regex", "'name__regex': invalid regular expression \"(\""],
          [{ note__isnull: "maybe" }, "note__isnull", "'note__isnull' must be true or false, got \"maybe\""],
          // issue 17 item 7: beyond PostgreSQL's integer, the database refused it at run time
          // and the caller read "database unavailable"
          [{ n__gte: 2147483648 }, "n__gte", "'n__gte' must be an integer between -2147483648 and 2147483647, got 2147483648"],
          [{ n__lt: "-2147483649" }, "n__lt", "'n__lt' must be an integer between -2147483648 and 2147483647, got \"-2147483649\""],
          [{ n__in: [1, 2147483648] }, "n__in", "'n__in': every value must be an integer between -2147483648 and 2147483647, got 2147483648"],
          // PostgreSQL text cannot hold NUL
          [{ name: "a\u0000b" }, "name", "'name' must be a string without NUL characters, got \"a\\u0000b\""],
          [{ tags__contains: "\u0000" }, "tags__contains", "'tags__contains' must be a string without NUL characters, got \"\\u0000\""]
        ]
        for (const [filters, key, message] of cases) {
          const error = yield* Effect.flip(names(filters))
          expect(error).toBeInstanceOf(FilterError)
          expect(error).toMatchObject({ key, message })
        }
        // the bounds themselves are values
        expect(yield* names({ n__lte: 2147483647, n__gte: -2147483648 })).toEqual(["Gamma", "alpha", "beta"])
      })
    )

    it.effect("a regex JavaScript accepts but PostgreSQL refuses is a FilterError naming the regex key", () =>
      Effect.gen(function* () {
        yield* setup
        const sql = yield* SqlClient.SqlClient
        const filters = { n: 1, name__regex: "(?<x>a)" } // named groups: JS yes, PostgreSQL no
        const where = compileFilters(sql, FIELDS, filters)
        expect(Either.isRight(where)).toBe(true)
        if (Either.isLeft(where)) return
        const failure = yield* Effect.flip(sql`SELECT name FROM filter_t WHERE ${where.right}`)
        const refused = refusedFilter(filters, failure.cause)
        expect(Option.getOrThrow(refused).key).toBe("name__regex")
        expect(Option.getOrThrow(refused).message).toMatch(/^'name__regex': invalid regular expression \(.+\)$/)
        // Anything else is not a filter error.
        expect(refusedFilter(filters, new Error("connection lost"))).toEqual(Option.none())
      })
    )
  })
})
