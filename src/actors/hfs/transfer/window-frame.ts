import { HASH_BYTES, PAGE, type Run, WINDOW } from "./digest.js"

// The layout of a WINDOW frame (README.md "Wire format"), shared by frames.ts and the hash
// threads (hash-worker.ts), which read run tables and write frame heads inside the shared
// slots: nothing here imports effect, so the thread's bundle stays small.
//
//   u8 type ‖ u32be body length ‖ body
//   body = u64 window offset ‖ u16 n ‖ W (32) ‖ n × (u64 offset ‖ u32 length) ‖ payload

export const HEADER = 5
export const WINDOW_TYPE = 3
export const WINDOW_HEAD = 8 + 2 + HASH_BYTES
/** Where W sits in a window frame's body. */
export const BODY_HASH_AT = 10
export const RUN_BYTES = 12
export const MAX_RUNS = WINDOW / PAGE
/** The largest window frame body: head, a full run table and a full window. */
export const WINDOW_MAX_BODY = WINDOW_HEAD + MAX_RUNS * RUN_BYTES + WINDOW

/**
 * A source slot holds one whole window frame: its payload at SLOT_PAYLOAD_AT, its header,
 * head and run table just before it (starting at `frameStart`), so that the frame leaves in
 * one write without a copy.
 */
export const SLOT_PAYLOAD_AT = HEADER + WINDOW_HEAD + MAX_RUNS * RUN_BYTES
export const SOURCE_SLOT_BYTES = SLOT_PAYLOAD_AT + WINDOW
export const frameStart = (runs: number): number => SLOT_PAYLOAD_AT - HEADER - WINDOW_HEAD - runs * RUN_BYTES

const TWO_32 = 2 ** 32
// u64 values above 2^53 - 1 have a high word of 2^21 or more.
const HIGH_MAX = 2 ** 21

/** A u64be at `at`, or undefined beyond 2^53 - 1. */
export const readU64 = (b: Buffer, at: number): number | undefined => {
  const high = b.readUInt32BE(at)
  return high < HIGH_MAX ? high * TWO_32 + b.readUInt32BE(at + 4) : undefined
}

const writeU64 = (b: Buffer, value: number, at: number): void => {
  b.writeUInt32BE(Math.floor(value / TWO_32), at)
  b.writeUInt32BE(value % TWO_32, at + 4)
}

/** The `count` runs of the table at `at`, or undefined when an offset is beyond 2^53 - 1. */
export const readRunTable = (b: Buffer, at: number, count: number): Array<Run> | undefined => {
  const runs: Array<Run> = new Array(count)
  for (let i = 0; i < count; i++, at += RUN_BYTES) {
    const offset = readU64(b, at)
    if (offset === undefined) return undefined
    runs[i] = { offset, length: b.readUInt32BE(at + 8) }
  }
  return runs
}

/**
 * Writes a window frame's header, head and run table at `at` (HEADER + WINDOW_HEAD +
 * runs × RUN_BYTES bytes); W is written at `at + HEADER + BODY_HASH_AT` by whoever has it.
 */
export const writeWindowHead = (b: Buffer, at: number, offset: number, runs: ReadonlyArray<Run>, payloadLength: number): void => {
  b.writeUInt8(WINDOW_TYPE, at)
  b.writeUInt32BE(WINDOW_HEAD + runs.length * RUN_BYTES + payloadLength, at + 1)
  writeU64(b, offset, at + HEADER)
  b.writeUInt16BE(runs.length, at + HEADER + 8)
  let t = at + HEADER + WINDOW_HEAD
  for (const run of runs) {
    writeU64(b, run.offset, t)
    b.writeUInt32BE(run.length, t + 8)
    t += RUN_BYTES
  }
}
