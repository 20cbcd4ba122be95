import { gunzipSync, gzipSync } from "node:zlib"
import { Schema } from "effect"
import { ArchiveProblem } from "../../protocols/cluster-task.js"

// Champion archives (`champion.tgz`, `champion-compiled.tgz`): a gzip'd tar read and written
// here, in memory, so that nothing of an upload touches the disk before it is checked. Only
// regular files and directories under relative, `..`-free names are accepted; links, devices
// and fifos are refused (a link is the classic way out of the extraction directory), and the
// entry count and unpacked size are bounded before anything is written.

export class ArchiveRejected extends Schema.TaggedError<ArchiveRejected>()("ArchiveRejected", {
  problem: ArchiveProblem,
  /** The offending entry, when there is one. */
  entry: Schema.optional(Schema.String),
  message: Schema.String
}) {}

export interface ArchiveEntry {
  /** Normalised relative path (`a/b.c`), never empty, never `..`. */
  readonly path: string
  readonly type: "file" | "dir"
  readonly mode: number
  readonly data: Uint8Array
}

export interface ArchiveBounds {
  readonly maxEntries: number
  readonly maxBytes: number
}

const BLOCK = 512

const reject = (problem: ArchiveProblem, message: string, entry?: string): ArchiveRejected =>
  new ArchiveRejected({ problem, message, ...(entry === undefined ? {} : { entry }) })

const cstring = (b: Uint8Array, start: number, len: number): string => {
  const field = b.subarray(start, start + len)
  const end = field.indexOf(0)
  return Buffer.from(end === -1 ? field : field.subarray(0, end)).toString("utf8")
}

const octal = (b: Uint8Array, start: number, len: number): number => {
  // GNU base-256 for big numbers: refuse, no champion file is that large.
  if ((b[start]! & 0x80) !== 0) return Number.NaN
  const s = cstring(b, start, len).trim()
  return s === "" ? 0 : /^[0-7]+$/.test(s) ? parseInt(s, 8) : Number.NaN
}

/** `./a//b/` → `a/b`; refuses what could point outside. */
const normalise = (raw: string): string | undefined => {
  if (raw.startsWith("/") || raw.includes("\\") || raw.includes("\0")) return undefined
  const parts = raw.split("/").filter((p) => p !== "" && p !== ".")
  if (parts.some((p) => p === "..")) return undefined
  return parts.join("/")
}

/** PAX extended header records: `<len> key=value\n`. */
const paxPath = (data: Uint8Array): string | undefined => {
  const text = Buffer.from(data).toString("utf8")
  for (const rec of text.split("\n")) {
    const m = /^\d+ path=(.*)$/.exec(rec)
    if (m !== null) return m[1]
  }
  return undefined
}

export const readTgz = (tgz: Uint8Array, bounds: ArchiveBounds): Array<ArchiveEntry> | ArchiveRejected => {
  let tar: Buffer
  try {
    // The bound on the output keeps a gzip bomb from filling memory.
    tar = gunzipSync(tgz, { maxOutputLength: bounds.maxBytes + (bounds.maxEntries + 8) * 2 * BLOCK })
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e)
    return /maxOutputLength|Cannot create a Buffer/i.test(why) ? reject("too_large", `the archive unpacks to more than ${bounds.maxBytes} bytes`) : reject("corrupt_archive", `not a gzip'd tar archive: ${why}`)
  }
  const entries: Array<ArchiveEntry> = []
  const seen = new Set<string>()
  let total = 0
  let longName: string | undefined
  let off = 0
  while (true) {
    if (off + BLOCK > tar.length) return reject("corrupt_archive", "the tar archive is truncated (no end marker)")
    const h = tar.subarray(off, off + BLOCK)
    if (h.every((x) => x === 0)) break
    const sum = octal(h, 148, 8)
    let computed = 0
    for (let i = 0; i < BLOCK; i++) computed += i >= 148 && i < 156 ? 32 : h[i]!
    if (Number.isNaN(sum) || sum !== computed) return reject("corrupt_archive", `bad tar header checksum at byte ${off}`)
    const size = octal(h, 124, 12)
    if (Number.isNaN(size)) return reject("corrupt_archive", `bad size field at byte ${off}`)
    const dataStart = off + BLOCK
    if (dataStart + size > tar.length) return reject("corrupt_archive", "the tar archive is truncated")
    const data = tar.subarray(dataStart, dataStart + size)
    off = dataStart + Math.ceil(size / BLOCK) * BLOCK
    const type = String.fromCharCode(h[156]!)
    const prefix = h[257] === 0x75 /* "ustar" */ ? cstring(h, 345, 155) : ""
    const name = longName ?? (prefix === "" ? cstring(h, 0, 100) : `${prefix}/${cstring(h, 0, 100)}`)
    if (type === "L" || type === "x") {
      longName = type === "L" ? cstring(data, 0, data.length) : paxPath(data)
      continue
    }
    longName = undefined
    if (type === "g") continue // global PAX header: metadata only
    const path = normalise(name)
    if (path === undefined) return reject("path_escape", `entry ${JSON.stringify(name)} points outside the champion's directory`, name)
    if (type !== "0" && type !== "\0" && type !== "5" && type !== "7") {
      const kind = type === "1" ? "a hard link" : type === "2" ? "a symbolic link" : `an entry of type ${JSON.stringify(type)}`
      return reject("path_escape", `entry ${JSON.stringify(name)} is ${kind}: only files and directories are accepted`, name)
    }
    if (path === "") continue // the archive's own `./`
    if (entries.length + 1 > bounds.maxEntries) return reject("too_large", `more than ${bounds.maxEntries} entries`)
    total += size
    if (total > bounds.maxBytes) return reject("too_large", `more than ${bounds.maxBytes} bytes once unpacked`)
    if (seen.has(path)) {
      // A directory listed twice is harmless; a file twice (or a file and a directory) is not.
      if (type === "5" && entries.some((e) => e.path === path && e.type === "dir")) continue
      return reject("corrupt_archive", `entry ${JSON.stringify(path)} appears twice`, path)
    }
    seen.add(path)
    entries.push({ path, type: type === "5" ? "dir" : "file", mode: octal(h, 100, 8) & 0o777, data })
  }
  // `a` a file and `a/b` an entry: no directory tree holds both.
  const files = new Set(entries.filter((e) => e.type === "file").map((e) => e.path))
  for (const e of entries) {
    const parts = e.path.split("/")
    for (let i = 1; i < parts.length; i++) {
      const ancestor = parts.slice(0, i).join("/")
      if (files.has(ancestor)) return reject("corrupt_archive", `entry ${JSON.stringify(e.path)} is under ${JSON.stringify(ancestor)}, which is a file`, e.path)
    }
  }
  return entries
}

const header = (name: Buffer, flag: "0" | "5" | "L", mode: number, size: number): Buffer => {
  const h = Buffer.alloc(BLOCK)
  name.subarray(0, 100).copy(h, 0)
  h.write(mode.toString(8).padStart(7, "0"), 100, "ascii")
  h.write("0000000", 108, "ascii")
  h.write("0000000", 116, "ascii")
  h.write(size.toString(8).padStart(11, "0"), 124, "ascii")
  h.write("00000000000", 136, "ascii")
  h.write("        ", 148, "ascii")
  h.write(flag, 156, "ascii")
  h.write("ustar\u000000", 257, "ascii")
  let sum = 0
  for (const x of h) sum += x
  h.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "ascii")
  return h
}

const padded = (data: Uint8Array): Array<Buffer> => {
  const pad = (BLOCK - (data.length % BLOCK)) % BLOCK
  return pad > 0 ? [Buffer.from(data), Buffer.alloc(pad)] : [Buffer.from(data)]
}

/** A gzip'd ustar archive of these entries (a name over 100 bytes gets a GNU long-name record). */
export const writeTgz = (entries: ReadonlyArray<ArchiveEntry>): Uint8Array => {
  const parts: Array<Buffer> = []
  for (const e of entries) {
    const name = Buffer.from(e.type === "dir" ? `${e.path}/` : e.path, "utf8")
    if (name.length > 100) {
      const long = Buffer.concat([name, Buffer.alloc(1)])
      parts.push(header(Buffer.from("././@LongLink"), "L", 0o644, long.length), ...padded(long))
    }
    parts.push(header(name, e.type === "dir" ? "5" : "0", e.mode, e.type === "dir" ? 0 : e.data.length))
    if (e.type === "file") parts.push(...padded(e.data))
  }
  parts.push(Buffer.alloc(2 * BLOCK))
  return gzipSync(Buffer.concat(parts))
}
