import { createHash } from "node:crypto"

// The checksums of a transfer, defined over an image's *logical* content (holes read as
// zeroes), so that a hole on one side and written zeroes on the other digest the same.
//
// - The image is cut into fixed windows of WINDOW bytes at offsets k × WINDOW; a window is the
//   unit sent (one frame), verified and recorded for resume.
// - A window's checksum W is SHA-256 over its non-zero content: for each maximal run of
//   non-zero PAGE-aligned pages inside the window, in order, u64be(offset) ‖ u64be(length) ‖
//   the run's bytes (the last page of the image may be short). All-zero pages add nothing, so
//   W of a window with no non-zero page is SHA-256 of nothing (EMPTY_WINDOW).
// - The image digest D is SHA-256 of "prolo-hfs-image-v1\0" ‖ u64be(size) ‖ u32be(WINDOW) ‖,
//   for each window whose W ≠ EMPTY_WINDOW in ascending order, u64be(window offset) ‖ W.
//
// D is a function of (size, logical bytes) only, and is computed from the per-window W that
// both sides already compute: every byte is hashed once per side. SHA-256 because it is the
// fastest digest node:crypto has on these CPUs (SHA-NI: 273 MiB/s against 231 for BLAKE2b,
// 220 for SHA-1, 167 for MD5 on the loaded CI box) and is collision resistant, so a
// matching D means the same home, not merely an undamaged stream.

export const PAGE = 4096
export const WINDOW = 4 * 1024 * 1024
export const HASH_BYTES = 32

/** A byte range of the image (absolute offset). */
export interface Run {
  readonly offset: number
  readonly length: number
}

const ZERO_PAGE = Buffer.alloc(PAGE)
// Most data pages start or end with a non-zero byte: decided without a call into C++.
const isZero = (buf: Buffer, start: number, length: number): boolean =>
  buf[start] === 0 && buf[start + length - 1] === 0 && buf.compare(ZERO_PAGE, 0, length, start, start + length) === 0

export const EMPTY_WINDOW: Buffer = createHash("sha256").digest()

/**
 * W of one window: `runs` are page-aligned, ascending, non-adjacent ranges inside the window
 * (anything else reads as zeroes) and `payload` their bytes, concatenated.
 */
export const windowHash = (runs: ReadonlyArray<Run>, payload: Buffer): Buffer => {
  const h = createHash("sha256")
  const head = Buffer.alloc(16)
  let base = 0
  for (const run of runs) {
    let p = 0
    while (p < run.length) {
      const first = Math.min(PAGE, run.length - p)
      if (isZero(payload, base + p, first)) {
        p += first
        continue
      }
      let q = p + first
      while (q < run.length) {
        const n = Math.min(PAGE, run.length - q)
        if (isZero(payload, base + q, n)) break
        q += n
      }
      head.writeBigUInt64BE(BigInt(run.offset + p), 0)
      head.writeBigUInt64BE(BigInt(q - p), 8)
      h.update(head)
      h.update(payload.subarray(base + p, base + q))
      p = q
    }
    base += run.length
  }
  return h.digest()
}

/** Accumulates D from the windows' W, fed in ascending window order. */
export const makeImageDigest = (size: number) => {
  const h = createHash("sha256")
  const head = Buffer.alloc(12)
  head.writeBigUInt64BE(BigInt(size), 0)
  head.writeUInt32BE(WINDOW, 8)
  h.update("prolo-hfs-image-v1\0")
  h.update(head)
  const off = Buffer.alloc(8)
  return {
    add: (windowOffset: number, w: Buffer): void => {
      if (w.equals(EMPTY_WINDOW)) return
      off.writeBigUInt64BE(BigInt(windowOffset), 0)
      h.update(off)
      h.update(w)
    },
    digest: (): Buffer => h.digest()
  }
}
