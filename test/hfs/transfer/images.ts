import * as fs from "node:fs"
import { mulberry32 } from "../../support/random.js"

// Seeded sparse images for the transfer tests and the bench: data scattered at random
// offsets (some not page-aligned), random bytes from the seed, a few written all-zero ranges
// (allocated zeroes, which the digest must treat as holes).

const KiB = 1024
const MiB = 1024 * KiB

/** The seed of a randomised test: `env` when set (replay), else a fresh one; printed. */
export const seedFrom = (env: string, label: string): number => {
  const given = process.env[env]
  const seed = given !== undefined && given !== "" ? Number(given) >>> 0 : (Math.random() * 2 ** 32) >>> 0
  console.log(`${label}: seed ${seed} (replay with ${env}=${seed})`)
  return seed
}

const fillRandom = (buf: Buffer, rand: () => number) => {
  const words = new Uint32Array(buf.buffer, buf.byteOffset, Math.floor(buf.length / 4))
  for (let i = 0; i < words.length; i++) words[i] = (rand() * 2 ** 32) >>> 0
  for (let i = words.length * 4; i < buf.length; i++) buf[i] = (rand() * 256) | 1
}

export interface ScatteredImage {
  readonly size: number
  readonly dataBytes: number
}

/** A sparse file of `size` bytes with about `dataBytes` of scattered random data. */
export const writeScatteredImage = (file: string, size: number, dataBytes: number, seed: number): ScatteredImage => {
  const rand = mulberry32(seed)
  const fd = fs.openSync(file, "w")
  try {
    fs.ftruncateSync(fd, size)
    let written = 0
    const big = Buffer.allocUnsafe(4 * MiB)
    while (written < dataBytes) {
      const kind = rand()
      const length = Math.min(kind < 0.6 ? 1 + Math.floor(rand() * 64 * KiB) : 64 * KiB + Math.floor(rand() * (4 * MiB - 64 * KiB)), dataBytes - written)
      const offset = Math.floor(rand() * (size - length))
      const buf = big.subarray(0, length)
      if (kind > 0.97) buf.fill(0)
      else fillRandom(buf, rand)
      fs.writeSync(fd, buf, 0, length, offset)
      written += length
    }
    // The last bytes of the image, so that a short last page is exercised.
    const tail = Buffer.alloc(100, 0x5a)
    fs.writeSync(fd, tail, 0, tail.length, size - tail.length)
    fs.fsyncSync(fd)
    return { size, dataBytes: written }
  } finally {
    fs.closeSync(fd)
  }
}

export const allocatedBytes = (file: string): number => fs.statSync(file).blocks * 512
