import type { ExportBackend, Extent } from "./backend.js"

// A sparse in-memory export: 64 KiB pages allocated on first write, absent pages read
// as zeros and show up as holes in BLOCK_STATUS. For tests and for throwaway scratch
// exports (`prolo nbd serve --export scratch=mem:256M`). Everything is shared, so
// multi-conn is safe.

const PAGE = 64 * 1024

export interface MemoryBackendOptions {
  readonly size: number
  readonly readOnly?: boolean
}

export const makeMemoryBackend = (options: MemoryBackendOptions): ExportBackend & { readonly allocatedPages: () => number } => {
  const { size } = options
  const pages = new Map<number, Buffer>()

  const page = (index: number): Buffer => {
    let p = pages.get(index)
    if (p === undefined) {
      p = Buffer.alloc(PAGE)
      pages.set(index, p)
    }
    return p
  }

  // Calls `f(pageIndex, startInPage, length, positionInRange)` for each page slice of the range.
  const forEachSlice = (offset: number, length: number, f: (index: number, start: number, len: number, pos: number) => void) => {
    let pos = 0
    while (pos < length) {
      const abs = offset + pos
      const index = Math.floor(abs / PAGE)
      const start = abs - index * PAGE
      const len = Math.min(PAGE - start, length - pos)
      f(index, start, len, pos)
      pos += len
    }
  }

  const zeroRange = (offset: number, length: number, allocate: boolean) =>
    forEachSlice(offset, length, (index, start, len) => {
      if (!allocate && start === 0 && len === PAGE) pages.delete(index)
      else if (allocate) page(index).fill(0, start, start + len)
      else pages.get(index)?.fill(0, start, start + len)
    })

  return {
    size,
    readOnly: options.readOnly ?? false,
    multiConn: true,
    canTrim: true,
    canZero: true,
    canFastZero: true,
    read: (buf, length, offset) => {
      forEachSlice(offset, length, (index, start, len, pos) => {
        const p = pages.get(index)
        if (p === undefined) buf.fill(0, pos, pos + len)
        else p.copy(buf, pos, start, start + len)
      })
      return Promise.resolve()
    },
    write: (buf, length, offset) => {
      forEachSlice(offset, length, (index, start, len, pos) => {
        buf.copy(page(index), start, pos, pos + len)
      })
      return Promise.resolve()
    },
    flush: () => Promise.resolve(),
    trim: (offset, length) => {
      zeroRange(offset, length, false)
      return Promise.resolve()
    },
    zero: (offset, length, opts) => {
      zeroRange(offset, length, !opts.mayTrim)
      return Promise.resolve()
    },
    cache: () => Promise.resolve(),
    extents: (offset, length) => {
      const out: Array<Extent> = []
      forEachSlice(offset, Math.min(length, size - offset), (index, _start, len) => {
        const hole = !pages.has(index)
        const last = out[out.length - 1]
        if (last !== undefined && last.hole === hole) out[out.length - 1] = { length: last.length + len, hole, zero: hole }
        else out.push({ length: len, hole, zero: hole })
      })
      return Promise.resolve(out)
    },
    close: () => {
      pages.clear()
      return Promise.resolve()
    },
    allocatedPages: () => pages.size
  }
}
