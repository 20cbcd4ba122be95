import { SqlError } from "@effect/sql/SqlError"
import { Option } from "effect"

/** A unique constraint refused a row: which constraint, and the duplicated value when PostgreSQL says. */
export interface UniqueViolation {
  readonly constraint: string
  readonly value: Option.Option<string>
}

const pgCause = (error: unknown): { code?: unknown; constraint?: unknown; detail?: unknown } | undefined =>
  error instanceof SqlError && typeof error.cause === "object" && error.cause !== null ? error.cause : undefined

// `Key (name)=(gw) already exists.`
const DETAIL = /^Key \((?:[^)]*)\)=\((.*)\) already exists\.$/

export const uniqueViolation = (error: unknown): Option.Option<UniqueViolation> => {
  const cause = pgCause(error)
  if (cause?.code !== "23505" || typeof cause.constraint !== "string") return Option.none()
  const match = typeof cause.detail === "string" ? DETAIL.exec(cause.detail) : null
  return Option.some({ constraint: cause.constraint, value: Option.fromNullable(match?.[1]) })
}

/** The PostgreSQL error code (SQLSTATE) behind a SqlError, if any. */
export const sqlState = (error: unknown): Option.Option<string> => {
  const code = pgCause(error)?.code
  return typeof code === "string" ? Option.some(code) : Option.none()
}
