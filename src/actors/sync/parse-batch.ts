import { Either } from "effect"
import { InvalidBatch, type Update } from "../../protocols/sync.js"
import { recordKey } from "./apply-updates.js"
import { defaultHttpLimits } from "../../runtime/http-limits.js"
import { parseJsonBounded } from "../../runtime/json-depth.js"

// Validates a published update message before anything is stored. Unlike the original (which
// logged and skipped unknown types), a malformed element rejects the whole message: a publisher
// learns about its bug and no subscriber sees half a batch.

export const MAX_BATCH_UPDATES = 10_000

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v)

/**
 * Where `value` holds a NUL character (in a string or an object key), as `data.a.b[2]`; none
 * when clean. PostgreSQL's jsonb cannot store one: the write would fail as if the database
 * were down, and the publisher would retry forever a message that can never be stored.
 */
const nulAt = (value: unknown, at: string): string | undefined => {
  if (typeof value === "string") return value.includes("\u0000") ? at : undefined
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = nulAt(value[i], `${at}[${i}]`)
      if (found !== undefined) return found
    }
    return undefined
  }
  if (isObject(value)) {
    for (const [key, item] of Object.entries(value)) {
      if (key.includes("\u0000")) return `${at} (a key)`
      const found = nulAt(item, `${at}.${key}`)
      if (found !== undefined) return found
    }
  }
  return undefined
}

/** Checks an already-decoded update list; the result keeps only `type` and `data` of each element. */
export const validateUpdates = (
  topic: string,
  keyField: string,
  value: unknown
): Either.Either<ReadonlyArray<Update>, InvalidBatch> => {
  const fail = (index: number, reason: string) => Either.left(new InvalidBatch({ topic, index, reason }))
  if (!Array.isArray(value)) return fail(-1, "expected a JSON list of {\"type\", \"data\"} objects")
  if (value.length === 0) return fail(-1, "empty update list (nothing to publish)")
  if (value.length > MAX_BATCH_UPDATES) return fail(-1, `${value.length} updates, at most ${MAX_BATCH_UPDATES} per message`)
  const updates: Array<Update> = []
  for (let i = 0; i < value.length; i++) {
    const item: unknown = value[i]
    if (!isObject(item)) return fail(i, "expected an object {\"type\", \"data\"}")
    const type = item["type"]
    if (type !== "update" && type !== "delete") return fail(i, `type must be "update" or "delete", got ${JSON.stringify(type) ?? "nothing"}`)
    const data = item["data"]
    if (!isObject(data)) return fail(i, "data must be a JSON object")
    if (recordKey(keyField, data) === undefined) {
      return fail(i, `data.${keyField} (the topic's key) must be a string or a number`)
    }
    const nul = nulAt(data, "data")
    if (nul !== undefined) return fail(i, `${nul} contains a NUL character (\\u0000), which cannot be stored`)
    updates.push({ type, data })
  }
  return Either.right(updates)
}

/** Parses and checks the text of an update message (the original's `data` form field). */
export const parseUpdates = (
  topic: string,
  keyField: string,
  text: string
): Either.Either<ReadonlyArray<Update>, InvalidBatch> => {
  const parsed = parseJsonBounded(text, defaultHttpLimits.maxJsonDepth)
  if (!parsed.ok) return Either.left(new InvalidBatch({ topic, index: -1, reason: `not JSON: ${parsed.message}` }))
  return validateUpdates(topic, keyField, parsed.value)
}
