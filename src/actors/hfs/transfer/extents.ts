import * as fs from "node:fs"
import * as libc from "../../../nbd/libc.js"
import { PAGE, type Run, WINDOW } from "./digest.js"

// What the source reads of its image: the allocated ranges (SEEK_DATA/SEEK_HOLE, as the NBD
// file backend's BLOCK_STATUS) of one window, widened to whole pages and merged, so that the
// runs of a frame are page-aligned and never touch (the receiver checks both). Holes are
// never read, let alone sent.

const unsupported = (e: libc.SyscallError) => e.code === "EINVAL" || e.code === "EOPNOTSUPP" || e.code === "ENOTSUP" || e.code === "ENOSYS"

/** The first data offset at or after `pos` (or `size` when only holes remain). */
export const nextData = (fd: number, pos: number, size: number): number | libc.SyscallError => {
  if (pos >= size) return size
  const r = libc.lseek(fd, pos, libc.SEEK_DATA)
  if (typeof r === "number") return Math.min(r, size)
  if (r.code === "ENXIO") return size
  // No SEEK_DATA here: everything is data.
  if (unsupported(r)) return pos
  return r
}

/** The allocated runs of the window starting at `start` (a multiple of WINDOW). */
export const windowRuns = (fd: number, start: number, size: number): ReadonlyArray<Run> | libc.SyscallError => {
  const end = Math.min(start + WINDOW, size)
  const runs: Array<{ offset: number; length: number }> = []
  let pos = start
  while (pos < end) {
    const data = nextData(fd, pos, size)
    if (typeof data !== "number") return data
    if (data >= end) break
    const hole = libc.lseek(fd, data, libc.SEEK_HOLE)
    let stop: number
    if (typeof hole === "number") stop = hole > data ? Math.min(hole, end) : end
    else if (unsupported(hole)) stop = end
    else return hole
    const a = Math.floor(data / PAGE) * PAGE
    const b = Math.min(Math.ceil(stop / PAGE) * PAGE, end)
    const last = runs[runs.length - 1]
    if (last !== undefined && a <= last.offset + last.length) last.length = Math.max(last.length, b - last.offset)
    else runs.push({ offset: a, length: b - a })
    pos = b
  }
  return runs
}

const readAt = (fd: number, buf: Buffer, at: number, length: number, position: number): Promise<void> =>
  new Promise((resolve, reject) => {
    const step = (done: number) =>
      fs.read(fd, buf, at + done, length - done, position + done, (err, n) => {
        if (err) return reject(err)
        // The file shrank under us (it must not: the caller fenced it): reads as zeroes.
        if (n === 0) {
          buf.fill(0, at + done, at + length)
          return resolve()
        }
        if (done + n < length) step(done + n)
        else resolve()
      })
    step(0)
  })

/**
 * Reads the runs' bytes into `buf`, one after the other; resolves with the byte count. What
 * the page cache holds is copied synchronously (preadv2 RWF_NOWAIT, as the NBD file backend's
 * reads: a home just fenced is usually cached), the rest is read on the threadpool, so a
 * cold image never blocks the event loop on the disk.
 */
export const readRuns = async (fd: number, runs: ReadonlyArray<Run>, buf: Buffer): Promise<number> => {
  let at = 0
  for (const run of runs) {
    let done = 0
    while (done < run.length) {
      const r = libc.preadNoWait(fd, buf, at + done, at + run.length, run.offset + done)
      if (typeof r !== "number" || r === 0) break
      done += r
    }
    if (done < run.length) await readAt(fd, buf, at + done, run.length - done, run.offset + done)
    at += run.length
  }
  return at
}
