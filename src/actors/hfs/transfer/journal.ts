import { createHash } from "node:crypto"
import * as fs from "node:fs/promises"
import { HASH_BYTES, WINDOW } from "./digest.js"

// The destination's progress journal, `<login>.<generation>.journal` beside the partial
// image: a 64-byte header naming the copy (size, window, generation, login), then one 48-byte
// record per verified window, u64be(offset) ‖ W ‖ 8 bytes of SHA-256(id ‖ offset ‖ W).
// A record is appended only after the window's bytes were fdatasync'ed into the partial
// image, and the journal is fdatasync'ed after it, so every record names data on disk. A
// torn or damaged tail (a kill in the middle of an append) ends the journal there: the
// next attempt resumes after the last intact record.

const MAGIC = Buffer.from("PHTJ\0\0\0\x01", "latin1")
export const JOURNAL_HEADER = 64
const RECORD = 8 + HASH_BYTES + 8

export interface VerifiedWindow {
  readonly offset: number
  readonly hash: Buffer
}

export interface Journal {
  readonly size: number
  readonly windows: ReadonlyArray<VerifiedWindow>
  /** Bytes of the journal that are intact (header + whole, checked records). */
  readonly validLength: number
}

const idOf = (login: string, generation: number): Buffer => createHash("sha256").update(`${login}\0${generation}`).digest()

export const encodeHeader = (size: number, login: string, generation: number): Buffer => {
  const b = Buffer.alloc(JOURNAL_HEADER)
  MAGIC.copy(b, 0)
  b.writeBigUInt64BE(BigInt(size), 8)
  b.writeUInt32BE(WINDOW, 16)
  b.writeBigUInt64BE(BigInt(generation), 20)
  idOf(login, generation).copy(b, 28)
  return b
}

export const encodeRecords = (login: string, generation: number, windows: ReadonlyArray<VerifiedWindow>): Buffer => {
  const id = idOf(login, generation)
  const b = Buffer.alloc(RECORD * windows.length)
  windows.forEach((w, i) => {
    const at = i * RECORD
    b.writeBigUInt64BE(BigInt(w.offset), at)
    w.hash.copy(b, at + 8)
    createHash("sha256").update(id).update(b.subarray(at, at + 8 + HASH_BYTES)).digest().copy(b, at + 8 + HASH_BYTES, 0, 8)
  })
  return b
}

/** The journal's intact part, or undefined when it is missing or not this copy's. */
export const readJournal = async (path: string, login: string, generation: number): Promise<Journal | undefined> => {
  let bytes: Buffer
  try {
    bytes = await fs.readFile(path)
  } catch {
    return undefined
  }
  if (bytes.length < JOURNAL_HEADER || !bytes.subarray(0, 8).equals(MAGIC)) return undefined
  const id = idOf(login, generation)
  if (bytes.readUInt32BE(16) !== WINDOW || bytes.readBigUInt64BE(20) !== BigInt(generation) || !bytes.subarray(28, 60).equals(id)) return undefined
  const bigSize = bytes.readBigUInt64BE(8)
  if (bigSize > BigInt(Number.MAX_SAFE_INTEGER)) return undefined
  const size = Number(bigSize)
  const windows: Array<VerifiedWindow> = []
  let at = JOURNAL_HEADER
  let after = 0
  for (; at + RECORD <= bytes.length; at += RECORD) {
    const body = bytes.subarray(at, at + 8 + HASH_BYTES)
    const check = createHash("sha256").update(id).update(body).digest().subarray(0, 8)
    if (!check.equals(bytes.subarray(at + 8 + HASH_BYTES, at + RECORD))) break
    const offset = Number(body.readBigUInt64BE(0))
    if (offset % WINDOW !== 0 || offset < after || offset >= size) break
    windows.push({ offset, hash: Buffer.from(body.subarray(8)) })
    after = offset + WINDOW
  }
  return { size, windows, validLength: at }
}

/** Where the next attempt starts: just after the last verified window. */
export const resumeOffset = (journal: Journal): number => {
  const last = journal.windows[journal.windows.length - 1]
  return last === undefined ? 0 : last.offset + WINDOW
}
