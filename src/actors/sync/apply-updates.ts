import type { SyncRecord, Update } from "../../protocols/sync.js"

// The original `prologin.synchronisation.apply_updates`, plus the two things a revisioned
// stream adds: reading a record's key, and applying a snapshot as a diff so that a resync
// reports only what really changed (a fresh follower still sees every record `created`).

export type ChangeKind = "created" | "updated" | "deleted"
/** Key value → what happened to it in one applied message (later updates overwrite earlier ones). */
export type Metadata = Map<string, ChangeKind>
export type State = Map<string, SyncRecord>

/** The key of `record`, rendered as text; undefined when the key field is absent or not a scalar. */
export const recordKey = (keyField: string, record: SyncRecord): string | undefined => {
  const value = record[keyField]
  if (typeof value === "string") return value
  if (typeof value === "number" && Number.isFinite(value)) return String(value)
  return undefined
}

/** Structural equality of JSON values (Python's `!=` on decoded JSON). */
export const jsonEqual = (a: unknown, b: unknown): boolean => {
  if (a === b) return true
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false
  if (Array.isArray(a) !== Array.isArray(b)) return false
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((x, i) => jsonEqual(x, b[i]))
  }
  const ka = Object.keys(a)
  const kb = Object.keys(b)
  if (ka.length !== kb.length) return false
  const rb = b as Record<string, unknown>
  const ra = a as Record<string, unknown>
  return ka.every((k) => Object.prototype.hasOwnProperty.call(rb, k) && jsonEqual(ra[k], rb[k]))
}

const watchedChanged = (old: SyncRecord, next: SyncRecord, watch: ReadonlyArray<string> | undefined): boolean =>
  watch === undefined || watch.some((field) => !jsonEqual(old[field], next[field]))

/**
 * Applies `updates` to `state` in order (mutating it): an update replaces the record wholesale;
 * `updated` is reported only when a watched field differs (every change when `watch` is absent);
 * creations and deletions are always reported; deleting an unknown key reports nothing.
 * Updates whose key cannot be read are skipped (the hub never publishes such updates).
 */
export const applyUpdates = (
  keyField: string,
  state: State,
  updates: ReadonlyArray<Update>,
  watch?: ReadonlyArray<string>
): Metadata => {
  const metadata: Metadata = new Map()
  for (const update of updates) {
    const key = recordKey(keyField, update.data)
    if (key === undefined) continue
    if (update.type === "update") {
      const old = state.get(key)
      if (old === undefined) metadata.set(key, "created")
      else if (watchedChanged(old, update.data, watch)) metadata.set(key, "updated")
      state.set(key, update.data)
    } else if (state.delete(key)) {
      metadata.set(key, "deleted")
    }
  }
  return metadata
}

/**
 * Replaces `state` by `records` (mutating it) and reports the difference as `applyUpdates`
 * would for "update every record, delete every key that disappeared".
 */
export const applySnapshot = (
  keyField: string,
  state: State,
  records: ReadonlyArray<SyncRecord>,
  watch?: ReadonlyArray<string>
): Metadata => {
  const present = new Set<string>()
  const updates: Array<Update> = []
  for (const record of records) {
    const key = recordKey(keyField, record)
    if (key === undefined) continue
    present.add(key)
    const old = state.get(key)
    // An unchanged record is replaced silently: a resync reports only real differences.
    if (old !== undefined && jsonEqual(old, record)) state.set(key, record)
    else updates.push({ type: "update", data: record })
  }
  for (const [key, record] of state) {
    if (!present.has(key)) updates.push({ type: "delete", data: record })
  }
  return applyUpdates(keyField, state, updates, watch)
}
