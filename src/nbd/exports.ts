import { Context, Effect, Layer } from "effect"
import type { ExportBackend } from "./backend.js"
import { NbdExportExists, NbdExportNotFound, NbdInvalidExport, NbdStaleGeneration } from "./errors.js"
import { exportNameProblem, parseWireName } from "./export-name.js"

// The exports a server offers, each at a generation. Granting generation g+1 fences the
// export: every connection attached at a generation ≤ g is cut, and `grant` returns only
// once their in-flight backend calls have settled, so when it returns no stale client can
// still write. Clients naming a generation other than the current one (`alice@6` while
// alice is at 7) are refused at GO/EXPORT_NAME time. Backends belong to whoever added them:
// the registry never closes one.

export interface ExportSpec {
  readonly name: string
  readonly backend: ExportBackend
  readonly description?: string
  // Forces read-only even when the backend can write.
  readonly readOnly?: boolean
  readonly generation?: number
}

export interface ExportInfo {
  readonly name: string
  readonly description: string
  readonly size: number
  readonly readOnly: boolean
  readonly generation: number
  readonly connections: number
}

export interface ExportEntry {
  readonly name: string
  readonly description: string
  readonly readOnly: boolean
  readonly backend: ExportBackend
  generation: number
  readonly connections: Set<AttachedConnection>
}

// What the registry needs of a live connection to fence it.
export interface AttachedConnection {
  readonly generation: number
  // Stop issuing backend calls, drop the socket; resolves once issued calls settled.
  fence(reason: string): Promise<void>
}

/**
 * A listener's gate in front of the export table (`NbdServerOptions.access`): given the
 * connection's peer address and the export name it sent, either refuse (the reason goes to
 * the client) or let it through under the name to resolve. The HFS uses it to bind each
 * grant to one machine and a secret (src/actors/hfs/access.ts). A gated listener answers
 * LIST with no names.
 */
export type AccessDecision =
  | { readonly _tag: "Allow"; readonly wireName: string }
  | { readonly _tag: "Refuse"; readonly reason: string }
export type ExportAccess = (peerAddress: string, wireName: string) => AccessDecision

export type Resolved =
  | { readonly _tag: "Found"; readonly entry: ExportEntry; readonly generation: number }
  | { readonly _tag: "Refused"; readonly reason: string }

// The synchronous core, shared by the Effect service and the connection code (which runs
// on plain socket callbacks).
export interface ExportTable {
  readonly resolve: (wireName: string) => Resolved
  // False when the export moved past `conn.generation` (or went away) meanwhile.
  readonly attach: (entry: ExportEntry, conn: AttachedConnection) => boolean
  readonly detach: (entry: ExportEntry, conn: AttachedConnection) => void
  readonly entries: () => ReadonlyArray<ExportEntry>
}

export const makeExportTable = (): ExportTable & { readonly byName: Map<string, ExportEntry> } => {
  const byName = new Map<string, ExportEntry>()
  return {
    byName,
    resolve: (wireName) => {
      const parsed = parseWireName(wireName)
      if (parsed._tag === "Invalid") return { _tag: "Refused", reason: parsed.reason }
      const entry = byName.get(parsed.name)
      if (entry === undefined) return { _tag: "Refused", reason: `no export named ${JSON.stringify(parsed.name)}` }
      if (parsed.generation !== undefined && parsed.generation !== entry.generation) {
        return {
          _tag: "Refused",
          reason: `export ${JSON.stringify(parsed.name)} is at generation ${entry.generation}, not ${parsed.generation}`
        }
      }
      return { _tag: "Found", entry, generation: entry.generation }
    },
    attach: (entry, conn) => {
      if (byName.get(entry.name) !== entry || conn.generation !== entry.generation) return false
      entry.connections.add(conn)
      return true
    },
    detach: (entry, conn) => {
      entry.connections.delete(conn)
    },
    entries: () => [...byName.values()]
  }
}

const info = (e: ExportEntry): ExportInfo => ({
  name: e.name,
  description: e.description,
  size: e.backend.size,
  readOnly: e.readOnly,
  generation: e.generation,
  connections: e.connections.size
})

const checkGeneration = (name: string, generation: number) =>
  Number.isSafeInteger(generation) && generation >= 0
    ? Effect.void
    : Effect.fail(new NbdInvalidExport({ name, reason: `generation must be an integer ≥ 0, got ${generation}` }))

// Cut every connection of `entry` attached below `below` and wait for their backend calls.
const fenceBelow = (entry: ExportEntry, below: number, reason: string) => {
  const stale = [...entry.connections].filter((c) => c.generation < below)
  for (const c of stale) entry.connections.delete(c)
  if (stale.length === 0) return Effect.void
  return Effect.promise(() => Promise.all(stale.map((c) => c.fence(reason)))).pipe(
    Effect.andThen(Effect.log(`nbd ${reason}: cut ${stale.length} connection(s)`))
  )
}

export class NbdExports extends Context.Tag("prolo/NbdExports")<
  NbdExports,
  {
    readonly table: ExportTable
    // New export, or replacement of an existing one at a strictly newer generation
    // (the old generation's connections are fenced first).
    readonly add: (spec: ExportSpec) => Effect.Effect<ExportInfo, NbdInvalidExport | NbdExportExists | NbdStaleGeneration>
    // Move an export to a newer generation, fencing every older connection.
    readonly grant: (name: string, generation: number) => Effect.Effect<ExportInfo, NbdExportNotFound | NbdStaleGeneration | NbdInvalidExport>
    readonly remove: (name: string) => Effect.Effect<void, NbdExportNotFound>
    readonly list: Effect.Effect<ReadonlyArray<ExportInfo>>
    readonly get: (name: string) => Effect.Effect<ExportInfo, NbdExportNotFound>
  }
>() {
  static readonly layer = Layer.sync(NbdExports, () => {
    const table = makeExportTable()
    const { byName } = table
    // Registry changes are serialised so that a grant's fencing completes before the
    // next change looks at the connections.
    const lock = Effect.unsafeMakeSemaphore(1)
    return {
      table,
      add: (spec) =>
        lock.withPermits(1)(
          Effect.gen(function* () {
            const problem = exportNameProblem(spec.name)
            if (problem !== undefined) return yield* new NbdInvalidExport({ name: spec.name, reason: problem })
            const generation = spec.generation ?? 0
            yield* checkGeneration(spec.name, generation)
            if (!Number.isSafeInteger(spec.backend.size) || spec.backend.size < 0) {
              return yield* new NbdInvalidExport({ name: spec.name, reason: `backend size ${spec.backend.size} is not a byte count` })
            }
            const old = byName.get(spec.name)
            if (old !== undefined) {
              if (spec.generation === undefined) return yield* new NbdExportExists({ name: spec.name, generation: old.generation })
              if (generation <= old.generation) {
                return yield* new NbdStaleGeneration({ name: spec.name, current: old.generation, requested: generation })
              }
              byName.delete(spec.name)
              yield* fenceBelow(old, Number.POSITIVE_INFINITY, `export ${spec.name} replaced at generation ${generation}`)
            }
            const entry: ExportEntry = {
              name: spec.name,
              description: spec.description ?? "",
              readOnly: (spec.readOnly ?? false) || spec.backend.readOnly,
              backend: spec.backend,
              generation,
              connections: new Set()
            }
            byName.set(spec.name, entry)
            return info(entry)
          })
        ),
      grant: (name, generation) =>
        lock.withPermits(1)(
          Effect.gen(function* () {
            yield* checkGeneration(name, generation)
            const entry = byName.get(name)
            if (entry === undefined) return yield* new NbdExportNotFound({ name })
            if (generation <= entry.generation) {
              return yield* new NbdStaleGeneration({ name, current: entry.generation, requested: generation })
            }
            entry.generation = generation
            yield* fenceBelow(entry, generation, `export ${name} granted at generation ${generation}`)
            return info(entry)
          })
        ),
      remove: (name) =>
        lock.withPermits(1)(
          Effect.gen(function* () {
            const entry = byName.get(name)
            if (entry === undefined) return yield* new NbdExportNotFound({ name })
            byName.delete(name)
            yield* fenceBelow(entry, Number.POSITIVE_INFINITY, `export ${name} removed`)
          })
        ),
      list: Effect.sync(() => table.entries().map(info)),
      get: (name) =>
        Effect.suspend(() => {
          const entry = byName.get(name)
          return entry === undefined ? Effect.fail(new NbdExportNotFound({ name })) : Effect.succeed(info(entry))
        })
    }
  })
}
