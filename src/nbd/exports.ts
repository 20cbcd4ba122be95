import { Context, Effect, Layer } from "effect"
import type { ExportBackend } from "./backend.js"
import { NbdExportExists, NbdExportNotFound, NbdInvalidExport, NbdStaleGeneration } from "./errors.js"
import { exportNameProblem, parseWireName } from "./export-name.js"

// The exports a server offers, each at a generation. Granting generation g+1 fences the
// export: every connection attached at a generation ≤ g is cut, and `grant` returns only
// once their in-flight backend calls have settled, so when it returns no stale client can
// still write. Until then no client attaches at all: a GO/EXPORT_NAME for the export waits
// (its reply is held back) until the fence has resolved, so that no write of the new
// generation can be acknowledged while an old one may still land on top of it. Clients
// naming a generation other than the current one (`alice@6` while alice is at 7) are
// refused at GO/EXPORT_NAME time. Backends belong to whoever added them: the registry
// never closes one.

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
  // Set while older connections are being fenced; settles when their backend calls have.
  fencing: Promise<void> | undefined
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
  // The export exists at the generation asked for, but older connections are still being
  // fenced: attach only once `settled` has (and resolve again then).
  | { readonly _tag: "Fencing"; readonly entry: ExportEntry; readonly generation: number; readonly settled: Promise<void> }
  | { readonly _tag: "Refused"; readonly reason: string }

// The synchronous core, shared by the Effect service and the connection code (which runs
// on plain socket callbacks).
export interface ExportTable {
  // `NAME`, `NAME@GEN`, or the empty name (`@GEN`): the default export, when one is set.
  readonly resolve: (wireName: string) => Resolved
  // False when the export moved past `conn.generation` (or went away) meanwhile.
  readonly attach: (entry: ExportEntry, conn: AttachedConnection) => boolean
  readonly detach: (entry: ExportEntry, conn: AttachedConnection) => void
  readonly entries: () => ReadonlyArray<ExportEntry>
}

export const NO_DEFAULT_EXPORT =
  "this server has no default export: ask for one by name (nbd://HOST:PORT/NAME; nbdinfo --list nbd://HOST:PORT shows them), or have the operator name one (prolo nbd serve --default NAME or --export =FILE)"

export const makeExportTable = (): ExportTable & {
  readonly byName: Map<string, ExportEntry>
  // What a client asking for the empty name (nbd://HOST:PORT) gets.
  defaultName: string | undefined
} => {
  const byName = new Map<string, ExportEntry>()
  const table = {
    byName,
    defaultName: undefined as string | undefined,
    resolve: (wireName: string): Resolved => {
      const parsed = parseWireName(wireName)
      if (parsed._tag === "Invalid") return { _tag: "Refused", reason: parsed.reason }
      let name = parsed.name
      if (name === "") {
        if (table.defaultName === undefined) return { _tag: "Refused", reason: NO_DEFAULT_EXPORT }
        name = table.defaultName
      }
      const entry = byName.get(name)
      if (entry === undefined) return { _tag: "Refused", reason: `no export named ${JSON.stringify(name)}` }
      if (parsed.generation !== undefined && parsed.generation !== entry.generation) {
        return {
          _tag: "Refused",
          reason: `export ${JSON.stringify(name)} is at generation ${entry.generation}, not ${parsed.generation}`
        }
      }
      if (entry.fencing !== undefined) return { _tag: "Fencing", entry, generation: entry.generation, settled: entry.fencing }
      return { _tag: "Found", entry, generation: entry.generation }
    },
    attach: (entry: ExportEntry, conn: AttachedConnection) => {
      if (byName.get(entry.name) !== entry || conn.generation !== entry.generation || entry.fencing !== undefined) return false
      entry.connections.add(conn)
      return true
    },
    detach: (entry: ExportEntry, conn: AttachedConnection) => {
      entry.connections.delete(conn)
    },
    entries: () => [...byName.values()]
  }
  return table
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

// Cut every connection of `from` attached below `below` and wait for their backend calls.
// Meanwhile `gate` (the entry clients resolve to: `from` itself, or its replacement)
// holds every new attach back, whatever the outcome (interruption included). The gate
// is closed when this is called, not when the Effect runs: callers yield it at once, in
// the same step as the change that made the new generation visible.
const fenceBelow = (from: ExportEntry, below: number, reason: string, gate: ExportEntry = from) => {
  const stale = [...from.connections].filter((c) => c.generation < below)
  for (const c of stale) from.connections.delete(c)
  if (stale.length === 0) return Effect.void
  let settle = () => {}
  gate.fencing = new Promise<void>((resolve) => (settle = resolve))
  return Effect.promise(() => Promise.all(stale.map((c) => c.fence(reason)))).pipe(
    Effect.andThen(Effect.log(`nbd ${reason}: cut ${stale.length} connection(s)`)),
    Effect.ensuring(
      Effect.sync(() => {
        gate.fencing = undefined
        settle()
      })
    )
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
    // The export served to clients that name none (nbd://HOST:PORT); undefined: none, such
    // clients are refused with a message saying what to do. The name must exist now; if
    // it is removed later, the empty name is refused as an unknown export.
    readonly setDefault: (name: string | undefined) => Effect.Effect<void, NbdExportNotFound>
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
            }
            const entry: ExportEntry = {
              name: spec.name,
              description: spec.description ?? "",
              readOnly: (spec.readOnly ?? false) || spec.backend.readOnly,
              backend: spec.backend,
              generation,
              connections: new Set(),
              fencing: undefined
            }
            byName.set(spec.name, entry)
            // The replacement is visible at once, but nobody attaches to it before the
            // old backend's last in-flight call has settled.
            if (old !== undefined) yield* fenceBelow(old, Number.POSITIVE_INFINITY, `export ${spec.name} replaced at generation ${generation}`, entry)
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
      setDefault: (name) =>
        lock.withPermits(1)(
          Effect.suspend(() => {
            if (name !== undefined && !byName.has(name)) return Effect.fail(new NbdExportNotFound({ name }))
            table.defaultName = name
            return Effect.void
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
