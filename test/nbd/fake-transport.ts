import type { ExportBackend } from "../../src/nbd/backend.js"
import { makeBufferPool } from "../../src/nbd/buffer-pool.js"
import { type Connection, type ConnectionEvent, type ConnectionLimits, defaultLimits, makeConnection } from "../../src/nbd/connection.js"
import { type ExportEntry, makeExportTable } from "../../src/nbd/exports.js"

// Drives connection.ts without sockets: what the server writes is collected, pause /
// resume / end / destroy are recorded. Write callbacks fire on a microtask, as node's do
// asynchronously.

export interface FakeTransport {
  readonly written: Array<Buffer>
  paused: boolean
  ended: boolean
  destroyed: boolean
  // Hold write callbacks (a client that stops reading) until `release()`.
  stallWrites: boolean
  readonly release: () => void
  readonly take: () => Buffer
  readonly write: (data: Buffer, cb?: (err?: Error | null) => void) => boolean
  readonly cork: () => void
  readonly uncork: () => void
  readonly pause: () => void
  readonly resume: () => void
  // Its callback is held like a write callback (it fires once the writes are out).
  readonly end: (cb?: () => void) => void
  readonly destroy: () => void
}

export const makeFakeTransport = (): FakeTransport => {
  const held: Array<() => void> = []
  const t: FakeTransport = {
    written: [],
    paused: false,
    ended: false,
    destroyed: false,
    stallWrites: false,
    release: () => {
      t.stallWrites = false
      for (const cb of held.splice(0)) cb()
    },
    take: () => Buffer.concat(t.written.splice(0)),
    write: (data, cb) => {
      t.written.push(Buffer.from(data))
      if (cb !== undefined) {
        if (t.stallWrites) held.push(() => cb())
        else queueMicrotask(() => cb())
      }
      return true
    },
    cork: () => undefined,
    uncork: () => undefined,
    pause: () => {
      t.paused = true
    },
    resume: () => {
      t.paused = false
    },
    end: (cb) => {
      t.ended = true
      if (cb !== undefined) {
        if (t.stallWrites) held.push(cb)
        else queueMicrotask(cb)
      }
    },
    destroy: () => {
      t.destroyed = true
    }
  }
  return t
}

export interface Harness {
  readonly transport: FakeTransport
  readonly conn: Connection
  readonly events: Array<ConnectionEvent>
  readonly table: ReturnType<typeof makeExportTable>
  readonly entry: (name: string) => ExportEntry
}

export const addEntry = (
  table: ReturnType<typeof makeExportTable>,
  name: string,
  backend: ExportBackend,
  opts: { readonly generation?: number; readonly description?: string; readonly readOnly?: boolean } = {}
): ExportEntry => {
  const entry: ExportEntry = {
    name,
    backend,
    description: opts.description ?? "",
    readOnly: (opts.readOnly ?? false) || backend.readOnly,
    generation: opts.generation ?? 0,
    connections: new Set(),
    fencing: undefined
  }
  table.byName.set(name, entry)
  return entry
}

export const makeHarness = (
  exports: ReadonlyArray<{ readonly name: string; readonly backend: ExportBackend; readonly generation?: number; readonly description?: string; readonly readOnly?: boolean }>,
  limits: Partial<ConnectionLimits> = {},
  chunksReused = false
): Harness => {
  const table = makeExportTable()
  for (const e of exports) addEntry(table, e.name, e.backend, e)
  const transport = makeFakeTransport()
  const events: Array<ConnectionEvent> = []
  const conn = makeConnection(transport, {
    table,
    pool: makeBufferPool(8 * 1024 * 1024),
    limits: { ...defaultLimits, ...limits },
    shuttingDown: () => false,
    onEvent: (e) => events.push(e),
    chunksReused
  })
  return {
    transport,
    conn,
    events,
    table,
    entry: (name) => {
      const e = table.byName.get(name)
      if (e === undefined) throw new Error(`no entry ${name}`)
      return e
    }
  }
}

// Lets queued microtasks and promise callbacks run.
export const settle = async (rounds = 5): Promise<void> => {
  for (let i = 0; i < rounds; i++) await new Promise((r) => setImmediate(r))
}

// Parses the option replies in `b`.
export const parseOptionReplies = (b: Buffer): Array<{ option: number; type: number; data: Buffer }> => {
  const out: Array<{ option: number; type: number; data: Buffer }> = []
  let o = 0
  while (o + 20 <= b.length) {
    const len = b.readUInt32BE(o + 16)
    out.push({ option: b.readUInt32BE(o + 8), type: b.readUInt32BE(o + 12), data: b.subarray(o + 20, o + 20 + len) })
    o += 20 + len
  }
  if (o !== b.length) throw new Error(`trailing ${b.length - o} bytes after option replies`)
  return out
}
